"""The registration API against a real haproxy 2.6: validation, auth, persistence, rejected configurations."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.conftest import ProcessReaper, pick_free_ports, wait_until
from tests.component.edge_support import (
    EdgeProcess,
    NameHTTPServer,
    http_via_edge,
    in_process_edge,
    render_with_broken_domain,
    start_edge_process,
)

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """One edge without an API key, shared by the tests that only register their own domains."""
    reaper = ProcessReaper()
    try:
        yield start_edge_process(tmp_path_factory.mktemp("edge"), reaper)
    finally:
        reaper.kill_all()


@pytest.fixture(scope="module")
def web() -> Iterator[NameHTTPServer]:
    server = NameHTTPServer("web")
    yield server
    server.close()


def test_edge_api_register_get_list_delete(edge: EdgeProcess) -> None:
    status, created = edge.register("crud.test", http_port=8080, https_port=None, extra_ports=None)
    assert status == 201
    assert created == {"domain": "crud.test", "container": "127.0.0.1", "http_port": 8080, "https_port": None, "extra_ports": []}

    status, updated = edge.register("CRUD.test", http_port=8080, https_port=8443)
    assert status == 200
    assert isinstance(updated, dict) and updated["https_port"] == 8443

    status, listing = edge.api("GET", "/v1/backends")
    assert status == 200
    assert isinstance(listing, dict)
    assert "crud.test" in [entry["domain"] for entry in listing["backends"]]

    status, fetched = edge.api("GET", "/v1/backends/crud.test")
    assert status == 200
    assert fetched == updated

    assert edge.api("DELETE", "/v1/backends/crud.test") == (204, None)
    assert edge.api("GET", "/v1/backends/crud.test")[0] == 404
    status, missing = edge.api("DELETE", "/v1/backends/crud.test")
    assert status == 404
    assert isinstance(missing, dict) and "crud.test" in str(missing["error"])


def test_edge_api_identical_post_does_not_reload(edge: EdgeProcess) -> None:
    assert edge.register("same.test")[0] == 201
    reloads = edge.health()["haproxy"]["reloads"]  # type: ignore[index]

    assert edge.register("same.test")[0] == 200

    assert edge.health()["haproxy"]["reloads"] == reloads  # type: ignore[index]


def test_edge_api_conflict_other_container(edge: EdgeProcess) -> None:
    assert edge.register("owned.test", container="relay-1")[0] == 201

    status, reply = edge.register("owned.test", container="relay-2")

    assert status == 409
    assert isinstance(reply, dict)
    assert reply["container"] == "relay-1"
    assert edge.api("GET", "/v1/backends/owned.test")[1]["container"] == "relay-1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"domain": "bad_name.test", "container": "c"}, "domain"),
        ({"domain": "ok.test", "container": "bad name"}, "container"),
        ({"domain": "ok.test", "container": "c", "http_port": 0}, "http_port"),
        ({"domain": "ok.test", "container": "c", "https_port": "443"}, "https_port"),
        ({"domain": "ok.test", "container": "c", "extra_ports": [{"listen": 9, "target": 9, "mode": "udp"}]}, "extra_ports[0].mode"),
        ({"domain": "ok.test", "container": "c", "extra_ports": [{"listen": 80, "target": 9, "mode": "tcp"}]}, "extra_ports[0].listen"),
        ({"domain": "ok.test", "container": "c", "extra_ports": [{"listen": 8404, "target": 9, "mode": "tcp"}]}, "extra_ports[0].listen"),
        ([1, 2], "body"),
    ],
)
def test_edge_api_invalid_field(edge: EdgeProcess, body: object, field: str) -> None:
    status, reply = edge.api("POST", "/v1/backends", body)

    assert status == 400
    assert isinstance(reply, dict)
    assert reply["field"] == field
    assert field in str(reply["error"])


def test_edge_api_own_ports_are_reserved(edge: EdgeProcess) -> None:
    extra = [{"listen": edge.http_port, "target": 9, "mode": "tcp"}]

    status, reply = edge.register("ownport.test", extra_ports=extra)

    assert status == 400
    assert str(edge.http_port) in str(reply)


def test_edge_api_extra_port_taken_by_other_domain(edge: EdgeProcess) -> None:
    (listen,) = pick_free_ports(1)
    extra = [{"listen": listen, "target": 9, "mode": "tcp"}]
    assert edge.register("first.test", container="first", extra_ports=extra)[0] == 201

    status, reply = edge.register("second.test", container="second", extra_ports=extra)

    assert status == 400
    assert isinstance(reply, dict) and reply["field"] == "extra_ports[0].listen"
    assert "first.test" in str(reply["error"])


def test_edge_api_invalid_json(edge: EdgeProcess) -> None:
    status, reply = edge.api("POST", "/v1/backends", raw_body=b"{not json")

    assert status == 400
    assert "not valid JSON" in str(reply)


def test_edge_api_body_too_large(edge: EdgeProcess) -> None:
    body = json.dumps({"domain": "big.test", "container": "c", "padding": "x" * (64 * 1024)}).encode()

    status, reply = edge.api("POST", "/v1/backends", raw_body=body)

    assert status == 413
    assert "65536" in str(reply)


def test_edge_api_unknown_path_and_method(edge: EdgeProcess) -> None:
    assert edge.api("GET", "/v2/backends")[0] == 404
    assert edge.api("PUT", "/v1/backends")[0] == 405
    assert edge.api("POST", "/v1/health")[0] == 405


def test_edge_api_health_and_edge_info(edge: EdgeProcess) -> None:
    health = edge.health()
    status, info = edge.api("GET", "/v1/edge", key=False)

    assert health["status"] == "ok"
    assert health["haproxy"]["running"] is True  # type: ignore[index]
    assert status == 200
    assert info == {"acme_directory": None, "ca_bundle_url": None, "ca_bundle_path": None,
                    "ca_bundle_pem": None, "acme_ca_pem": None}


def test_edge_api_advertises_acme_and_ca(tmp_path: Path, process_reaper: ProcessReaper) -> None:
    roots = tmp_path / "roots.pem"
    roots.write_text("-----BEGIN CERTIFICATE-----\nroots\n-----END CERTIFICATE-----\n")
    acme_ca = tmp_path / "acme-ca.pem"
    acme_ca.write_text("-----BEGIN CERTIFICATE-----\nlistener\n-----END CERTIFICATE-----\n")
    extra = [
        "--acme-directory", "https://pebble.test:14000/dir",
        "--ca-bundle-url", "http://edge.test:8404/ca.pem",
        "--ca-bundle-path", str(roots),
        "--acme-ca-file", str(acme_ca),
    ]
    edge = start_edge_process(tmp_path, process_reaper, extra_args=extra)

    assert edge.api("GET", "/v1/edge", key=False) == (
        200,
        {
            "acme_directory": "https://pebble.test:14000/dir",
            "ca_bundle_url": "http://edge.test:8404/ca.pem",
            "ca_bundle_path": str(roots),
            "ca_bundle_pem": roots.read_text(),
            "acme_ca_pem": acme_ca.read_text(),
        },
    )


def test_edge_api_requires_bearer_key(tmp_path: Path, process_reaper: ProcessReaper) -> None:
    edge = start_edge_process(tmp_path, process_reaper, api_key="correct horse battery staple")

    for key in (None, "wrong", "correct horse battery stapl"):
        status, reply = edge.api("POST", "/v1/backends", {"domain": "auth.test", "container": "c"}, key=key)
        assert status == 401, f"key {key!r} was accepted"
        assert "API key" in str(reply)
    assert edge.api("GET", "/v1/backends", key=None)[0] == 401
    assert edge.api("DELETE", "/v1/backends/auth.test", key=None)[0] == 401
    assert edge.api("GET", "/v1/health", key=None)[0] == 200

    assert edge.register("auth.test", container="c")[0] == 201
    assert "correct horse" not in edge.log_text()


def test_edge_api_rejects_empty_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "empty-key"
    key_file.write_text("\n")
    api_port, http_port, https_port = pick_free_ports(3)

    completed = subprocess.run(
        [sys.executable, "-m", "unicity_infra.edge", "--api-key-file", str(key_file), "--state-dir", str(tmp_path / "s"),
         "--api-port", str(api_port), "--http-port", str(http_port), "--https-port", str(https_port)],
        capture_output=True, text=True, timeout=30, check=False,
    )

    assert completed.returncode == 2
    assert str(key_file) in completed.stderr


def test_edge_api_restart_keeps_registrations(tmp_path: Path, process_reaper: ProcessReaper, web: NameHTTPServer) -> None:
    edge = start_edge_process(tmp_path, process_reaper)
    assert edge.register("keep.test", http_port=web.port)[0] == 201
    assert edge.process is not None
    old_master = edge.health()["haproxy"]["master_pid"]  # type: ignore[index]

    edge.process.send_signal(signal.SIGTERM)
    assert edge.process.wait(timeout=20) == 0
    assert not Path(f"/proc/{old_master}").exists()

    again = start_edge_process(tmp_path, process_reaper, ports=(edge.api_port, edge.http_port, edge.https_port))
    status, listing = again.api("GET", "/v1/backends")
    assert status == 200
    assert [entry["domain"] for entry in listing["backends"]] == ["keep.test"]  # type: ignore[index]
    assert http_via_edge(again.http_port, "keep.test") == (200, "web")


def test_edge_api_restarts_dead_haproxy(tmp_path: Path, process_reaper: ProcessReaper, web: NameHTTPServer) -> None:
    edge = start_edge_process(tmp_path, process_reaper)
    assert edge.register("revive.test", http_port=web.port)[0] == 201
    master = edge.health()["haproxy"]["master_pid"]  # type: ignore[index]

    os.kill(int(master), signal.SIGKILL)  # type: ignore[arg-type]

    wait_until(lambda: edge.health()["haproxy"]["restarts"] == 1, timeout_s=15, description="haproxy restarted")  # type: ignore[index]
    wait_until(lambda: http_via_edge(edge.http_port, "revive.test") == (200, "web"), timeout_s=10, description="route back")
    assert edge.health()["haproxy"]["master_pid"] != master  # type: ignore[index]


def test_edge_api_check_failure_keeps_old_routes(tmp_path: Path, web: NameHTTPServer) -> None:
    with in_process_edge(tmp_path, render=render_with_broken_domain("broken.test")) as edge:
        assert edge.register("stays.test", http_port=web.port)[0] == 201

        status, reply = edge.register("broken.test", http_port=web.port)

        assert status == 422
        assert isinstance(reply, dict)
        assert reply["stage"] == "haproxy -c"
        assert any("this-keyword-does-not-exist" in line for line in reply["haproxy_output"])  # type: ignore[union-attr]
        assert http_via_edge(edge.http_port, "stays.test") == (200, "web")
        assert edge.api("GET", "/v1/backends/broken.test")[0] == 404
        assert "broken" not in (edge.state_dir / "backends.json").read_text()
        assert "broken" not in (edge.state_dir / "haproxy.cfg").read_text()


def test_edge_api_reload_failure_keeps_old_routes(edge: EdgeProcess, web: NameHTTPServer) -> None:
    assert edge.register("before.test", http_port=web.port)[0] == 201
    config_before = (edge.state_dir / "haproxy.cfg").read_text()
    with socket.create_server(("127.0.0.1", 0)) as occupant:
        busy_port = occupant.getsockname()[1]
        extra = [{"listen": busy_port, "target": web.port, "mode": "tcp"}]

        status, reply = edge.register("busy.test", http_port=web.port, extra_ports=extra)

    assert status == 422
    assert isinstance(reply, dict)
    assert reply["stage"] == "reload"
    assert any("cannot bind" in line for line in reply["haproxy_output"])  # type: ignore[union-attr]
    assert http_via_edge(edge.http_port, "before.test") == (200, "web")
    assert edge.api("GET", "/v1/backends/busy.test")[0] == 404
    assert (edge.state_dir / "haproxy.cfg").read_text() == config_before
    assert "busy.test" not in (edge.state_dir / "backends.json").read_text()

    assert edge.register("after.test", http_port=web.port)[0] == 201
    assert http_via_edge(edge.http_port, "after.test") == (200, "web")
