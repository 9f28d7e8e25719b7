"""`up`, `env` and `down` across relay and aggregator, on stand-in upstream images."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.fixtures.pebble import free_port
from tests.fixtures.standins import build_aggregator_standins
from tests.fixtures.faucet_standin import build_faucet_standin
from unicity_infra.engine.images import FAUCET_IMAGE_ENV, build_images

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def overrides(relay_image: str) -> str:
    build_images(["aggregator"], offline=True)
    images = build_aggregator_standins()
    return " ".join(f"{key}={images[key]}" for key in ("bft-core", "mongo", "aggregator-go", "curl"))


@pytest.fixture(scope="module")
def faucet_image(relay_image: str) -> str:
    previous = os.environ.get(FAUCET_IMAGE_ENV)
    os.environ[FAUCET_IMAGE_ENV] = build_faucet_standin()
    try:
        return build_images(["faucet"], offline=True)["faucet"]
    finally:
        if previous is None:
            del os.environ[FAUCET_IMAGE_ENV]
        else:
            os.environ[FAUCET_IMAGE_ENV] = previous


class UpStack:
    def __init__(self, tmp_path: Path, overrides: str) -> None:
        self.name = f"up-{uuid.uuid4().hex[:8]}"
        self.relay_port = free_port()
        self.aggregator_port = free_port()
        self.faucet_port = free_port()
        self.env = {**os.environ, "UNICITY_INFRA_IMAGE_OVERRIDES": overrides,
                    "XDG_STATE_HOME": str(tmp_path / "state")}

    def cli(self, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unicity-infra", "--stack", self.name, *arguments], capture_output=True, text=True,
                              timeout=600, check=False, env=env or self.env, stdin=subprocess.DEVNULL)

    def up(self, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("up", "relay", "aggregator", "--relay-port", str(self.relay_port),
                        "--aggregator-port", str(self.aggregator_port), *extra, env=env)

    def up_all(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("up", "--relay-port", str(self.relay_port), "--aggregator-port", str(self.aggregator_port),
                        "--faucet-port", str(self.faucet_port), *extra)

    def up_json(self) -> dict:
        result = self.up("--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def variables(self) -> dict[str, str]:
        result = self.cli("env", "--format", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def stack(overrides: str, tmp_path: Path) -> Iterator[UpStack]:
    up_stack = UpStack(tmp_path, overrides)
    yield up_stack
    up_stack.cli("down", "--wipe", "--wipe-certificates", "--yes")


def test_up_env_variables_point_at_running_services(stack: UpStack) -> None:
    document = stack.up_json()
    variables = stack.variables()

    assert document["ok"] is True
    assert document["services"]["relay"]["container"] == f"unicity-{stack.name}-relay"
    assert document["services"]["aggregator"]["container"] == f"unicity-{stack.name}-aggregator-proxy"
    assert variables["SPHERE_NOSTR_RELAYS"] == f"ws://127.0.0.1:{stack.relay_port}"
    assert variables["SPHERE_AGGREGATOR_URL"] == f"http://127.0.0.1:{stack.aggregator_port}"
    assert variables["SPHERE_TRUSTBASE_URL"].endswith("/.well-known/trust-base.json")
    assert json.loads(Path(variables["SPHERE_TRUST_BASE_PATH"]).read_text())["networkId"] == 3
    assert variables["SPHERE_ORACLE_SKIP_VERIFICATION"] == "false"
    assert variables["SPHERE_AGGREGATOR_SKIP_VERIFICATION"] == "false"


def test_up_again_reports_no_changes(stack: UpStack) -> None:
    assert stack.up_json()["changed"] is True

    again = stack.up()

    assert again.returncode == 0, again.stderr
    assert "no changes" in again.stderr


def test_up_after_down_keeps_trust_base(stack: UpStack) -> None:
    first = stack.up_json()["services"]["aggregator"]["trust_base"]["sha256"]
    assert stack.cli("down").returncode == 0

    second = stack.up_json()["services"]["aggregator"]["trust_base"]["sha256"]

    assert second == first


def test_up_with_port_in_use_starts_nothing(stack: UpStack) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack.relay_port))
        holder.listen()

        result = stack.up()

    assert result.returncode == 2
    assert f"invalid value for --relay-port: {stack.relay_port}; 127.0.0.1:{stack.relay_port} is not free" in result.stderr
    stack_filter = {"label": f"org.unicity.infra.stack={stack.name}"}
    client = docker.from_env(version="auto")
    assert client.containers.list(all=True, filters=stack_filter) == []
    assert client.volumes.list(filters=stack_filter) == []


def test_env_refuses_stopped_stack(stack: UpStack) -> None:
    assert stack.up().returncode == 0
    assert stack.cli("down").returncode == 0

    result = stack.cli("env")

    assert result.returncode == 1
    assert "not running" in result.stderr


def test_up_failing_service_named_others_left_running(stack: UpStack) -> None:
    # The relay image has no /app/aggregator, so the aggregator container exits at once.
    entries = [entry for entry in stack.env["UNICITY_INFRA_IMAGE_OVERRIDES"].split()
               if not entry.startswith("aggregator-go=")]
    broken = {**stack.env,
              "UNICITY_INFRA_IMAGE_OVERRIDES": " ".join([*entries, "aggregator-go=unicity-infra/relay:0.1.0"])}

    result = stack.up("--timeout", "60", env=broken)

    assert result.returncode == 1
    assert "service aggregator" in result.stderr
    status = json.loads(stack.cli("status", "--json").stdout)["containers"]
    relay = [row for row in status if row["service"] == "relay"]
    assert relay and relay[0]["state"] == "running"


def test_up_whole_stack_survives_down(stack: UpStack, faucet_image: str) -> None:
    first = stack.up_all("--json")
    assert first.returncode == 0, first.stderr
    endpoints = json.loads(first.stdout)["endpoints"]
    variables = stack.variables()
    assert variables["E2E_LOCAL_FAUCET_PUBKEY"] == endpoints["faucet_chain_pubkey"]
    assert len(variables["E2E_LOCAL_FAUCET_PUBKEY"]) == 66
    first_hash = json.loads(first.stdout)["services"]["aggregator"]["trust_base"]["sha256"]
    assert stack.cli("down").returncode == 0

    second = stack.up_all("--json")

    assert second.returncode == 0, second.stderr
    document = json.loads(second.stdout)
    assert document["endpoints"]["faucet_chain_pubkey"] == endpoints["faucet_chain_pubkey"]
    assert document["services"]["aggregator"]["trust_base"]["sha256"] == first_hash


@pytest.mark.slow
def test_up_fresh_then_snapshot_restore_returns_old_identity(stack: UpStack, faucet_image: str,
                                                              tmp_path: Path) -> None:
    stack.env["XDG_DATA_HOME"] = str(tmp_path / "data")
    first = json.loads(stack.up_all("--json").stdout)
    old_key = first["endpoints"]["faucet_chain_pubkey"]
    old_hash = first["services"]["aggregator"]["trust_base"]["sha256"]
    assert stack.cli("down").returncode == 0
    assert stack.cli("snapshot", "save", "before").returncode == 0

    fresh = stack.up_all("--fresh", "--yes", "--json")

    assert fresh.returncode == 0, fresh.stderr
    renewed = json.loads(fresh.stdout)
    assert renewed["endpoints"]["faucet_chain_pubkey"] != old_key
    assert renewed["services"]["aggregator"]["trust_base"]["sha256"] != old_hash
    assert "--fresh removed volume" in fresh.stderr

    assert stack.cli("down").returncode == 0
    restored = stack.cli("snapshot", "restore", "before")
    assert restored.returncode == 0, restored.stderr
    again = json.loads(stack.up_all("--json").stdout)
    assert again["endpoints"]["faucet_chain_pubkey"] == old_key
    assert again["services"]["aggregator"]["trust_base"]["sha256"] == old_hash
