"""`run aggregator` end to end on the real Docker Engine, driven through the CLI with the stand-in upstream images.

The proxy image is the real one, built offline; bft-core, MongoDB,
aggregator-go and curl are the stand-ins from tests/fixtures, passed with
--image-override (through UNICITY_INFRA_IMAGE_OVERRIDES) as an operator with
a registry would pass other images.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.docker.conftest import TEST_LABEL
from tests.fixtures.pebble import free_port
from tests.fixtures.standins import build_aggregator_standins
from unicity_infra.engine.images import build_images

pytestmark = pytest.mark.docker

DOMAIN = "aggregator.test"
CLI_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def proxy_image() -> str:
    return build_images(["aggregator"], offline=True)["aggregator"]


@pytest.fixture(scope="module")
def standin_images(docker_client: docker.DockerClient) -> dict[str, str]:
    return build_aggregator_standins()


def _derived_standin(client: docker.DockerClient, base: str, name: str, env: dict[str, str]) -> str:
    """Build BASE with ENV set, tagged by a digest of both, and return the tag."""
    lines = [f"FROM {base}"] + [f"ENV {key}={value}" for key, value in sorted(env.items())]
    dockerfile = "\n".join(lines) + "\n"
    tag = f"unicity-infra-test/standin-{name}:{hashlib.sha256(dockerfile.encode()).hexdigest()[:12]}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, labels={TEST_LABEL: "1"}, rm=True)
    return tag


@pytest.fixture(scope="module")
def failing_upload_image(docker_client: docker.DockerClient, standin_images: dict[str, str]) -> str:
    return _derived_standin(docker_client, standin_images["bft-core"], "bft-core-upload-500",
                            {"STANDIN_UPLOAD_STATUS": "500"})


@pytest.fixture(scope="module")
def stuck_aggregator_image(docker_client: docker.DockerClient, standin_images: dict[str, str]) -> str:
    return _derived_standin(docker_client, standin_images["aggregator-go"], "aggregator-go-stuck",
                            {"STANDIN_STUCK_HEIGHT": "1"})


class AggregatorStack:
    """One test stack run through the CLI: its name, published port and image overrides."""

    def __init__(self, tmp_path: Path, images: dict[str, str]) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.tmp_path = tmp_path
        self.images = dict(images)
        self.state_dir = tmp_path / "state"

    def cli(self, *arguments: str, images: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        overrides = {**self.images, **(images or {})}
        env = {
            **os.environ,
            "UNICITY_INFRA_IMAGE_OVERRIDES": " ".join(f"{key}={ref}" for key, ref in overrides.items()),
            "XDG_STATE_HOME": str(self.state_dir),
        }
        return subprocess.run(
            ["unicity-infra", "--stack", self.name, *arguments],
            capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False, env=env, stdin=subprocess.DEVNULL,
        )

    def run_direct(self, *extra: str, images: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("run", "aggregator", "--no-haproxy", "--publish", f"127.0.0.1:{self.port}", *extra,
                        images=images)

    def run_json(self, *extra: str) -> dict[str, object]:
        result = self.run_direct("--json", *extra)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def export_trust_base(self) -> Path:
        path = self.tmp_path / f"exported-{uuid.uuid4().hex[:6]}.json"
        result = self.cli("trust-base", "export", "--out", str(path))
        assert result.returncode == 0, result.stderr
        return path

    def container(self, component: str) -> str:
        return f"unicity-{self.name}-{component}"


@pytest.fixture
def stack(proxy_image: str, standin_images: dict[str, str], tmp_path: Path) -> Iterator[AggregatorStack]:
    aggregator_stack = AggregatorStack(tmp_path, standin_images)
    yield aggregator_stack
    aggregator_stack.cli("down", "--wipe", "--wipe-certificates", "--yes")


def _check_statuses(document: dict[str, object]) -> dict[str, str]:
    return {check["name"]: check["status"] for target in document["probes"]["targets"]  # type: ignore[index]
            for check in target["checks"]}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_aggregator_direct_probe_green(stack: AggregatorStack) -> None:
    document = stack.run_json()
    exported = stack.export_trust_base()

    probe = stack.cli("probe", "aggregator", f"http://127.0.0.1:{stack.port}", "--trust-base", str(exported))

    checks = _check_statuses(document)
    assert document["ok"] is True
    assert set(checks) == {"TCP connect", "health", "block height", "trust base", "trust base file"}
    assert set(checks.values()) == {"ok"}, checks
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "✓ trust base file: served trust base equals" in probe.stdout
    assert document["trust_base"]["sha256"] == _sha256(exported)  # type: ignore[index]


def test_run_aggregator_tls_probe_green(stack: AggregatorStack, docker_client: docker.DockerClient) -> None:
    result = stack.run_direct("--ssl-test-mode", "--domain", DOMAIN, "--json")
    assert result.returncode == 0, result.stderr
    certificate = stack.tmp_path / "proxy-cert.pem"
    certificate.write_bytes(docker_client.containers.get(stack.container("aggregator-proxy")).exec_run(
        ["cat", f"/etc/letsencrypt/live/{DOMAIN}/fullchain.pem"]).output)
    exported = stack.export_trust_base()

    probe = stack.cli("probe", "aggregator", f"https://{DOMAIN}:{stack.port}", "--connect", f"127.0.0.1:{stack.port}",
                      "--ca-file", str(certificate), "--trust-base", str(exported))

    checks = _check_statuses(json.loads(result.stdout))
    assert set(checks.values()) == {"ok"}, checks
    assert "certificate chain" in checks
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "✗" not in probe.stdout


def test_run_aggregator_restart_keeps_trust_base(stack: AggregatorStack) -> None:
    first = stack.run_json()

    second = stack.run_json()

    assert second["trust_base"]["sha256"] == first["trust_base"]["sha256"]  # type: ignore[index]
    assert second["ok"] is True


def test_run_aggregator_fresh_new_trust_base(stack: AggregatorStack) -> None:
    first = stack.run_json()

    fresh = stack.run_json("--fresh", "--yes")

    assert fresh["trust_base"]["sha256"] != first["trust_base"]["sha256"]  # type: ignore[index]
    assert fresh["ok"] is True
    assert any(note.startswith("--fresh removed ") for note in fresh["notes"])  # type: ignore[union-attr]


def test_run_aggregator_fresh_without_yes_keeps_chain(stack: AggregatorStack) -> None:
    first = stack.run_json()

    refused = stack.run_direct("--fresh")
    exported = stack.export_trust_base()

    assert refused.returncode == 2
    assert "add --yes" in refused.stderr
    assert _sha256(exported) == first["trust_base"]["sha256"]  # type: ignore[index]


def test_down_wipe_removes_genesis_with_mongodb(stack: AggregatorStack, docker_client: docker.DockerClient) -> None:
    stack.run_json()
    volumes = {f"unicity-{stack.name}-aggregator-genesis", f"unicity-{stack.name}-aggregator-mongodb"}

    refused = stack.cli("down", "aggregator", "--wipe")
    kept = {volume.name for volume in docker_client.volumes.list(filters={"label": f"org.unicity.infra.stack={stack.name}"})}
    wiped = stack.cli("down", "aggregator", "--wipe", "--yes", "--json")

    assert refused.returncode == 2
    assert "add --yes" in refused.stderr
    assert volumes <= kept
    assert wiped.returncode == 0, wiped.stderr
    assert volumes <= set(json.loads(wiped.stdout)["volumes"])


def test_status_shows_genesis(stack: AggregatorStack) -> None:
    document = stack.run_json()

    status = stack.cli("status", "--json")

    genesis = json.loads(status.stdout)["aggregator_genesis"]
    assert genesis["sha256"] == document["trust_base"]["sha256"]  # type: ignore[index]
    assert genesis["networkId"] == 3
    assert genesis["createdAt"].endswith("Z")


def test_run_aggregator_upload_error_names_step(stack: AggregatorStack, failing_upload_image: str) -> None:
    result = stack.run_direct(images={"bft-core": failing_upload_image})

    assert result.returncode == 1
    assert f"container '{stack.container('bft-config-upload')}' exited with status 22" in result.stderr
    assert "STANDIN_UPLOAD_STATUS is 500" in result.stderr


def test_run_aggregator_stuck_height_fails(stack: AggregatorStack, stuck_aggregator_image: str) -> None:
    result = stack.run_direct(images={"aggregator-go": stuck_aggregator_image})

    assert result.returncode == 1
    assert "block height did not advance" in result.stderr
    assert f"container '{stack.container('aggregator')}' is not ready" in result.stderr
    assert "log lines follow" in result.stderr
    assert "  | " in result.stderr


def test_run_aggregator_missing_image_named(stack: AggregatorStack) -> None:
    result = stack.run_direct(images={"mongo": "unicity-infra-test/absent-mongo:0"})

    assert result.returncode == 1
    assert "mongo (unicity-infra-test/absent-mongo:0)" in result.stderr
    assert "--image-override KEY=IMAGE" in result.stderr


EDGE_DOMAIN = "aggregator.unicity.localhost"


@pytest.fixture(scope="module")
def edge_image() -> str:
    return build_images(["edge"], offline=True)["edge"]


@pytest.fixture
def edge_stack(stack: AggregatorStack, edge_image: str) -> Iterator[AggregatorStack]:
    """STACK with its own local edge on its own network and free host ports; the edge is removed afterwards."""
    network = f"unicity-test-edge-{stack.name}"
    http_port, https_port, api_port = free_port(), free_port(), free_port()
    stack.edge_network = network  # type: ignore[attr-defined]
    try:
        result = stack.cli("edge", "up", "--network", network, "--http-port", str(http_port),
                           "--https-port", str(https_port), "--api-port", str(api_port), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        yield stack
    finally:
        stack.cli("down", "--wipe", "--wipe-certificates", "--yes")
        stack.cli("edge", "down", "--wipe")


def test_run_aggregator_through_local_edge(edge_stack: AggregatorStack) -> None:
    network = edge_stack.edge_network  # type: ignore[attr-defined]

    result = edge_stack.cli("run", "aggregator", "--domain", EDGE_DOMAIN, "--haproxy-net", network, "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    checks = _check_statuses(document)
    assert document["endpoint"] == f"https://{EDGE_DOMAIN}"
    assert "certificate chain" in checks
    assert set(checks.values()) == {"ok"}, checks
