"""The aggregator stack's plan applied on the real Docker Engine with the stand-in upstream images.

It runs every genesis step, the BFT root, MongoDB and the aggregator (not the
TLS proxy, whose image is built elsewhere), then checks the genesis on the
volume, the aggregator's /health, genesis reuse and the failure paths.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.docker.conftest import TEST_LABEL
from tests.fixtures.pebble import free_port
from tests.fixtures.standins import STANDS_IN_LABEL, build_aggregator_standins
from unicity_infra.engine.apply import apply_plan
from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import ContainerFailedError
from unicity_infra.settings import PublishAddress, RunSettings
from unicity_infra.stack.aggregator import (
    AGGREGATOR_IMAGES,
    LABEL_COMPONENT,
    aggregator_plan,
)
from unicity_infra.stack.plan import StackPlan
from unicity_infra.stack.spec import LABEL_STACK

pytestmark = pytest.mark.docker

READY_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def standin_images() -> dict[str, str]:
    return build_aggregator_standins()


class AggregatorStack:
    """One test stack of the aggregator plan: a unique name, its engine and what it leaves behind."""

    def __init__(self, client: docker.DockerClient, images: dict[str, str]) -> None:
        self.client = client
        self.images = images
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.engine = DockerEngine(client)
        # Image VOLUMEs give every container anonymous volumes, which the
        # engine leaves behind when it replaces a container.
        self.anonymous_volumes: set[str] = set()

    def plan(self, *, root_env: dict[str, str] | None = None) -> StackPlan:
        settings = RunSettings(
            service="aggregator",
            image="unused",
            container_name="unused",
            haproxy_host=None,
            publish=PublishAddress("127.0.0.1", self.port),
        )
        plan = aggregator_plan(settings, stack=self.name, images=self.images, include_proxy=False)
        if root_env:
            plan.containers = [
                replace(spec, env={**spec.env, **root_env}) if spec.labels[LABEL_COMPONENT] == "bft-root" else spec
                for spec in plan.containers
            ]
        return plan

    def container(self, component: str) -> str:
        return f"unicity-{self.name}-{component}"

    @property
    def genesis_volume(self) -> str:
        return f"unicity-{self.name}-aggregator-genesis"

    def apply(self, plan: StackPlan | None = None) -> None:
        self.record_anonymous_volumes()
        apply_plan(self.engine, plan or self.plan(), timeout_s=READY_TIMEOUT_S)

    def genesis_file(self, path: str) -> bytes:
        """Return a file of the genesis volume, read through the exited genesis-verify container."""
        return self.engine.read_file(self.container("genesis-verify"), f"/genesis/{path}")

    def health(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=10) as reply:
            assert reply.status == 200
            return json.loads(reply.read())

    def record_anonymous_volumes(self) -> None:
        named = {volume.name for volume in self.client.volumes.list(filters={"label": f"{LABEL_STACK}={self.name}"})}
        for container in self.stack_containers():
            for mount in container.attrs.get("Mounts", []):
                if mount.get("Type") == "volume" and mount.get("Name") not in named:
                    self.anonymous_volumes.add(mount["Name"])

    def stack_containers(self) -> list[Container]:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={self.name}"})

    def remove_containers(self) -> None:
        self.record_anonymous_volumes()
        for container in self.stack_containers():
            container.remove(force=True, v=True)

    def remove(self) -> None:
        """Remove every container, volume and network of the stack, by label."""
        self.remove_containers()
        for volume in self.client.volumes.list(filters={"label": f"{LABEL_STACK}={self.name}"}):
            volume.remove(force=True)
        for name in self.anonymous_volumes:
            try:
                self.client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                pass
        for network in self.client.networks.list(filters={"label": f"{LABEL_STACK}={self.name}"}):
            network.remove()


@pytest.fixture
def stack(docker_client: docker.DockerClient, standin_images: dict[str, str]) -> Iterator[AggregatorStack]:
    aggregator_stack = AggregatorStack(docker_client, standin_images)
    yield aggregator_stack
    aggregator_stack.remove()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_standins_labelled_with_upstream(docker_client: docker.DockerClient, standin_images: dict[str, str]) -> None:
    for key in ("bft-core", "mongo", "aggregator-go", "curl"):
        labels = docker_client.images.get(standin_images[key]).labels

        assert standin_images[key].startswith(f"unicity-infra-test/standin-{key}:")
        assert labels[STANDS_IN_LABEL] == AGGREGATOR_IMAGES[key]


def test_aggregator_stack_genesis_and_health(stack: AggregatorStack) -> None:
    stack.apply()

    trust_base = json.loads(stack.genesis_file("trust-base.json"))
    root_node = json.loads(stack.genesis_file("root/node-info.json"))
    bootstrap = stack.genesis_file("bootstrap-addresses").decode()
    health = stack.health()

    assert trust_base["networkId"] == 3
    assert [node["nodeId"] for node in trust_base["rootNodes"]] == [root_node["nodeId"]]
    assert root_node["nodeId"] in trust_base["signatures"]
    assert bootstrap == f"/dns4/{stack.container('bft-root')}/tcp/8000/p2p/{root_node['nodeId']}\n"
    assert health["status"] == "ok"


def test_aggregator_stack_reapply_reuses_genesis(stack: AggregatorStack) -> None:
    stack.apply()
    first_hash = _sha256(stack.genesis_file("trust-base.json"))

    stack.apply()
    uploads = stack.genesis_file("root/standin-configurations.jsonl").decode().splitlines()
    replica_set = json.loads(stack.engine.read_file(stack.container("mongodb"), "/data/db/standin-replset.json"))

    assert _sha256(stack.genesis_file("trust-base.json")) == first_hash
    assert len(uploads) == 1
    assert replica_set["initiateCount"] == 1
    assert stack.health()["status"] == "ok"


def test_aggregator_stack_new_genesis_after_volume_removed(stack: AggregatorStack) -> None:
    stack.apply()
    first_hash = _sha256(stack.genesis_file("trust-base.json"))

    stack.remove_containers()
    stack.client.volumes.get(stack.genesis_volume).remove()
    stack.apply()

    assert _sha256(stack.genesis_file("trust-base.json")) != first_hash
    assert stack.health()["status"] == "ok"


def test_aggregator_stack_upload_error_fails_apply(stack: AggregatorStack) -> None:
    with pytest.raises(ContainerFailedError) as failure:
        stack.apply(stack.plan(root_env={"STANDIN_UPLOAD_STATUS": "500"}))

    assert failure.value.container == stack.container("bft-config-upload")
    assert failure.value.exit_status == 22
    assert stack.container("aggregator") not in [container.name for container in stack.stack_containers()]


def test_aggregator_stack_corrupt_genesis_stops_at_prepare(
    stack: AggregatorStack,
    docker_client: docker.DockerClient,
    standin_images: dict[str, str],
    containers: list[Container],
) -> None:
    stack.apply()
    stack.remove_containers()
    corrupter = docker_client.containers.create(
        standin_images["genesis-tools"],
        ["sh", "-c", "printf '{\"version\": 1,' > /genesis/trust-base.json"],
        volumes={stack.genesis_volume: {"bind": "/genesis", "mode": "rw"}},
        labels={TEST_LABEL: "1"},
    )
    containers.append(corrupter)
    corrupter.start()
    assert corrupter.wait(timeout=60)["StatusCode"] == 0

    with pytest.raises(ContainerFailedError) as failure:
        stack.apply()

    assert failure.value.container == stack.container("genesis-prepare")
    assert any("trust-base.json: is not valid JSON" in line for line in failure.value.log_tail)
