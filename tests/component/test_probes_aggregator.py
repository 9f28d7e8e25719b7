"""probe_aggregator against the aggregator stand-in running as a host process on 127.0.0.1, over HTTP and HTTPS."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.component.probes_support import ThrowawayCA, free_port
from tests.unit.test_trust_base import make_trust_base
from unicity_infra.probes.aggregator import probe_aggregator
from unicity_infra.probes.report import Report, Status, render_json
from unicity_infra.probes.trust_base import trust_base_sha256

pytestmark = pytest.mark.component

STANDIN = Path(__file__).resolve().parents[1] / "fixtures" / "aggregator_standin.py"
TLS_CHECKS = ["TLS handshake", "certificate chain", "certificate name", "certificate expiry"]
SERVICE_CHECKS = ["health", "block height", "trust base", "trust base file", "certification"]


@pytest.fixture(scope="module")
def trust_base_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("genesis") / "trust-base.json"
    path.write_text(json.dumps(make_trust_base(), indent=2) + "\n")
    return path


@contextlib.contextmanager
def run_standin(
    log_file: Path, *arguments: str, env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run the stand-in on a free port of 127.0.0.1, yield its port and process, and stop it afterwards."""
    command = [sys.executable, str(STANDIN), "--host", "127.0.0.1", "--port", "0", *arguments]
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        yield _wait_for_listening(process, log_file), process
    finally:
        _stop(process)


def _wait_for_listening(process: subprocess.Popen[bytes], log_file: Path) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        match = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", log_file.read_text())
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"stand-in exited with status {process.returncode}: {log_file.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"stand-in did not start within 15 s: {log_file.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _statuses(report: Report) -> dict[str, Status]:
    return {check.name: check.status for check in report.checks}


def _detail(report: Report, name: str) -> str:
    return next(check.detail for check in report.checks if check.name == name)


def test_probe_aggregator_green(tmp_path: Path, trust_base_file: Path) -> None:
    with run_standin(tmp_path / "standin.log", "--trust-base", str(trust_base_file), "--serve-well-known") as (port, _):
        report = probe_aggregator(
            f"http://127.0.0.1:{port}", trust_base_file=trust_base_file, deep=True, height_wait_s=5, proof_wait_s=10
        )

    assert [check.name for check in report.checks] == ["TCP connect", *SERVICE_CHECKS]
    assert report.ok, render_json([report])
    assert report.warnings == 0
    assert report.target == f"http://127.0.0.1:{port}"


def test_probe_aggregator_stuck_height(tmp_path: Path, trust_base_file: Path) -> None:
    arguments = ("--trust-base", str(trust_base_file), "--serve-well-known", "--stuck-height")
    with run_standin(tmp_path / "standin.log", *arguments) as (port, _):
        report = probe_aggregator(f"http://127.0.0.1:{port}", height_wait_s=2)

    assert _statuses(report)["block height"] is Status.FAIL
    assert _detail(report, "block height").startswith("block height did not advance: stuck at 1 for 2 s")
    assert _statuses(report)["health"] is Status.OK


def test_probe_aggregator_database_disconnected(tmp_path: Path, trust_base_file: Path) -> None:
    arguments = ("--trust-base", str(trust_base_file), "--serve-well-known", "--database", "disconnected")
    with run_standin(tmp_path / "standin.log", *arguments) as (port, _):
        report = probe_aggregator(f"http://127.0.0.1:{port}", height_wait_s=3)

    assert not report.ok
    assert _statuses(report)["health"] is Status.FAIL
    assert "database is 'disconnected'" in _detail(report, "health")
    assert '"database": "disconnected"' in _detail(report, "health")


def test_probe_aggregator_unhealthy(tmp_path: Path, trust_base_file: Path) -> None:
    arguments = ("--trust-base", str(trust_base_file), "--health-status", "unhealthy")
    with run_standin(tmp_path / "standin.log", *arguments) as (port, _):
        report = probe_aggregator(f"http://127.0.0.1:{port}", height_wait_s=3)

    assert _statuses(report)["health"] is Status.FAIL
    assert "returned HTTP 503" in _detail(report, "health")


def test_probe_aggregator_trust_base_mismatch(tmp_path: Path, trust_base_file: Path) -> None:
    other_file = tmp_path / "other-trust-base.json"
    other_file.write_text(json.dumps(make_trust_base(node_count=1)))

    with run_standin(tmp_path / "standin.log", "--trust-base", str(trust_base_file), "--serve-well-known") as (port, _):
        report = probe_aggregator(f"http://127.0.0.1:{port}", trust_base_file=other_file, height_wait_s=3)
    detail = _detail(report, "trust base file")

    assert _statuses(report)["trust base"] is Status.OK
    assert _statuses(report)["trust base file"] is Status.FAIL
    assert f"served sha256 {trust_base_sha256(trust_base_file.read_bytes())}" in detail
    assert f"file sha256 {trust_base_sha256(other_file.read_bytes())}" in detail


def test_probe_aggregator_no_well_known_warns(tmp_path: Path, trust_base_file: Path) -> None:
    with run_standin(tmp_path / "standin.log", "--trust-base", str(trust_base_file)) as (port, _):
        report = probe_aggregator(f"http://127.0.0.1:{port}", height_wait_s=3)

    assert report.ok, render_json([report])
    assert _statuses(report)["trust base"] is Status.WARN


def test_probe_aggregator_environment_settings(tmp_path: Path, trust_base_file: Path) -> None:
    env = {
        "BFT_TRUST_BASE_FILES": f"{trust_base_file},/elsewhere/second.json",
        "STANDIN_STUCK_HEIGHT": "1",
        "STANDIN_DATABASE": "disconnected",
        "STANDIN_SERVE_WELL_KNOWN": "1",
    }
    with run_standin(tmp_path / "standin.log", env=env) as (port, _):
        report = probe_aggregator(f"http://127.0.0.1:{port}", trust_base_file=trust_base_file, height_wait_s=2)
    statuses = _statuses(report)

    assert statuses["health"] is Status.FAIL
    assert statuses["block height"] is Status.FAIL
    assert statuses["trust base file"] is Status.OK


def test_probe_aggregator_nothing_listening() -> None:
    port = free_port()

    report = probe_aggregator(f"http://127.0.0.1:{port}", timeout_s=2)

    assert [check.name for check in report.checks] == ["TCP connect"]
    assert report.checks[0].status is Status.FAIL
    assert f"connection refused to 127.0.0.1:{port}" in report.checks[0].detail


def test_standin_routes(tmp_path: Path, trust_base_file: Path) -> None:
    with (
        run_standin(tmp_path / "standin.log", "--trust-base", str(trust_base_file)) as (port, _),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=5) as client,
    ):
        root = client.get("/")
        unknown_method = client.post("/", json={"jsonrpc": "2.0", "method": "submit_commitment", "params": {}, "id": 1})
        bad_state_id = client.post(
            "/", json={"jsonrpc": "2.0", "method": "get_inclusion_proof.v2", "params": {"stateId": "00"}, "id": 2}
        )
        bad_request = client.post(
            "/", json={"jsonrpc": "2.0", "method": "certification_request", "params": "d99876", "id": 3}
        )
    log = (tmp_path / "standin.log").read_text()

    assert root.status_code == 404
    assert unknown_method.json()["error"]["code"] == -32601
    assert bad_state_id.json()["error"]["code"] == -32602
    assert bad_request.json()["error"]["code"] == -32602
    assert "rpc=certification_request" in log
    assert "error=-32602 'invalid certification request" in log
    assert '"GET / HTTP/1.1" 404' in log


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read trust base"), ("{not json", "is not JSON"), ("[1]", "JSON but not an object")],
    ids=["missing", "not JSON", "not an object"],
)
def test_standin_refuses_bad_trust_base(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "trust-base.json"
    if content is not None:
        path.write_text(content)

    completed = subprocess.run(
        [sys.executable, str(STANDIN), "--host", "127.0.0.1", "--port", "0", "--trust-base", str(path)],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )

    assert completed.returncode == 1
    assert message in completed.stderr


def test_standin_exits_zero_on_sigterm(tmp_path: Path, trust_base_file: Path) -> None:
    with run_standin(tmp_path / "standin.log", "--trust-base", str(trust_base_file)) as (_, process):
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=10)

    assert status == 0


# HTTPS: the stand-in serves TLS itself with a certificate from a throwaway CA.


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_port(ca: ThrowawayCA, trust_base_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    files = ca.issue("aggregator", dns_names=("aggregator.test",))
    log_file = tmp_path_factory.mktemp("tls-standin") / "standin.log"
    env = {"ENABLE_TLS": "true", "TLS_CERT_FILE": str(files.cert_file), "TLS_KEY_FILE": str(files.key_file)}
    with run_standin(log_file, "--trust-base", str(trust_base_file), "--serve-well-known", env=env) as (port, _):
        yield port


def test_probe_aggregator_https_connect_ca_file(tls_port: int, ca: ThrowawayCA, trust_base_file: Path) -> None:
    report = probe_aggregator(
        "https://aggregator.test",
        connect=("127.0.0.1", tls_port),
        ca_file=ca.cert_file,
        trust_base_file=trust_base_file,
        deep=True,
        height_wait_s=5,
        proof_wait_s=10,
    )

    assert [check.name for check in report.checks] == ["TCP connect", *TLS_CHECKS, *SERVICE_CHECKS]
    assert report.ok, render_json([report])
    assert report.warnings == 0
    assert report.target == f"https://aggregator.test via 127.0.0.1:{tls_port}"


def test_probe_aggregator_https_untrusted(tls_port: int) -> None:
    report = probe_aggregator("https://aggregator.test", connect=("127.0.0.1", tls_port), height_wait_s=2)
    statuses = _statuses(report)

    assert statuses["TLS handshake"] is Status.OK
    assert statuses["certificate chain"] is Status.FAIL
    assert statuses["health"] is Status.FAIL
    assert "TLS verify failed at https://aggregator.test via 127.0.0.1" in _detail(report, "health")


def test_probe_aggregator_https_insecure_warns(tls_port: int) -> None:
    report = probe_aggregator("https://aggregator.test", connect=("127.0.0.1", tls_port), insecure=True, height_wait_s=3)

    assert report.ok, render_json([report])
    assert _statuses(report)["certificate chain"] is Status.WARN


def test_probe_aggregator_https_wrong_name(tls_port: int, ca: ThrowawayCA) -> None:
    report = probe_aggregator(
        "https://other.test", connect=("127.0.0.1", tls_port), ca_file=ca.cert_file, height_wait_s=2
    )

    assert _statuses(report)["certificate name"] is Status.FAIL
    assert _statuses(report)["health"] is Status.FAIL
