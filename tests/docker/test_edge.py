"""The local edge on the real Docker Engine, driven through the CLI as a user would.

Each test brings up its own edge (``edge up``) on its own network and high host ports, and
runs the relay behind it with a certificate from the edge's Pebble (no test mode). Both
are torn down afterwards. Tests thus collide neither with each other nor with a
developer's edge on ``haproxy-net``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from tests.docker.conftest import TEST_LABEL

pytestmark = pytest.mark.docker

DOMAIN = "relay.unicity.localhost"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


class EdgeStack:
    """One test's edge and relay: stack name, network, host ports and a CLI wrapper."""

    def __init__(self, tmp_path: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.name = f"test-{suffix}"
        self.network = f"unicity-test-edge-{suffix}"
        self.http_port, self.https_port, self.api_port = _free_ports(3)
        self.edge_container = f"unicity-{self.name}-edge"
        self.relay_container = f"unicity-{self.name}-relay"
        # Exported CA files and the fetched certificates land here, not in the user's home.
        self.state_home = tmp_path / "state"
        self.client = docker.from_env(version="auto")

    def cli(self, *arguments: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unicity-infra", "--stack", self.name, *arguments],
            capture_output=True, text=True, timeout=timeout_s, check=False,
            env={**os.environ, "XDG_STATE_HOME": str(self.state_home), "NO_COLOR": "1"},
        )

    def edge_up(self) -> dict[str, object]:
        result = self.cli(
            "edge", "up", "--network", self.network, "--http-port", str(self.http_port),
            "--https-port", str(self.https_port), "--api-port", str(self.api_port), "--json",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def edge_status(self) -> dict[str, object]:
        result = self.cli("edge", "status", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def run_relay(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("run", "relay", "--domain", DOMAIN, "--haproxy-net", self.network, *extra)

    def backends(self) -> dict[str, dict[str, object]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/v1/backends", timeout=5) as response:
            document = json.load(response)
        return {entry["domain"]: entry for entry in document["backends"]}

    def edge_address(self) -> str:
        attrs = self.client.containers.get(self.edge_container).attrs
        return attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]

    def relay_log(self) -> str:
        return self.client.containers.get(self.relay_container).logs(stdout=True, stderr=True).decode(errors="replace")


@pytest.fixture
def edge_stack(relay_image: str, edge_image: str, tmp_path: Path) -> Iterator[EdgeStack]:
    stack = EdgeStack(tmp_path)
    yield stack
    stack.cli("down", "--wipe", "--wipe-certificates")
    stack.cli("edge", "down", "--wipe")
    stack.client.close()


def peer_certificate(port: int, server_name: str, ca_file: str, *, timeout_s: float = 5.0) -> dict[str, object]:
    """Open a TLS connection through the edge's published port with SNI, verified against CA_FILE."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert()


def wait_for(check, *, timeout_s: float, interval_s: float = 0.5) -> float:  # noqa: ANN001 - a predicate
    """Poll CHECK until it returns true; return the seconds waited, or fail the test after TIMEOUT_S."""
    started = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - started < timeout_s:
        try:
            if check():
                return time.monotonic() - started
        except (OSError, ssl.SSLError, ValueError) as exc:
            last_error = exc
        time.sleep(interval_s)
    pytest.fail(f"condition not met within {timeout_s:g} s (last error: {last_error!r})")


def test_run_relay_behind_edge_probes_green(edge_stack: EdgeStack) -> None:
    edge_stack.edge_up()

    result = edge_stack.run_relay("--json")

    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    checks = {check["name"]: check["status"] for target in document["probes"]["targets"] for check in target["checks"]}
    assert document["ok"] is True
    assert checks, "the run printed no probe results"
    assert set(checks.values()) == {"ok"}, checks
    assert any("the local edge's ACME CA (Pebble)" in note for note in document["notes"])

    ca_bundle = str(edge_stack.edge_status()["ca_bundle"])
    certificate = peer_certificate(edge_stack.https_port, DOMAIN, ca_bundle)
    log = edge_stack.relay_log()
    assert ("DNS", DOMAIN) in certificate["subjectAltName"]
    assert "ACME CA: https://haproxy:14000/dir (advertised by the edge)" in log
    assert f"domain reaches this container domain={DOMAIN}" in log
    assert "self-signed" not in log
    assert edge_stack.backends()[DOMAIN]["https_port"] == 443


def test_edge_restart_without_state_gets_route_back(edge_stack: EdgeStack) -> None:
    edge_stack.edge_up()
    assert edge_stack.run_relay().returncode == 0
    ca_bundle = str(edge_stack.edge_status()["ca_bundle"])
    assert peer_certificate(edge_stack.https_port, DOMAIN, ca_bundle)
    edge = edge_stack.client.containers.get(edge_stack.edge_container)
    relay_started_at = edge_stack.client.containers.get(edge_stack.relay_container).attrs["State"]["StartedAt"]

    # The edge loses every registration, then dies and comes back, so only the relay's heartbeat can restore the route.
    removed = edge.exec_run(["rm", "-f", "/var/lib/unicity-edge/backends.json"])
    assert removed.exit_code == 0, removed.output
    edge.kill()
    edge.start()
    waited_s = wait_for(lambda: peer_certificate(edge_stack.https_port, DOMAIN, ca_bundle), timeout_s=35)

    relay = edge_stack.client.containers.get(edge_stack.relay_container)
    assert waited_s < 35
    assert relay.attrs["State"]["StartedAt"] == relay_started_at
    # The edge routes again before its API replies to the relay, which logs the repair only then.
    wait_for(lambda: "re-registered with the edge" in edge_stack.relay_log(), timeout_s=5, interval_s=0.2)


def test_docker_stop_removes_registration_within_5s(edge_stack: EdgeStack) -> None:
    edge_stack.edge_up()
    assert edge_stack.run_relay().returncode == 0
    assert DOMAIN in edge_stack.backends()
    relay: Container = edge_stack.client.containers.get(edge_stack.relay_container)

    stopper = threading.Thread(target=relay.stop, kwargs={"timeout": 10})
    started = time.monotonic()
    stopper.start()
    waited_s = wait_for(lambda: DOMAIN not in edge_stack.backends(), timeout_s=5, interval_s=0.1)
    stopper.join(15)
    relay.reload()

    assert waited_s < 5
    assert time.monotonic() - started < 10
    assert relay.attrs["State"]["ExitCode"] == 0
    assert f"unregistered backend domain={DOMAIN}" in edge_stack.relay_log()


def test_run_with_domain_resolving_elsewhere_exits_10(edge_stack: EdgeStack) -> None:
    edge_stack.edge_up()
    # Another web server answers to the domain on the shared network, as when DNS still points
    # at an old host. With the edge's address instead of its alias, 'run' does not pin the
    # domain to the edge, so the container resolves it through Docker's DNS to this server.
    decoy = edge_stack.client.containers.create(
        f"unicity-infra/relay:{_version()}",
        entrypoint=["python3", "-m", "http.server", "80", "--directory", "/tmp"],
        labels={TEST_LABEL: "1"},
        network=edge_stack.network,
        detach=True,
    )
    try:
        edge_stack.client.networks.get(edge_stack.network).disconnect(decoy)
        edge_stack.client.networks.get(edge_stack.network).connect(decoy, aliases=[DOMAIN])
        decoy.start()
        decoy.reload()
        decoy_address = decoy.attrs["NetworkSettings"]["Networks"][edge_stack.network]["IPAddress"]

        result = edge_stack.run_relay("--haproxy-host", edge_stack.edge_address(), "--timeout", "120")
    finally:
        decoy.remove(force=True, v=True)
    output = result.stdout + result.stderr

    assert result.returncode != 0, output
    # The restart policy may restart the container before 'run' reads its status, so the log line is what counts.
    assert "supervisor exiting with status 10" in output, output
    assert f"domain {DOMAIN} does not reach this container: it resolves to {decoy_address}" in output, output
    assert "HTTP 404 without this container's token" in output, output
    # A setup error must not leave Docker restarting the container forever.
    time.sleep(3)
    assert edge_stack.client.containers.get(edge_stack.relay_container).status == "exited"


def _version() -> str:
    from unicity_infra import __version__

    return __version__
