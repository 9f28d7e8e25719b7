"""export compose on the real Docker Engine: docker-compose accepts the file and runs the exported relay."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.fixtures.pebble import free_port

pytestmark = pytest.mark.docker

COMPOSE = "docker-compose"


def cli(*arguments: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unicity-infra", *arguments], capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def compose(file: Path, project: str, *arguments: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMPOSE, "-p", project, "-f", str(file), *arguments], capture_output=True, text=True,
                          timeout=timeout_s, check=False)


class ExportedRelay:
    """One exported stack: its name, compose project, host port and compose file."""

    def __init__(self, tmp_path: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.stack = f"export-{suffix}"
        self.project = f"h5export{suffix}"
        self.port = free_port()
        self.file = tmp_path / "compose.yaml"
        self.container = f"unicity-{self.stack}-relay"


@pytest.fixture
def exported_relay(relay_image: str, tmp_path: Path) -> Iterator[ExportedRelay]:
    exported = ExportedRelay(tmp_path)
    yield exported
    if exported.file.exists():
        compose(exported.file, exported.project, "down", "-v", "--timeout", "5")


@pytest.mark.parametrize("mode", ["direct", "local-edge", "production"])
def test_export_compose_validates_with_docker_compose(mode: str, tmp_path: Path) -> None:
    target = tmp_path / f"{mode}.yaml"
    exported = cli("--stack", f"export-{mode}", "export", "compose", "--mode", mode,
                   "--domain-suffix", "example.org", "--output", str(target))
    assert exported.returncode == 0, exported.stderr

    checked = compose(target, "h5exportconfig", "config", "-q")

    assert checked.returncode == 0, checked.stderr


def test_export_compose_relay_runs_and_probes_green(exported_relay: ExportedRelay, relay_image: str) -> None:
    exported = cli("--stack", exported_relay.stack, "export", "compose", "relay",
                   "--relay-port", str(exported_relay.port), "--output", str(exported_relay.file))
    assert exported.returncode == 0, exported.stderr
    assert f"image: {relay_image}" in exported_relay.file.read_text()

    started = compose(exported_relay.file, exported_relay.project, "up", "-d", "relay")
    assert started.returncode == 0, started.stderr
    health = _wait_for_health(exported_relay.container, timeout_s=180)
    assert health == "healthy", _logs(exported_relay.container)

    probed = cli("probe", "relay", f"ws://127.0.0.1:{exported_relay.port}", "--json")
    assert probed.returncode == 0, probed.stdout + probed.stderr
    checks = [check["status"] for target in json.loads(probed.stdout)["targets"] for check in target["checks"]]
    assert checks
    assert set(checks) == {"ok"}

    status = cli("--stack", exported_relay.stack, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert [row["container"] for row in json.loads(status.stdout)["containers"]] == [exported_relay.container]


def test_export_compose_down_removes_what_up_created(exported_relay: ExportedRelay) -> None:
    assert cli("--stack", exported_relay.stack, "export", "compose", "relay", "--relay-port",
               str(exported_relay.port), "--output", str(exported_relay.file)).returncode == 0
    assert compose(exported_relay.file, exported_relay.project, "up", "-d", "relay").returncode == 0

    removed = compose(exported_relay.file, exported_relay.project, "down", "-v", "--timeout", "5")

    assert removed.returncode == 0, removed.stderr
    client = docker.from_env(version="auto")
    assert client.containers.list(all=True, filters={"name": exported_relay.container}) == []
    volumes = client.volumes.list(filters={"label": f"org.unicity.infra.stack={exported_relay.stack}"})
    assert volumes == []


def _wait_for_health(container: str, *, timeout_s: float) -> str | None:
    client = docker.from_env(version="auto")
    deadline = time.monotonic() + timeout_s
    health: str | None = None
    while time.monotonic() < deadline:
        try:
            state = client.api.inspect_container(container)["State"]
        except docker.errors.NotFound:
            state = {}
        health = (state.get("Health") or {}).get("Status")
        if health in ("healthy", "unhealthy") or state.get("Status") == "exited":
            return health
        time.sleep(1.0)
    return health


def _logs(container: str) -> str:
    try:
        return docker.from_env(version="auto").containers.get(container).logs(tail=40).decode(errors="replace")
    except docker.errors.NotFound:
        return f"container {container} not found"
