"""Traffic through the edge's real haproxy 2.6: SNI and Host routing, extra ports, reloads under load."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.component.conftest import ProcessReaper, pick_free_ports, wait_until
from tests.component.edge_support import (
    EchoServer,
    EdgeProcess,
    NameHTTPServer,
    http_via_edge,
    split_hello_peer_name,
    start_edge_process,
    tls_peer_name,
)
from tests.component.probes_support import issue_self_signed

pytestmark = pytest.mark.component


@dataclass
class Backends:
    """Two TLS echo servers with certificates for different names, and two plain HTTP servers."""

    alpha_tls: EchoServer
    beta_tls: EchoServer
    alpha_web: NameHTTPServer
    beta_web: NameHTTPServer
    ca_bundle: Path


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    directory = tmp_path_factory.mktemp("certs")
    alpha_cert = issue_self_signed(directory, "alpha", dns_names=("alpha.test",))
    beta_cert = issue_self_signed(directory, "beta", dns_names=("beta.test",))
    bundle = directory / "bundle.pem"
    bundle.write_bytes(alpha_cert.cert_file.read_bytes() + beta_cert.cert_file.read_bytes())

    servers = Backends(
        alpha_tls=EchoServer("alpha-tls", alpha_cert),
        beta_tls=EchoServer("beta-tls", beta_cert),
        alpha_web=NameHTTPServer("alpha-web"),
        beta_web=NameHTTPServer("beta-web"),
        ca_bundle=bundle,
    )
    yield servers
    for server in (servers.alpha_tls, servers.beta_tls, servers.alpha_web, servers.beta_web):
        server.close()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, backends: Backends) -> Iterator[EdgeProcess]:
    """One edge with alpha.test and beta.test registered for HTTP and TLS."""
    reaper = ProcessReaper()
    try:
        running = start_edge_process(tmp_path_factory.mktemp("edge"), reaper)
        for domain, web, tls in (
            ("alpha.test", backends.alpha_web, backends.alpha_tls),
            ("beta.test", backends.beta_web, backends.beta_tls),
        ):
            status, reply = running.register(domain, http_port=web.port, https_port=tls.port)
            assert status == 201, reply
        yield running
    finally:
        reaper.kill_all()


def _open_tls(edge: EdgeProcess, server_name: str, cafile: Path) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection(("127.0.0.1", edge.https_port), timeout=10)
    return context.wrap_socket(raw, server_hostname=server_name)


def _echo(connection: socket.socket, text: str) -> str:
    connection.sendall(text.encode())
    return connection.recv(65536).decode()


def test_edge_routing_sni_to_distinct_tls_backends(edge: EdgeProcess, backends: Backends) -> None:
    assert tls_peer_name(edge.https_port, "alpha.test", backends.ca_bundle) == "alpha.test"
    assert tls_peer_name(edge.https_port, "beta.test", backends.ca_bundle) == "beta.test"
    assert tls_peer_name(edge.https_port, "BETA.test", backends.ca_bundle) == "beta.test"


def test_edge_routing_tls_payload_reaches_backend(edge: EdgeProcess, backends: Backends) -> None:
    with _open_tls(edge, "beta.test", backends.ca_bundle) as connection:
        assert _echo(connection, "ping") == "beta-tls:ping"


def test_edge_routing_unknown_sni_is_dropped(edge: EdgeProcess, backends: Backends) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_peer_name(edge.https_port, "nobody.test", backends.ca_bundle, check_hostname=False)


def test_edge_routing_non_tls_bytes_are_dropped(edge: EdgeProcess) -> None:
    with socket.create_connection(("127.0.0.1", edge.https_port), timeout=5) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: alpha.test\r\n\r\n")
        started = time.monotonic()
        try:
            data = connection.recv(1024)
        except ConnectionResetError:
            data = b""

    assert data == b""
    assert time.monotonic() - started < 2, "non-TLS bytes waited for the inspect delay"


@pytest.mark.parametrize(
    ("host", "expected"),
    [("alpha.test", "alpha-web"), ("beta.test", "beta-web"), ("Alpha.TEST", "alpha-web"), ("beta.test:8080", "beta-web")],
)
def test_edge_routing_http_host(edge: EdgeProcess, host: str, expected: str) -> None:
    assert http_via_edge(edge.http_port, host) == (200, expected)


def test_edge_routing_unknown_host_gets_503(edge: EdgeProcess) -> None:
    status, body = http_via_edge(edge.http_port, "nobody.test")

    assert status == 503
    assert "no backend is registered" in body


def test_edge_routing_extra_tcp_port(edge: EdgeProcess) -> None:
    echo = EchoServer("extra-tcp")
    (listen,) = pick_free_ports(1)
    try:
        extra = [{"listen": listen, "target": echo.port, "mode": "tcp"}]
        assert edge.register("extra.test", extra_ports=extra)[0] == 201

        with socket.create_connection(("127.0.0.1", listen), timeout=5) as connection:
            assert _echo(connection, "hello") == "extra-tcp:hello"

        assert edge.api("DELETE", "/v1/backends/extra.test")[0] == 204
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", listen), timeout=5).close()
    finally:
        echo.close()


def test_edge_routing_extra_http_port(edge: EdgeProcess, backends: Backends) -> None:
    (listen,) = pick_free_ports(1)
    extra = [{"listen": listen, "target": backends.beta_web.port, "mode": "http"}]
    assert edge.register("extra-http.test", extra_ports=extra)[0] == 201

    assert http_via_edge(listen, "anything.test") == (200, "beta-web")


def test_edge_routing_unregister_removes_routes(edge: EdgeProcess, backends: Backends) -> None:
    assert edge.register("gone.test", http_port=backends.alpha_web.port, https_port=backends.alpha_tls.port)[0] == 201
    assert http_via_edge(edge.http_port, "gone.test") == (200, "alpha-web")
    assert tls_peer_name(edge.https_port, "gone.test", backends.ca_bundle, check_hostname=False) == "alpha.test"

    assert edge.api("DELETE", "/v1/backends/gone.test")[0] == 204

    assert http_via_edge(edge.http_port, "gone.test")[0] == 503
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_peer_name(edge.https_port, "gone.test", backends.ca_bundle, check_hostname=False)


def test_edge_routing_split_client_hello(edge: EdgeProcess, backends: Backends) -> None:
    results = {"alpha.test": 0, "beta.test": 0}

    for attempt in range(50):
        server_name = "alpha.test" if attempt % 2 == 0 else "beta.test"
        if split_hello_peer_name(edge.https_port, server_name, backends.ca_bundle, pause_s=0.2) == server_name:
            results[server_name] += 1

    assert results == {"alpha.test": 25, "beta.test": 25}


def test_edge_routing_reload_keeps_connections(edge: EdgeProcess, backends: Backends) -> None:
    errors: list[str] = []
    requests = 0
    stop = threading.Event()

    def request_loop() -> None:
        nonlocal requests
        while not stop.is_set():
            try:
                result = http_via_edge(edge.http_port, "beta.test")
            except OSError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            else:
                if result != (200, "beta-web"):
                    errors.append(repr(result))
            requests += 1

    master = edge.health()["haproxy"]["master_pid"]  # type: ignore[index]
    reloads = edge.health()["haproxy"]["reloads"]  # type: ignore[index]
    loop = threading.Thread(target=request_loop, daemon=True)
    with _open_tls(edge, "alpha.test", backends.ca_bundle) as held:
        assert _echo(held, "before") == "alpha-tls:before"
        loop.start()
        try:
            for cycle in range(10):
                assert edge.register("third.test", http_port=backends.alpha_web.port)[0] == 201
                assert http_via_edge(edge.http_port, "third.test") == (200, "alpha-web")
                assert edge.api("DELETE", "/v1/backends/third.test")[0] == 204
                assert _echo(held, f"cycle {cycle}") == f"alpha-tls:cycle {cycle}"
        finally:
            stop.set()
            loop.join(10)

    assert errors == []
    assert requests > 20
    assert edge.health()["haproxy"]["master_pid"] == master  # type: ignore[index]
    assert edge.health()["haproxy"]["reloads"] == reloads + 20  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_edge_routing_idle_tunnel_survives_90s(tmp_path: Path, process_reaper: ProcessReaper, backends: Backends) -> None:
    # Slow on purpose (about 95 s): haproxy's client/server timeouts are 60 s, so this proves the tunnel timeout applies.
    edge = start_edge_process(tmp_path, process_reaper)
    assert edge.register("beta.test", https_port=backends.beta_tls.port)[0] == 201

    with _open_tls(edge, "beta.test", backends.ca_bundle) as connection:
        connection.settimeout(120)
        assert _echo(connection, "first") == "beta-tls:first"
        time.sleep(92)
        assert _echo(connection, "after 92 s idle") == "beta-tls:after 92 s idle"


def test_edge_routing_route_follows_update(edge: EdgeProcess, backends: Backends) -> None:
    assert edge.register("moving.test", http_port=backends.alpha_web.port)[0] == 201
    assert http_via_edge(edge.http_port, "moving.test") == (200, "alpha-web")

    assert edge.register("moving.test", http_port=backends.beta_web.port)[0] == 200

    wait_until(lambda: http_via_edge(edge.http_port, "moving.test") == (200, "beta-web"), timeout_s=1, interval_s=0.02, description="updated route")
