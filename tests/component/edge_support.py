"""Servers, clients and an edge runner for the edge component tests, all on 127.0.0.1.

Backends are small threaded servers that put their own name into every reply, so a test can
tell which one HAProxy routed to. The edge runs as ``python3 -m unicity_infra.edge`` with a
real haproxy, or in-process when a test needs to replace its configuration renderer.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.component.conftest import ProcessReaper, pick_free_ports, wait_until
from tests.component.probes_support import CertificateFiles
from unicity_infra.edge.api import EdgeService, make_server
from unicity_infra.edge.haproxy_config import Backend, HAProxyProcess, render_haproxy_config

# --- backends ---------------------------------------------------------------------------------


class ConnectionServer:
    """A TCP server on 127.0.0.1 that hands every accepted connection to ``handle`` in a thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True).start()

    def handle(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                connection, _address = self._listener.accept()
            except OSError:
                return
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), connection:
            self.handle(connection)


class EchoServer(ConnectionServer):
    """Replies to every chunk with ``<name>:<chunk>``; with ``certificate`` it speaks TLS first."""

    def __init__(self, name: str, certificate: CertificateFiles | None = None) -> None:
        self._context: ssl.SSLContext | None = None
        if certificate is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(certificate.cert_file, certificate.key_file)
        super().__init__(name)

    def handle(self, connection: socket.socket) -> None:
        stream: socket.socket = connection
        if self._context is not None:
            stream = self._context.wrap_socket(connection, server_side=True)
            self._connections.append(stream)
        while chunk := stream.recv(65536):
            stream.sendall(self.name.encode() + b":" + chunk)


class _NameHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.backend_name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Seen-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class NameHTTPServer(http.server.ThreadingHTTPServer):
    """An HTTP server whose every GET returns its name as the body."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        self.backend_name = name
        super().__init__(("127.0.0.1", 0), _NameHandler)
        self.port: int = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        # haproxy's health checks connect and close without a request; that is not an error here.
        pass

    def close(self) -> None:
        self.shutdown()
        self.server_close()


# --- clients --------------------------------------------------------------------------------------


def common_name(certificate: dict[str, object]) -> str:
    for rdn in certificate.get("subject", ()):  # type: ignore[union-attr]
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    raise AssertionError(f"no commonName in {certificate!r}")


def tls_peer_name(port: int, server_name: str, cafile: Path, *, check_hostname: bool = True, timeout_s: float = 5.0) -> str:
    """Connect through the edge's TLS port with SNI ``server_name``; return the peer certificate's CN.

    With ``check_hostname`` False any certificate from ``cafile`` is accepted, so only routing can fail.
    """
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = check_hostname
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return common_name(tls.getpeercert())


def split_hello_peer_name(port: int, server_name: str, cafile: Path, *, pause_s: float = 0.2) -> str:
    """Send the ClientHello in two TCP segments ``pause_s`` apart, finish the handshake, return the peer CN."""
    context = ssl.create_default_context(cafile=str(cafile))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    half = len(hello) // 2

    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.sendall(hello[:half])
        time.sleep(pause_s)
        raw.sendall(hello[half:])

        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if pending := outgoing.read():
                    raw.sendall(pending)
                data = raw.recv(65536)
                if not data:
                    raise ConnectionError("the edge closed the connection during the handshake") from None
                incoming.write(data)
        if pending := outgoing.read():
            raw.sendall(pending)
        return common_name(tls.getpeercert())


def http_via_edge(port: int, host: str, *, path: str = "/", timeout_s: float = 5.0) -> tuple[int, str]:
    """GET through the edge's HTTP port with ``Host: host`` on a fresh connection; return (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers={"Host": host, "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


# --- the edge -------------------------------------------------------------------------------------


@dataclass
class EdgeEndpoints:
    """Ports and key of a running edge, with a small JSON client for its API."""

    api_port: int
    http_port: int
    https_port: int
    state_dir: Path
    api_key: str | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def api(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        key: str | None | bool = True,
        raw_body: bytes | None = None,
        timeout_s: float = 20.0,
    ) -> tuple[int, object]:
        """Call the API; ``key=True`` sends this edge's key, a string sends that, None or False sends none."""
        headers = {"Content-Type": "application/json"}
        token = self.api_key if key is True else key
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = raw_body
        if payload is None and body is not None:
            payload = json.dumps(body).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=timeout_s)
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        return response.status, json.loads(text) if text else None

    def register(self, domain: str, container: str = "127.0.0.1", **fields: object) -> tuple[int, object]:
        return self.api("POST", "/v1/backends", {"domain": domain, "container": container, **fields})

    def health(self) -> dict[str, object]:
        status, document = self.api("GET", "/v1/health", key=False)
        assert isinstance(document, dict), f"health returned HTTP {status}: {document!r}"
        return document


@dataclass
class EdgeProcess(EdgeEndpoints):
    """The edge running as ``python3 -m unicity_infra.edge`` in its own process group."""

    process: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file and self.log_file.exists() else ""


def start_edge_process(
    directory: Path,
    reaper: ProcessReaper,
    *,
    api_key: str | None = None,
    ports: Sequence[int] | None = None,
    extra_args: Sequence[str] = (),
) -> EdgeProcess:
    """Start the edge with state in ``directory`` and wait until its health endpoint reports ok."""
    api_port, http_port, https_port = ports or pick_free_ports(3)
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "unicity_infra.edge",
        "--listen", "127.0.0.1",
        "--api-port", str(api_port),
        "--http-port", str(http_port),
        "--https-port", str(https_port),
        "--bind-address", "127.0.0.1",
        "--state-dir", str(directory / "state"),
        "--resolvers", "none",
        "--log-level", "DEBUG",
        *extra_args,
    ]
    if api_key is not None:
        key_file = directory / "api-key"
        key_file.write_text(api_key + "\n")
        command += ["--api-key-file", str(key_file)]

    log_file = directory / f"edge-{time.monotonic_ns()}.log"
    with log_file.open("wb") as log:
        process = reaper.track(
            subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
    edge = EdgeProcess(
        api_port=api_port,
        http_port=http_port,
        https_port=https_port,
        state_dir=directory / "state",
        api_key=api_key,
        process=process,
        log_file=log_file,
    )

    def is_up() -> bool:
        if process.poll() is not None:
            pytest.fail(f"edge exited with status {process.returncode}; log:\n{edge.log_text()}")
        return edge.health().get("status") == "ok"

    wait_until(is_up, timeout_s=20, description="edge health ok")
    return edge


@contextlib.contextmanager
def in_process_edge(
    directory: Path,
    *,
    render: Callable[..., str] = render_haproxy_config,
) -> Iterator[EdgeEndpoints]:
    """Run the edge's service and API inside the test process, with ``render`` as its renderer."""
    api_port, http_port, https_port = pick_free_ports(3)
    state_dir = directory / "state"
    renderer = functools.partial(
        render, http_port=http_port, https_port=https_port, bind_address="127.0.0.1", resolvers=None
    )
    haproxy = HAProxyProcess(config_path=state_dir / "haproxy.cfg", master_socket=state_dir / "master.sock")
    service = EdgeService(
        state_path=state_dir / "backends.json",
        config_path=state_dir / "haproxy.cfg",
        haproxy=haproxy,
        render=renderer,
        reserved_ports={api_port, http_port, https_port},
    )
    server = make_server(service, host="127.0.0.1", port=api_port, api_key=None)
    try:
        service.start()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        yield EdgeEndpoints(api_port=api_port, http_port=http_port, https_port=https_port, state_dir=state_dir)
    finally:
        server.shutdown()
        server.server_close()
        service.stop()


def render_with_broken_domain(domain: str) -> Callable[..., str]:
    """Return a renderer that writes a line haproxy rejects whenever ``domain`` is registered."""

    def render(backends: Sequence[Backend], **options: object) -> str:
        config = render_haproxy_config(backends, **options)  # type: ignore[arg-type]
        if any(backend.domain == domain for backend in backends):
            config += "\nbackend broken-on-purpose\n    this-keyword-does-not-exist\n"
        return config

    return render
