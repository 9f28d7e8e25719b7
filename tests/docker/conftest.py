"""Fixtures for tests against the real Docker Engine: the offline images and labelled containers.

The images are built once per test run; the first run on a machine takes
minutes (debootstrap, cargo), later runs reuse the cache directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from unicity_infra.engine.images import build_images

TEST_LABEL = "org.unicity.infra.test"


@dataclass
class RecordingProgress:
    """Progress that keeps every report, so tests can assert which commands ran."""

    stages: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    waits: int = 0

    def stage(self, title: str) -> None:
        self.stages.append(title)

    def action(self, text: str) -> None:
        self.actions.append(text)

    def wait(self, text: str, elapsed_s: float, timeout_s: float | None = None) -> None:
        self.waits += 1

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(frozen=True)
class OfflineImages:
    """The tags of one offline build_images call and what it reported."""

    tags: dict[str, str]
    progress: RecordingProgress
    seconds: float


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(version="auto")
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the Docker Engine is not reachable ({exc}); start dockerd to run the docker tests")
    yield client
    client.close()


@pytest.fixture(scope="session")
def offline_images(docker_client: docker.DockerClient) -> OfflineImages:
    """Build the relay wrapper image offline, with its base and relay stand-in."""
    progress = RecordingProgress()
    started = time.monotonic()
    tags = build_images(["relay"], offline=True, progress=progress)
    return OfflineImages(tags=tags, progress=progress, seconds=time.monotonic() - started)


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[list[Container]]:
    """Collect the containers a test creates; each one is removed in teardown, even on failure."""
    created: list[Container] = []
    yield created
    for container in created:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


def run_to_completion(
    client: docker.DockerClient,
    created: list[Container],
    image: str,
    command: list[str],
    *,
    entrypoint: list[str] | None = None,
    timeout_s: float = 60,
) -> tuple[int, str]:
    """Run COMMAND in a labelled container from IMAGE and return its exit status and output."""
    container = client.containers.create(
        image, command=command, entrypoint=entrypoint, labels={TEST_LABEL: "1"}, detach=True
    )
    created.append(container)
    container.start()
    status = container.wait(timeout=timeout_s)["StatusCode"]
    return status, container.logs(stdout=True, stderr=True).decode(errors="replace")


@pytest.fixture(scope="session")
def relay_image(offline_images: OfflineImages) -> str:
    """Tag of the relay wrapper image built offline."""
    return offline_images.tags["relay"]


@pytest.fixture(scope="session")
def edge_image(offline_images: OfflineImages) -> str:
    """Tag of the local edge image (HAProxy, registration API, Pebble) built offline."""
    return build_images(["edge"], offline=True)["edge"]
