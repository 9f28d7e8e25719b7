"""`up --mode local-edge` with the offline images and the stand-ins, then `probe` as a wallet through HAProxy.

The test first starts its own edge on its own network and free host ports, so it
does not collide with a developer's edge on haproxy-net and ports 80/443 or with
other tests. `up` then uses that running edge. Everything the test starts is
removed afterwards, also when an assertion fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.fixtures.faucet_standin import build_faucet_standin
from tests.fixtures.pebble import free_port
from tests.fixtures.standins import build_aggregator_standins
from unicity_infra.engine.images import FAUCET_IMAGE_ENV, build_images
from unicity_infra.stack.spec import LABEL_STACK

pytestmark = pytest.mark.docker

SUFFIX = "unicity.localhost"


@pytest.fixture(scope="module")
def stack_images(relay_image: str, edge_image: str) -> str:
    """Build the aggregator proxy and faucet images offline; return the stand-in overrides of the aggregator stack."""
    build_images(["aggregator"], offline=True)
    standins = build_aggregator_standins()
    previous = os.environ.get(FAUCET_IMAGE_ENV)
    os.environ[FAUCET_IMAGE_ENV] = build_faucet_standin()
    try:
        build_images(["faucet"], offline=True)
    finally:
        if previous is None:
            del os.environ[FAUCET_IMAGE_ENV]
        else:
            os.environ[FAUCET_IMAGE_ENV] = previous
    return " ".join(f"{key}={standins[key]}" for key in ("bft-core", "mongo", "aggregator-go", "curl"))


class LocalEdgeStack:
    """One test's stack: its name, edge network, host ports and a CLI wrapper with its own state directory."""

    def __init__(self, tmp_path: Path, overrides: str) -> None:
        self.name = f"le-{uuid.uuid4().hex[:8]}"
        self.network = f"unicity-test-edge-{self.name}"
        self.http_port, self.https_port, self.api_port = free_port(), free_port(), free_port()
        self.env = {**os.environ, "UNICITY_INFRA_IMAGE_OVERRIDES": overrides, "XDG_STATE_HOME": str(tmp_path / "state"),
                    "NO_COLOR": "1"}
        self.client = docker.from_env(version="auto")

    def cli(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unicity-infra", "--stack", self.name, *arguments], capture_output=True, text=True,
                              timeout=900, check=False, env=self.env, stdin=subprocess.DEVNULL)

    def ok(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        result = self.cli(*arguments)
        assert result.returncode == 0, f"{' '.join(arguments)}: {result.stdout}\n{result.stderr}"
        return result

    def containers(self) -> list[str]:
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={self.name}"})
        return sorted(container.name for container in found)

    def volumes(self) -> list[str]:
        return sorted(volume.name for volume in self.client.volumes.list(filters={"label": f"{LABEL_STACK}={self.name}"}))


@pytest.fixture
def stack(stack_images: str, tmp_path: Path) -> Iterator[LocalEdgeStack]:
    local = LocalEdgeStack(tmp_path, stack_images)
    yield local
    local.cli("down", "--wipe", "--wipe-certificates", "--yes")
    local.cli("edge", "down", "--wipe")
    local.client.close()


def test_up_local_edge_probe_green(stack: LocalEdgeStack) -> None:
    edge = json.loads(stack.ok("edge", "up", "--network", stack.network, "--http-port", str(stack.http_port),
                               "--https-port", str(stack.https_port), "--api-port", str(stack.api_port),
                               "--json").stdout)

    up = stack.cli("up", "--mode", "local-edge", "--json")

    assert up.returncode == 0, up.stdout + up.stderr
    endpoints = json.loads(up.stdout)["endpoints"]
    assert endpoints["relay_url"] == f"wss://relay.{SUFFIX}"
    assert endpoints["aggregator_url"] == f"https://aggregator.{SUFFIX}"
    assert endpoints["faucet_url"] == f"https://faucet.{SUFFIX}"
    assert endpoints["ca_bundle"] == edge["ca_bundle"]
    assert len(endpoints["faucet_chain_pubkey"]) == 66

    # The wallet's view: all four endpoints through HAProxy, verified against the local CA.
    probe = stack.cli("probe", "--json")

    assert probe.returncode == 0, probe.stdout + probe.stderr
    document = json.loads(probe.stdout)
    assert document["ok"] is True
    assert [target["target"].split(":")[0] for target in document["targets"]] == ["aggregator", "relay", "faucet",
                                                                                  "trust base"]
    for target in document["targets"]:
        assert target["target"].endswith(f"via 127.0.0.1:{stack.https_port}")
        checks = {check["name"]: check for check in target["checks"]}
        assert checks["certificate chain"]["status"] == "ok", target
        assert edge["ca_bundle"] in checks["certificate chain"]["detail"]

    # Harness variables: Node must trust the same bundle.
    variables = json.loads(stack.ok("env", "--format", "json").stdout)
    assert variables["NODE_EXTRA_CA_CERTS"] == edge["ca_bundle"]
    assert variables["SPHERE_NOSTR_RELAYS"] == f"wss://relay.{SUFFIX}"

    # The faucet reached the relay and the aggregator by their names, through the edge, with the edge's CA.
    faucet = stack.client.containers.get(f"unicity-{stack.name}-faucet")
    environment = dict(entry.split("=", 1) for entry in faucet.attrs["Config"]["Env"])
    assert environment["NODE_EXTRA_CA_CERTS"] == "/run/secrets/edge_ca_bundle"
    assert environment["SPHERE_TRUSTBASE_URL"] == f"https://aggregator.{SUFFIX}/.well-known/trust-base.json"
    edge_address = stack.client.containers.get(f"unicity-{stack.name}-edge").attrs[
        "NetworkSettings"]["Networks"][stack.network]["IPAddress"]
    assert f"relay.{SUFFIX}:{edge_address}" in faucet.attrs["HostConfig"]["ExtraHosts"]
    assert f"aggregator.{SUFFIX}:{edge_address}" in faucet.attrs["HostConfig"]["ExtraHosts"]
    log = faucet.logs().decode(errors="replace")
    running = [json.loads(line[line.index("{"):]) for line in log.splitlines() if '"faucet_running"' in line]
    assert running, log[-2000:]
    assert running[-1]["relays"] == [f"wss://relay.{SUFFIX}"]

    # Again: nothing changes, so the mounted CA bundle keeps the spec stable.
    again = stack.cli("up", "--mode", "local-edge")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "no changes" in again.stderr

    # down removes the stack and leaves only the edge, which 'edge down' removes.
    stack.ok("down", "--wipe", "--wipe-certificates", "--yes")
    assert stack.containers() == [f"unicity-{stack.name}-edge"]
    assert stack.volumes() == [f"unicity-{stack.name}-edge-state"]
    stack.ok("edge", "down", "--wipe")
    assert stack.containers() == []
    assert stack.volumes() == []
