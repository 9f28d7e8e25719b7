"""edge status names the key file the running edge reads, not a stale generated one."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicity_infra.commands.edge import edge_status, generate_api_key
from unicity_infra.engine.docker import ContainerInfo
from unicity_infra.stack.edge import EdgeSettings, edge_container_name, edge_plan


class StoppedEdgeEngine:
    """Fake engine that lists one stopped edge container with LABELS, so no CA file is copied."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels

    def list_containers(self, *, stack: str, service: str | None = None) -> list[ContainerInfo]:
        return [ContainerInfo(name=edge_container_name(stack), service="edge", stack=stack, image="edge",
                              state="exited", health=None, labels=self.labels, exit_code=0)]


def _labels(settings: EdgeSettings, stack: str) -> dict[str, str]:
    plan = edge_plan(settings, stack=stack)
    return next(spec for spec in plan.containers if spec.service == "edge").labels


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def test_status_prefers_edge_up_key_file(tmp_path: Path) -> None:
    generate_api_key("s")  # left by an earlier 'edge up --require-key'
    operator_key = tmp_path / "operator-key"
    operator_key.write_text("k" * 40)

    status = edge_status(StoppedEdgeEngine(_labels(EdgeSettings(api_key_file=operator_key), "s")), stack="s")

    assert status is not None
    assert status.key_required
    assert status.key_file == str(operator_key)


def test_status_names_generated_key() -> None:
    generated = generate_api_key("s")

    status = edge_status(StoppedEdgeEngine(_labels(EdgeSettings(api_key_file=generated), "s")), stack="s")

    assert status is not None
    assert status.key_file == str(generated)


def test_status_without_key_names_nothing() -> None:
    generate_api_key("s")

    status = edge_status(StoppedEdgeEngine(_labels(EdgeSettings(), "s")), stack="s")

    assert status is not None
    assert not status.key_required
    assert status.key_file is None
