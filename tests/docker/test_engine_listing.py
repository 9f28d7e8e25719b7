"""DockerEngine's container listing and file copy against the real Docker Engine.

The listing reads health and exit codes from Docker's list summary instead of
inspecting every container, so these tests compare it with what an inspection reports.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import docker
import pytest
from docker.models.containers import Container

from tests.docker.conftest import TEST_LABEL
from unicity_infra.engine.docker import DockerEngine
from unicity_infra.engine.images import build_offline_base
from unicity_infra.errors import DockerError
from unicity_infra.stack.spec import LABEL_MANAGED, LABEL_SERVICE, LABEL_STACK

_SECOND = 1_000_000_000


@pytest.fixture
def stack(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"listing-{uuid.uuid4().hex[:8]}"
    yield name
    for container in docker_client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={name}"}):
        container.remove(force=True, v=True)


def _container(client: docker.DockerClient, stack: str, service: str, command: str, *,
               health: str | None = None) -> Container:
    healthcheck = None
    if health is not None:
        healthcheck = {"test": ["CMD-SHELL", health], "interval": _SECOND, "timeout": _SECOND, "retries": 1}
    return client.containers.create(
        build_offline_base(), command=["sh", "-c", command], name=f"unicity-{stack}-{service}",
        labels={LABEL_MANAGED: "true", LABEL_STACK: stack, LABEL_SERVICE: service, TEST_LABEL: "1"},
        healthcheck=healthcheck, detach=True,
    )


def _wait(check, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_listing_agrees_with_inspection(docker_client: docker.DockerClient, stack: str) -> None:
    engine = DockerEngine(docker_client)
    healthy = _container(docker_client, stack, "healthy", "sleep 60", health="true")
    unhealthy = _container(docker_client, stack, "unhealthy", "sleep 60", health="false")
    failed = _container(docker_client, stack, "failed", "exit 3")
    _container(docker_client, stack, "created", "true")
    for container in (healthy, unhealthy, failed):
        container.start()

    def settled() -> bool:
        health = {info.service: info.health for info in engine.list_containers(stack=stack)}
        states = {info.service: info.state for info in engine.list_containers(stack=stack)}
        return health["healthy"] == "healthy" and health["unhealthy"] == "unhealthy" and states["failed"] == "exited"

    _wait(settled)
    listed = {info.service: info for info in engine.list_containers(stack=stack)}

    assert {service: (info.state, info.health, info.exit_code) for service, info in listed.items()} == {
        "created": ("created", None, None),
        "failed": ("exited", None, 3),
        "healthy": ("running", "healthy", None),
        "unhealthy": ("running", "unhealthy", None),
    }
    for info in listed.values():
        inspected = engine.container_snapshot(info.name)
        assert inspected is not None
        assert (info.name, info.state, info.health, info.labels) == (
            inspected.name, inspected.state, inspected.health, inspected.labels)
    assert engine.list_containers(stack=stack, service="failed")[0].name == f"unicity-{stack}-failed"


def test_copy_file_content_and_time(docker_client: docker.DockerClient, stack: str) -> None:
    engine = DockerEngine(docker_client)
    container = _container(docker_client, stack, "files", "printf 'genesis\\n' > /tmp/trust-base.json; sleep 60")
    container.start()
    _wait(lambda: container.exec_run(["test", "-s", "/tmp/trust-base.json"]).exit_code == 0)

    data, modified_at = engine.copy_file(container.name, "/tmp/trust-base.json")

    assert data == b"genesis\n"
    assert abs(datetime.now(tz=UTC) - modified_at) < timedelta(minutes=1)
    with pytest.raises(DockerError, match="not found in container"):
        engine.copy_file(container.name, "/tmp/missing.json")
