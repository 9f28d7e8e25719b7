"""The aggregator-proxy plan run by the real supervisor and nginx, in front of the aggregator stand-in on loopback."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.component.conftest import EntrypointRun, pick_free_ports
from tests.component.test_probes_aggregator import run_standin
from tests.unit.test_trust_base import make_trust_base
from unicity_infra.probes.aggregator import probe_aggregator
from unicity_infra.probes.report import Status
from unicity_infra.probes.trust_base import trust_base_sha256

pytestmark = pytest.mark.component

StartEntrypoint = Callable[..., EntrypointRun]
TRUST_BASE_PATH = "/.well-known/trust-base.json"


def request(port: int, method: str, path: str, *, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send one request to http://127.0.0.1:PORT and return (status, headers with lower-case names, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.fixture()
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "aggregator-config"
    directory.mkdir()
    return directory


@pytest.fixture()
def standin_port(tmp_path: Path) -> Iterator[int]:
    trust_base = tmp_path / "standin-trust-base.json"
    trust_base.write_text(json.dumps(make_trust_base()))
    with run_standin(tmp_path / "standin.log", "--trust-base", str(trust_base)) as (port, _):
        yield port


def start_proxy(start_entrypoint: StartEntrypoint, config_dir: Path, upstream_port: int, **env: str) -> EntrypointRun:
    trust_base_port = pick_free_ports(1)[0]
    return start_entrypoint(
        service="aggregator-proxy",
        AGGREGATOR_UPSTREAM=f"http://127.0.0.1:{upstream_port}",
        AGGREGATOR_CONFIG_DIR=str(config_dir),
        AGGREGATOR_TRUST_BASE_PORT=str(trust_base_port),
        # RELAY_PORT names the service port in the shared fixture; here it is the trust-base server's.
        RELAY_PORT=str(trust_base_port),
        **env,
    )


def write_trust_base(config_dir: Path, *, node_count: int = 3) -> bytes:
    data = (json.dumps(make_trust_base(node_count), indent=2) + "\n").encode()
    (config_dir / "trust-base.json").write_bytes(data)
    return data


def test_aggregator_proxy_probe_green(start_entrypoint: StartEntrypoint, config_dir: Path, standin_port: int) -> None:
    trust_base = write_trust_base(config_dir)
    run = start_proxy(start_entrypoint, config_dir, standin_port)
    run.wait_running()
    expected_file = config_dir / "trust-base.json"

    report = probe_aggregator(f"http://127.0.0.1:{run.http_port}", trust_base_file=expected_file, height_wait_s=5)

    assert {check.name: check.status for check in report.checks} == {
        "TCP connect": Status.OK, "health": Status.OK, "block height": Status.OK,
        "trust base": Status.OK, "trust base file": Status.OK,
    }, report
    assert trust_base_sha256(trust_base) in report.checks[3].detail
    assert run.stop() == 0


def test_aggregator_proxy_trust_base_headers(start_entrypoint: StartEntrypoint, config_dir: Path, standin_port: int) -> None:
    trust_base = write_trust_base(config_dir)
    run = start_proxy(start_entrypoint, config_dir, standin_port)
    run.wait_running()

    status, headers, body = request(run.http_port, "GET", TRUST_BASE_PATH)

    assert status == 200
    assert body == trust_base
    assert headers["content-type"] == "application/json"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["cache-control"] == "no-cache"
    assert headers["etag"] == f'"{trust_base_sha256(trust_base)}"'
    assert run.stop() == 0


def test_aggregator_proxy_trust_base_revalidation(start_entrypoint: StartEntrypoint, config_dir: Path, standin_port: int) -> None:
    write_trust_base(config_dir)
    run = start_proxy(start_entrypoint, config_dir, standin_port)
    run.wait_running()
    _, first_headers, _ = request(run.http_port, "GET", TRUST_BASE_PATH)

    unchanged, _, unchanged_body = request(run.http_port, "GET", TRUST_BASE_PATH,
                                           headers={"If-None-Match": first_headers["etag"]})
    new_trust_base = write_trust_base(config_dir, node_count=1)
    changed, changed_headers, changed_body = request(run.http_port, "GET", TRUST_BASE_PATH,
                                                     headers={"If-None-Match": first_headers["etag"]})

    assert unchanged == 304
    assert unchanged_body == b""
    assert changed == 200
    assert changed_body == new_trust_base
    assert changed_headers["etag"] != first_headers["etag"]
    assert run.stop() == 0


def test_aggregator_proxy_trust_base_404_before_genesis(start_entrypoint: StartEntrypoint, config_dir: Path,
                                                         standin_port: int) -> None:
    run = start_proxy(start_entrypoint, config_dir, standin_port)
    run.wait_running()

    status, headers, body = request(run.http_port, "GET", TRUST_BASE_PATH)

    assert status == 404
    assert headers["content-type"] == "application/json"
    assert "does not exist" in json.loads(body)["error"]
    assert run.stop() == 0


def test_aggregator_proxy_json_rpc_post(start_entrypoint: StartEntrypoint, config_dir: Path, standin_port: int) -> None:
    write_trust_base(config_dir)
    run = start_proxy(start_entrypoint, config_dir, standin_port)
    run.wait_running()
    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "get_block_height", "params": {}}).encode()

    status, _, body = request(run.http_port, "POST", "/", body=call, headers={"Content-Type": "application/json"})

    assert status == 200
    assert json.loads(body)["result"]["blockNumber"].isdigit()
    assert run.stop() == 0


def test_aggregator_proxy_health_status_passed_through(start_entrypoint: StartEntrypoint, config_dir: Path,
                                                       tmp_path: Path) -> None:
    write_trust_base(config_dir)
    arguments = ("--trust-base", str(config_dir / "trust-base.json"), "--health-status", "unhealthy")
    with run_standin(tmp_path / "unhealthy.log", *arguments) as (port, _):
        run = start_proxy(start_entrypoint, config_dir, port)
        run.wait_for_health(lambda doc: doc["service"]["state"] == "starting", description="service starting")
        time.sleep(2)

        status, _, body = request(run.http_port, "GET", "/health")
        document = run.health_via_nginx()

        assert status == 503
        assert json.loads(body)["status"] == "unhealthy"
        # The backend's 503 keeps the proxy's own service from counting as ready.
        assert document["service"]["state"] == "starting"
        assert run.stop() == 0


def test_aggregator_proxy_unknown_path_404(start_entrypoint: StartEntrypoint, config_dir: Path, standin_port: int) -> None:
    write_trust_base(config_dir)
    run = start_proxy(start_entrypoint, config_dir, standin_port)
    run.wait_running()

    status, headers, body = request(run.http_port, "PUT", "/api/v1/trustbases", body=b"{}")

    assert status == 404
    assert headers["content-type"] == "application/json"
    assert "not found" in json.loads(body)["error"]
    assert run.stop() == 0


def test_aggregator_proxy_waits_for_backend(start_entrypoint: StartEntrypoint, config_dir: Path, tmp_path: Path) -> None:
    write_trust_base(config_dir)
    backend_port = pick_free_ports(1)[0]
    run = start_proxy(start_entrypoint, config_dir, backend_port)
    run.wait_for_health(lambda doc: doc["service"]["state"] == "starting", description="service starting")
    time.sleep(2)
    starting = run.health_via_nginx()

    with run_standin(tmp_path / "late.log", "--trust-base", str(config_dir / "trust-base.json"),
                     "--port", str(backend_port)):
        running = run.wait_running()

    assert starting["service"]["state"] == "starting"
    assert running["status"] == "ok"
    assert run.stop() == 0
