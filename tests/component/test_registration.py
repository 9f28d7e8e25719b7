"""The registration client against the real edge and against scripted HTTP servers on loopback."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.conftest import ProcessReaper, pick_free_ports
from tests.component.edge_support import EdgeProcess, start_edge_process
from unicity_infra.container.registration import RegistrationError, is_registered, register, unregister

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    reaper = ProcessReaper()
    try:
        yield start_edge_process(tmp_path_factory.mktemp("edge"), reaper, api_key="registration-test-key")
    finally:
        reaper.kill_all()


class ScriptedEdge(http.server.ThreadingHTTPServer):
    """Replies to POST /v1/backends with the scripted (status, body) pairs in order, then repeats the last one."""

    daemon_threads = True

    def __init__(self, replies: list[tuple[int, str]]) -> None:
        self.replies = replies
        self.posts: list[dict[str, object]] = []
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
    server: ScriptedEdge

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts.append(json.loads(body))
        index = min(len(self.server.posts), len(self.server.replies)) - 1
        status, text = self.server.replies[index]
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


def test_register_with_aliases_then_unregister(edge: EdgeProcess) -> None:
    register(
        edge.api_url, domain="primary.test", container="relay-1", https_port=None, extra_ports=None,
        api_key=edge.api_key, aliases=("alias.test",), deadline_s=10,
    )

    assert is_registered(edge.api_url, "primary.test", edge.api_key) is True
    assert is_registered(edge.api_url, "alias.test", edge.api_key) is True
    assert edge.api("GET", "/v1/backends/alias.test")[1]["container"] == "relay-1"  # type: ignore[index]

    unregister(edge.api_url, domain="primary.test", api_key=edge.api_key, aliases=("alias.test",))

    assert is_registered(edge.api_url, "primary.test", edge.api_key) is False
    assert is_registered(edge.api_url, "alias.test", edge.api_key) is False


def test_register_second_phase_sets_https_port(edge: EdgeProcess) -> None:
    options = {"domain": "phases.test", "container": "relay-1", "extra_ports": None, "api_key": edge.api_key, "deadline_s": 10}
    register(edge.api_url, https_port=None, **options)  # type: ignore[arg-type]

    register(edge.api_url, https_port=443, **options)  # type: ignore[arg-type]

    assert edge.api("GET", "/v1/backends/phases.test")[1]["https_port"] == 443  # type: ignore[index]


def test_register_recovers_from_conflict(edge: EdgeProcess) -> None:
    assert edge.register("moved.test", container="old-container")[0] == 201

    register(edge.api_url, domain="moved.test", container="new-container", https_port=None, extra_ports=None, api_key=edge.api_key, deadline_s=10)

    assert edge.api("GET", "/v1/backends/moved.test")[1]["container"] == "new-container"  # type: ignore[index]


def test_register_wrong_key_fails_at_once(edge: EdgeProcess) -> None:
    started = time.monotonic()

    with pytest.raises(RegistrationError) as caught:
        register(edge.api_url, domain="denied.test", container="c", https_port=None, extra_ports=None, api_key="wrong", deadline_s=60)

    assert caught.value.status == 401
    assert caught.value.exit_code == 13
    assert "API key" in str(caught.value)
    assert time.monotonic() - started < 5


def test_register_invalid_extra_ports_fails_at_once(edge: EdgeProcess) -> None:
    with pytest.raises(RegistrationError) as caught:
        register(
            edge.api_url, domain="badports.test", container="c", https_port=None,
            extra_ports=[{"listen": 443, "target": 1, "mode": "tcp"}], api_key=edge.api_key, deadline_s=60,
        )

    assert caught.value.status == 400
    assert "extra_ports[0].listen" in str(caught.value)


def test_register_retries_until_success() -> None:
    server = ScriptedEdge([(503, "starting"), (502, "bad gateway"), (201, "{}")])
    try:
        started = time.monotonic()
        register(server.url, domain="flaky.test", container="c", https_port=443, extra_ports=None, api_key=None, deadline_s=30)
        elapsed_s = time.monotonic() - started
    finally:
        server.close()

    assert len(server.posts) == 3
    assert server.posts[-1]["domain"] == "flaky.test"
    assert 2.5 <= elapsed_s < 6, f"backoff 1 s + 2 s expected, took {elapsed_s:.1f} s"


def test_register_deadline_error_carries_reply() -> None:
    server = ScriptedEdge([(503, '{"error": "haproxy is restarting"}')])
    try:
        started = time.monotonic()
        with pytest.raises(RegistrationError) as caught:
            register(server.url, domain="late.test", container="c", https_port=None, extra_ports=None, api_key=None, deadline_s=2.5)
        elapsed_s = time.monotonic() - started
    finally:
        server.close()

    assert caught.value.exit_code == 13
    assert caught.value.status == 503
    assert "haproxy is restarting" in str(caught.value)
    assert server.url in str(caught.value)
    assert 2.4 <= elapsed_s < 6


def test_register_nothing_listening() -> None:
    (port,) = pick_free_ports(1)

    with pytest.raises(RegistrationError) as caught:
        register(f"http://127.0.0.1:{port}", domain="nobody.test", container="c", https_port=None, extra_ports=None, api_key=None, deadline_s=1.5)

    assert caught.value.status is None
    assert "Connection refused" in str(caught.value) or "ConnectionRefusedError" in str(caught.value)


def test_register_waits_for_late_edge(tmp_path: Path, process_reaper: ProcessReaper) -> None:
    ports = pick_free_ports(3)
    failures: list[BaseException] = []

    def register_early() -> None:
        try:
            register(f"http://127.0.0.1:{ports[0]}", domain="early.test", container="c", https_port=None, extra_ports=None, api_key=None, deadline_s=30)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            failures.append(exc)

    client = threading.Thread(target=register_early)
    client.start()
    time.sleep(1.5)
    edge = start_edge_process(tmp_path, process_reaper, ports=ports)
    client.join(30)

    assert failures == []
    assert edge.api("GET", "/v1/backends/early.test")[0] == 200
