"""snapshot save/restore on real volumes: relay events come back after a wipe."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.docker.test_run_relay import RelayStack
from unicity_infra.probes.nostr import fetch_events, publish_many

pytestmark = pytest.mark.docker


@pytest.fixture
def stack(relay_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    relay_stack = RelayStack(tmp_path)
    yield relay_stack
    relay_stack.cli("down", "--wipe", "--wipe-certificates")


def test_snapshot_restore_brings_back_wiped_events(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0
    cert = stack.save_certificate()
    ids = publish_many(stack.url, 20, connect=stack.connect, ca_file=cert)
    assert stack.cli("down").returncode == 0

    saved = stack.cli("snapshot", "save", "before", "--json")
    assert saved.returncode == 0, saved.stderr
    document = json.loads(saved.stdout)
    assert len(document["volumes"]) == 2
    # The archives carry private keys: owner-only, like 'faucet identity export'.
    folder = Path(document["path"])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(item.stat().st_mode) for item in folder.iterdir()} == {0o600}

    assert stack.cli("down", "--wipe").returncode == 0
    assert stack.run_relay().returncode == 0
    assert fetch_events(stack.url, [{"ids": ids}], connect=stack.connect, ca_file=cert) == []
    assert stack.cli("down").returncode == 0

    restored = stack.cli("snapshot", "restore", "before")
    assert restored.returncode == 0, restored.stderr
    assert stack.run_relay().returncode == 0
    assert len(fetch_events(stack.url, [{"ids": ids}], connect=stack.connect, ca_file=cert)) == 20


def test_snapshot_save_refuses_running_stack(stack: RelayStack) -> None:
    assert stack.run_relay().returncode == 0

    result = stack.cli("snapshot", "save", "live")

    assert result.returncode == 1
    assert "are running" in result.stderr


def test_snapshot_restore_unknown_name(stack: RelayStack) -> None:
    result = stack.cli("snapshot", "restore", "never-saved")

    assert result.returncode == 1
    assert "no snapshot 'never-saved'" in result.stderr
