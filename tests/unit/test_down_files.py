"""down and edge down remove the host files that describe what they removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicity_infra.commands.aggregator import default_trust_base_path
from unicity_infra.commands.down import take_down
from unicity_infra.commands.edge import edge_down, edge_state_dir, generate_api_key
from unicity_infra.commands.up import state_file
from unicity_infra.engine.docker import ContainerInfo
from unicity_infra.paths import state_dir


class EmptyingEngine:
    """Fake engine with one relay and one aggregator container and no volumes or networks."""

    def __init__(self) -> None:
        self.containers = [
            ContainerInfo(name=f"unicity-s-{service}", service=service, stack="s", image="img", state="running",
                          health="healthy", labels={}, exit_code=None)
            for service in ("relay", "aggregator")
        ]

    def list_containers(self, *, stack: str, service: str | None = None) -> list[ContainerInfo]:
        return [info for info in self.containers if service in (None, info.service)]

    def remove_container(self, name: str, progress: object = None) -> bool:
        self.containers = [info for info in self.containers if info.name != name]
        return True

    def list_volumes(self, **filters: object) -> list[str]:
        return []

    def list_networks(self, **filters: object) -> list[str]:
        return []


@pytest.fixture(autouse=True)
def host_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    files = {
        "endpoints": state_file("s"),
        "trust_base": default_trust_base_path("s"),
        "certificate": state_dir() / "certs" / "unicity-s-relay.pem",
        "other_stack": default_trust_base_path("other"),
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    return files


def test_down_keeps_host_files(host_files: dict[str, Path]) -> None:
    removed = take_down(EmptyingEngine(), stack="s", services=[], wipe=False, wipe_certificates=False)

    assert removed["files"] == []
    assert host_files["endpoints"].is_file()
    assert host_files["trust_base"].is_file()
    assert host_files["certificate"].is_file()


def test_down_wipe_removes_trust_base(host_files: dict[str, Path]) -> None:
    take_down(EmptyingEngine(), stack="s", services=[], wipe=True, wipe_certificates=False)

    assert not host_files["trust_base"].exists()
    assert not host_files["endpoints"].exists()
    assert not host_files["endpoints"].parent.exists()
    assert host_files["certificate"].is_file()
    assert host_files["other_stack"].is_file()


def test_down_relay_wipe_keeps_trust_base(host_files: dict[str, Path]) -> None:
    take_down(EmptyingEngine(), stack="s", services=["relay"], wipe=True, wipe_certificates=True)

    assert host_files["trust_base"].is_file()
    assert host_files["endpoints"].is_file()
    assert not host_files["certificate"].exists()


class EdgeEngine:
    """Fake engine where the edge container is already gone."""

    def remove_container(self, name: str, progress: object = None) -> bool:
        return False

    def list_volumes(self, **filters: object) -> list[str]:
        return []

    def list_networks(self) -> list[str]:
        return []


def test_edge_down_wipe_removes_key_and_ca_copies() -> None:
    key = generate_api_key("s")
    (edge_state_dir("s") / "ca-bundle.pem").write_text("pem")

    removed = edge_down(EdgeEngine(), stack="s", wipe=True)

    assert str(key) in removed["files"]
    assert not edge_state_dir("s").exists()


def test_edge_down_keeps_files_without_wipe() -> None:
    key = generate_api_key("s")

    edge_down(EdgeEngine(), stack="s", wipe=False)

    assert key.is_file()
