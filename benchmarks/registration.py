"""Benchmark the local edge: POST-to-routable latency with many backends, and client errors during re-registrations.

Runs ``python3 -m unicity_infra.edge`` with the host's haproxy on 127.0.0.1 and small HTTP
backends in threads. Everything it starts is stopped before it exits. Usage:

    python3 benchmarks/registration.py [--backends 200] [--samples 40] [--reregistrations 20]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from unicity_infra.container.registration import register, unregister

ROUTE_TIMEOUT_S = 10.0


class _NameHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.backend_name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class NameServer(http.server.ThreadingHTTPServer):
    """An HTTP backend whose every GET returns its name."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        self.backend_name = name
        super().__init__(("127.0.0.1", 0), _NameHandler)
        self.port: int = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def get_via_edge(port: int, host: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": host, "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@dataclass
class Edge:
    api_port: int
    http_port: int
    process: subprocess.Popen[bytes]
    log_file: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@contextlib.contextmanager
def running_edge(directory: Path) -> Iterator[Edge]:
    api_port, http_port, https_port = free_ports(3)
    log_file = directory / "edge.log"
    command = [
        sys.executable, "-m", "unicity_infra.edge",
        "--listen", "127.0.0.1", "--api-port", str(api_port),
        "--http-port", str(http_port), "--https-port", str(https_port),
        "--bind-address", "127.0.0.1", "--state-dir", str(directory / "state"), "--resolvers", "none",
    ]
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    edge = Edge(api_port=api_port, http_port=http_port, process=process, log_file=log_file)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise SystemExit(f"edge exited with status {process.returncode}; see {log_file}")
            with contextlib.suppress(OSError):
                connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=2)
                connection.request("GET", "/v1/health")
                if connection.getresponse().status == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"edge /v1/health did not return 200 within 20 s; see {log_file}")
            time.sleep(0.1)
        yield edge
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: with 40 samples, p99 is the largest one."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def measure_route_latency(edge: Edge, servers: list[NameServer], samples: int) -> tuple[list[float], list[float]]:
    """Return (POST reply latencies, POST-to-routable latencies) in seconds for ``samples`` new domains."""
    post_latencies: list[float] = []
    route_latencies: list[float] = []
    for index in range(samples):
        server = servers[index % len(servers)]
        domain = f"probe-{index:03d}.test"
        started = time.monotonic()
        register(edge.api_url, domain=domain, container="127.0.0.1", http_port=server.port, https_port=None, extra_ports=None, api_key=None, deadline_s=30)
        post_latencies.append(time.monotonic() - started)

        while get_via_edge(edge.http_port, domain) != (200, server.backend_name):
            if time.monotonic() - started > ROUTE_TIMEOUT_S:
                raise SystemExit(f"{domain} was not routable within {ROUTE_TIMEOUT_S:.0f} s")
            time.sleep(0.002)
        route_latencies.append(time.monotonic() - started)
        unregister(edge.api_url, domain=domain, api_key=None)
    return post_latencies, route_latencies


@dataclass
class ClientLoop:
    """Sends GETs for ``host`` on fresh connections until stopped; counts failures."""

    edge: Edge
    host: str
    accepted_bodies: set[str]
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get_via_edge(self.edge.http_port, self.host)
                if status != 200 or body not in self.accepted_bodies:
                    self.failures.append(f"HTTP {status} {body[:40]!r}")
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self.requests += 1

    def stop(self) -> None:
        self._stop.set()


def measure_reregistrations(edge: Edge, servers: list[NameServer], count: int) -> tuple[ClientLoop, ClientLoop, list[float]]:
    """Re-register bench-001 ``count`` times, switching its backend, while two client loops run."""
    stable = ClientLoop(edge, "bench-000.test", {servers[0].backend_name})
    moving = ClientLoop(edge, "bench-001.test", {servers[1].backend_name, servers[2].backend_name})
    threads = [threading.Thread(target=loop.run, daemon=True) for loop in (stable, moving)]
    for thread in threads:
        thread.start()

    durations: list[float] = []
    try:
        for index in range(count):
            server = servers[2] if index % 2 == 0 else servers[1]
            started = time.monotonic()
            register(edge.api_url, domain="bench-001.test", container="127.0.0.1", http_port=server.port, https_port=None, extra_ports=None, api_key=None, deadline_s=30)
            durations.append(time.monotonic() - started)
            time.sleep(0.05)
    finally:
        stable.stop()
        moving.stop()
        for thread in threads:
            thread.join(10)
    return stable, moving, durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", type=int, default=200, help="registrations in place before measuring (default 200)")
    parser.add_argument("--samples", type=int, default=40, help="new domains timed from POST to routable (default 40)")
    parser.add_argument("--reregistrations", type=int, default=20, help="re-registrations under client load (default 20)")
    options = parser.parse_args()

    servers = [NameServer(f"backend-{index}") for index in range(4)]
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as temporary, running_edge(Path(temporary)) as edge:
        started = time.monotonic()
        for index in range(options.backends):
            server = servers[index % len(servers)]
            register(edge.api_url, domain=f"bench-{index:03d}.test", container="127.0.0.1", http_port=server.port, https_port=None, extra_ports=None, api_key=None, deadline_s=30)
        fill_s = time.monotonic() - started

        post_latencies, route_latencies = measure_route_latency(edge, servers, options.samples)
        stable, moving, durations = measure_reregistrations(edge, servers, options.reregistrations)

        with contextlib.closing(http.client.HTTPConnection("127.0.0.1", edge.api_port, timeout=5)) as connection:
            connection.request("GET", "/v1/health")
            health = json.loads(connection.getresponse().read())

    for server in servers:
        server.shutdown()
        server.server_close()

    print(f"registrations in place: {options.backends} (filled in {fill_s:.1f} s, {fill_s / options.backends * 1000:.0f} ms each)")
    print(f"POST reply latency, {len(post_latencies)} new domains: p50 {percentile(post_latencies, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(post_latencies, 0.99) * 1000:.0f} ms")
    print(f"POST to routable latency: p50 {percentile(route_latencies, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(route_latencies, 0.99) * 1000:.0f} ms, max {max(route_latencies) * 1000:.0f} ms, "
          f"mean {statistics.mean(route_latencies) * 1000:.0f} ms")
    print(f"re-registrations: {len(durations)}, each p50 {percentile(durations, 0.5) * 1000:.0f} ms")
    print(f"client loop on a stable domain: {stable.requests} requests, {len(stable.failures)} failed {stable.failures[:3]}")
    print(f"client loop on the re-registered domain: {moving.requests} requests, {len(moving.failures)} failed {moving.failures[:3]}")
    print(f"haproxy reloads: {health['haproxy']['reloads']}, restarts: {health['haproxy']['restarts']}")
    return 1 if stable.failures or moving.failures else 0


if __name__ == "__main__":
    sys.exit(main())
