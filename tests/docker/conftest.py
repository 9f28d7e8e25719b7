"""Fixtures for tests against the real Docker Engine: the offline images and labelled containers.

The images are built once per test run; the first run on a machine takes
minutes (debootstrap, cargo), later runs reuse the cache directory. Under
pytest-xdist every worker builds them under one file lock, so the first worker
builds and the others find the images up to date.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.fixtures.build_lock import image_build_lock
from tests.fixtures.faucet_standin import build_faucet_standin
from tests.fixtures.standins import build_aggregator_standins
from unicity_infra.engine.images import (
    FAUCET_IMAGE_ENV,
    build_images,
    build_offline_base,
)

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


@contextlib.contextmanager
def faucet_upstream(image: str) -> Iterator[None]:
    """Point the faucet wrapper build at IMAGE through FAUCET_IMAGE_ENV, as 'images build faucet --offline' reads it."""
    previous = os.environ.get(FAUCET_IMAGE_ENV)
    os.environ[FAUCET_IMAGE_ENV] = image
    try:
        yield
    finally:
        if previous is None:
            del os.environ[FAUCET_IMAGE_ENV]
        else:
            os.environ[FAUCET_IMAGE_ENV] = previous


def _build_faucet_images() -> None:
    """Build the faucet stand-in, then the faucet wrapper image FROM it."""
    with faucet_upstream(build_faucet_standin()):
        build_images(["faucet"], offline=True)


@pytest.fixture(scope="session", autouse=True)
def tier_images(docker_client: docker.DockerClient) -> OfflineImages:
    """Build every image the Docker tests use, under the build lock, and return the relay build's report.

    These are the relay, edge, aggregator proxy and faucet wrapper images, the
    aggregator stand-ins and the faucet stand-in. Module fixtures that call
    build_images again then find each image up to date. After the shared base,
    the images build in parallel threads.
    """
    progress = RecordingProgress()
    started = time.monotonic()
    with image_build_lock():
        build_offline_base()
        with ThreadPoolExecutor(max_workers=4) as pool:
            relay = pool.submit(build_images, ["relay"], offline=True, progress=progress)
            others = [
                pool.submit(build_images, ["edge"], offline=True),
                pool.submit(build_images, ["aggregator"], offline=True),
                pool.submit(build_aggregator_standins),
                pool.submit(_build_faucet_images),
            ]
            tags = relay.result()
            for build in others:
                build.result()
    return OfflineImages(tags=tags, progress=progress, seconds=time.monotonic() - started)


@pytest.fixture(scope="session")
def offline_images(tier_images: OfflineImages) -> OfflineImages:
    """The relay wrapper image built offline, with its base and relay stand-in."""
    return tier_images


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
    with image_build_lock():
        return build_images(["edge"], offline=True)["edge"]
