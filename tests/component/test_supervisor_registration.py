"""The supervisor's life on an edge: two registration phases, the edge's ACME CA, heartbeat, deregistration.

Everything runs on loopback as host processes: the edge (``python3 -m unicity_infra.edge``
with a real haproxy 2.6), Pebble with pebble-challtestsrv resolving every name to
127.0.0.1, nginx and the supervisor. Pebble validates HTTP-01 on the edge's HTTP port, so the
challenge travels CA → haproxy (by Host) → nginx, as it does in production. The edge
advertises Pebble through ``GET /v1/edge``; no test sets ACME_SERVER.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.component.conftest import EntrypointRun, ProcessReaper, pick_free_ports, wait_until
from tests.component.edge_support import EdgeProcess, NameHTTPServer, start_edge_process
from tests.fixtures.pebble import PebbleCA, start_pebble

pytestmark = pytest.mark.component

DOMAIN = "relay.unicity-test.example"
ALIAS = "nostr.unicity-test.example"
API_KEY = "component-test-key-5f1c"
StartEntrypoint = Callable[..., EntrypointRun]


@dataclass
class EdgeWithCA:
    """A running edge that advertises a running Pebble, and what a test needs to restart the edge."""

    edge: EdgeProcess
    pebble: PebbleCA
    roots_file: Path
    directory: Path
    ports: tuple[int, int, int]
    extra_args: list[str]

    def backends(self) -> dict[str, dict[str, object]]:
        status, document = self.edge.api("GET", "/v1/backends")
        assert status == 200, f"GET /v1/backends returned HTTP {status}: {document!r}"
        assert isinstance(document, dict)
        return {entry["domain"]: entry for entry in document["backends"]}


@pytest.fixture()
def edge_with_ca(tmp_path: Path, process_reaper: ProcessReaper) -> Iterator[EdgeWithCA]:
    api_port, http_port, https_port = pick_free_ports(3)
    pebble = start_pebble(tmp_path / "pebble", http_port=http_port)
    try:
        roots_file = tmp_path / "pebble-roots.pem"
        roots_file.write_text(pebble.issuing_roots_pem())
        extra_args = [
            "--acme-directory", pebble.directory_url,
            "--acme-ca-file", str(pebble.listener_ca_file),
            "--ca-bundle-path", str(roots_file),
        ]
        directory = tmp_path / "edge"
        edge = start_edge_process(
            directory, process_reaper, api_key=API_KEY, ports=(api_port, http_port, https_port), extra_args=extra_args
        )
        yield EdgeWithCA(edge, pebble, roots_file, directory, (api_port, http_port, https_port), extra_args)
    finally:
        pebble.stop()


def start_on_edge(start_entrypoint: StartEntrypoint, setup: EdgeWithCA, **overrides: str) -> EntrypointRun:
    """Start the relay plan registered with SETUP's edge, reaching the domain through the edge's HTTP port."""
    https_port = pick_free_ports(1)[0]
    env = {
        "SSL_DOMAIN": DOMAIN,
        "HAPROXY_HOST": "127.0.0.1",
        "HAPROXY_API_PORT": str(setup.edge.api_port),
        "HAPROXY_API_KEY_FILE": str(setup.directory / "api-key"),
        # The edge's haproxy connects to this name; here the container is the loopback host.
        "UNICITY_CONTAINER_NAME": "127.0.0.1",
        "UNICITY_HTTPS_PORT": str(https_port),
        "SSL_HTTPS_PORT": str(https_port),
        # What DNS and port 80 are for a container: the domain resolves to the edge's HTTP port.
        "UNICITY_HOSTS": f"{DOMAIN}=127.0.0.1,{ALIAS}=127.0.0.1",
        "UNICITY_DOMAIN_HTTP_PORT": str(setup.edge.http_port),
    }
    env.update(overrides)
    return start_entrypoint(**env)


def registered_https_port(setup: EdgeWithCA, domain: str = DOMAIN) -> object:
    """Return the https_port the edge holds for DOMAIN, or the string "absent"."""
    entry = setup.backends().get(domain)
    return "absent" if entry is None else entry["https_port"]


def tls_through_edge(setup: EdgeWithCA, server_name: str = DOMAIN) -> dict[str, object]:
    """Handshake through the edge's TLS port with SNI, verified against Pebble's roots; return the peer certificate."""
    context = ssl.create_default_context(cafile=str(setup.roots_file))
    with socket.create_connection(("127.0.0.1", setup.edge.https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert()


def wait_for_phase_2(setup: EdgeWithCA, run: EntrypointRun, *, timeout_s: float = 90) -> None:
    def phase_2() -> bool:
        if run.process.poll() is not None:
            pytest.fail(f"entrypoint exited with {run.process.returncode}; log:\n{run.log_text()}")
        return registered_https_port(setup) == run.https_port

    wait_until(phase_2, timeout_s=timeout_s, interval_s=0.1, description="phase 2 registration")


def test_registration_phases_observed_by_edge(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA) -> None:
    run = start_on_edge(start_entrypoint, edge_with_ca, SSL_DOMAIN_ALIASES=ALIAS)

    observed: list[object] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and run.https_port not in observed:
        assert run.process.poll() is None, f"entrypoint exited with {run.process.returncode}; log:\n{run.log_text()}"
        port = registered_https_port(edge_with_ca)
        if not observed or observed[-1] != port:
            observed.append(port)
        time.sleep(0.05)
    run.wait_running(timeout_s=30)
    alias_entry = edge_with_ca.backends()[ALIAS]
    certificate = tls_through_edge(edge_with_ca)
    alias_certificate = tls_through_edge(edge_with_ca, ALIAS)

    assert [port for port in observed if port != "absent"] == [None, run.https_port]
    assert alias_entry["https_port"] == run.https_port
    assert alias_entry["http_port"] == run.http_port
    assert ("DNS", DOMAIN) in certificate["subjectAltName"]
    assert ("DNS", ALIAS) in alias_certificate["subjectAltName"]
    assert f"ACME CA: {edge_with_ca.pebble.directory_url} (advertised by the edge)" in run.log_text()
    assert f"domain reaches this container domain={DOMAIN} address=127.0.0.1" in run.log_text()
    assert API_KEY not in run.log_text()
    assert run.stop() == 0


def test_registration_removed_within_5s_of_sigterm(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA) -> None:
    run = start_on_edge(start_entrypoint, edge_with_ca, SSL_DOMAIN_ALIASES=ALIAS)
    wait_for_phase_2(edge_with_ca, run)
    run.wait_running(timeout_s=30)

    run.process.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    wait_until(
        lambda: DOMAIN not in edge_with_ca.backends() and ALIAS not in edge_with_ca.backends(),
        timeout_s=5, interval_s=0.05, description="registrations removed",
    )
    removed_after_s = time.monotonic() - stopped_at

    assert run.wait_exit() == 0
    assert removed_after_s < 5
    assert f"unregistered backend domain={DOMAIN}" in run.log_text()


def test_heartbeat_restores_routes_after_edge_restart(
    start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA, process_reaper: ProcessReaper
) -> None:
    run = start_on_edge(start_entrypoint, edge_with_ca, HAPROXY_HEARTBEAT_S="1")
    wait_for_phase_2(edge_with_ca, run)
    run.wait_running(timeout_s=30)
    assert tls_through_edge(edge_with_ca)["subjectAltName"]

    # The edge stops and comes back without its state, as after 'edge down --wipe'.
    edge_with_ca.edge.process.send_signal(signal.SIGTERM)
    edge_with_ca.edge.process.wait(timeout=15)
    shutil.rmtree(edge_with_ca.edge.state_dir)
    restarted = start_edge_process(
        edge_with_ca.directory, process_reaper, api_key=API_KEY, ports=edge_with_ca.ports, extra_args=edge_with_ca.extra_args
    )
    edge_with_ca.edge = restarted
    restarted_at = time.monotonic()
    wait_for_phase_2(edge_with_ca, run, timeout_s=15)
    back_after_s = time.monotonic() - restarted_at
    certificate = wait_until(lambda: tls_through_edge(edge_with_ca), timeout_s=10, description="TLS through the edge")

    assert back_after_s < 10
    assert ("DNS", DOMAIN) in certificate["subjectAltName"]
    assert "re-registered with the edge" in run.log_text()
    assert run.process.poll() is None
    assert run.stop() == 0


def test_unreachable_domain_exits_10(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA) -> None:
    # The domain resolves to 127.0.0.1, but port 80 there is another web server, not the edge.
    other_server = NameHTTPServer("somebody-else")
    try:
        run = start_on_edge(start_entrypoint, edge_with_ca, UNICITY_DOMAIN_HTTP_PORT=str(other_server.port))
        status = run.wait_exit(timeout_s=60)
    finally:
        other_server.close()
    log = run.log_text()

    assert status == 10
    assert f"domain {DOMAIN} does not reach this container: it resolves to 127.0.0.1" in log
    assert "HTTP 200 without this container's token" in log
    assert "requesting certificate" not in log
    assert DOMAIN not in edge_with_ca.backends()


def test_unreachable_domain_connection_refused_exits_10(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA) -> None:
    closed_port = pick_free_ports(1)[0]
    run = start_on_edge(start_entrypoint, edge_with_ca, UNICITY_DOMAIN_HTTP_PORT=str(closed_port))
    status = run.wait_exit(timeout_s=60)
    log = run.log_text()

    assert status == 10
    assert f"domain {DOMAIN} does not reach this container: it resolves to 127.0.0.1" in log
    assert "ConnectionRefusedError" in log


def test_wrong_api_key_exits_13_quickly(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA, tmp_path: Path) -> None:
    wrong_key = tmp_path / "wrong-key"
    wrong_key.write_text("not-the-edge-key\n")
    started = time.monotonic()
    run = start_on_edge(start_entrypoint, edge_with_ca, HAPROXY_API_KEY_FILE=str(wrong_key))
    status = run.wait_exit(timeout_s=30)
    elapsed_s = time.monotonic() - started
    log = run.log_text()

    assert status == 13
    assert elapsed_s < 10
    assert "the edge rejected the API key (HTTP 401" in log
    assert "not-the-edge-key" not in log
    assert edge_with_ca.backends() == {}


def test_missing_api_key_file_exits_13(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA, tmp_path: Path) -> None:
    run = start_on_edge(start_entrypoint, edge_with_ca, HAPROXY_API_KEY_FILE=str(tmp_path / "no-such-key"))
    status = run.wait_exit(timeout_s=30)

    assert status == 13
    assert f"cannot read the edge API key file {tmp_path / 'no-such-key'}" in run.log_text()


def test_no_haproxy_host_registers_nothing(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA) -> None:
    run = start_entrypoint(SSL_DOMAIN=DOMAIN, SSL_TEST_MODE="true")
    run.wait_running()

    assert edge_with_ca.backends() == {}
    assert "registered backend" not in run.log_text()
    assert run.stop() == 0


def test_test_mode_registers_both_phases(start_entrypoint: StartEntrypoint, edge_with_ca: EdgeWithCA) -> None:
    run = start_on_edge(start_entrypoint, edge_with_ca, SSL_TEST_MODE="true")
    wait_for_phase_2(edge_with_ca, run, timeout_s=30)
    run.wait_running()
    log = run.log_text()

    assert "registered backend domain=relay.unicity-test.example container=127.0.0.1 https_port=None" in log
    assert "ACME CA" not in log
    assert "reachability" not in log
    assert run.stop() == 0
    assert edge_with_ca.backends() == {}
