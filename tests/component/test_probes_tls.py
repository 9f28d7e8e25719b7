"""probe_tls and probe_tcp against real TLS servers on 127.0.0.1 with certificates from a throwaway CA."""

from __future__ import annotations

import datetime
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.probes_support import (
    CertificateFiles,
    ThrowawayCA,
    free_port,
    https_nip11_server,
    issue_self_signed,
)
from unicity_infra.probes.report import Check, Status
from unicity_infra.probes.tls import probe_tcp, probe_tls

pytestmark = pytest.mark.component

DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def relay_port(ca: ThrowawayCA) -> Iterator[int]:
    files = ca.issue("relay", dns_names=("relay.test",))
    with https_nip11_server(files) as server:
        yield server.server_port


def _serve(files: CertificateFiles) -> Iterator[int]:
    with https_nip11_server(files) as server:
        yield server.server_port


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_probe_tls_verifies_against_ca_file(ca: ThrowawayCA, relay_port: int) -> None:
    checks = probe_tls("127.0.0.1", relay_port, server_name="relay.test", ca_file=ca.cert_file)

    assert [check.name for check in checks] == [
        "TLS handshake",
        "certificate chain",
        "certificate name",
        "certificate expiry",
    ]
    assert [check.status for check in checks] == [Status.OK] * 4
    assert str(ca.cert_file) in _by_name(checks)["certificate chain"].detail
    assert "SNI relay.test" in _by_name(checks)["TLS handshake"].detail


def test_probe_tls_system_store_rejects_private_ca(relay_port: int) -> None:
    checks = _by_name(probe_tls("127.0.0.1", relay_port, server_name="relay.test"))

    assert checks["certificate chain"].status is Status.FAIL
    assert "unable to get local issuer certificate" in checks["certificate chain"].detail
    assert "--ca-file" in checks["certificate chain"].detail
    assert checks["certificate name"].status is Status.OK
    assert checks["certificate expiry"].status is Status.OK


def test_probe_tls_insecure_downgrades_chain_to_warning(relay_port: int) -> None:
    checks = _by_name(probe_tls("127.0.0.1", relay_port, server_name="relay.test", insecure=True))

    assert checks["TLS handshake"].status is Status.OK
    assert checks["certificate chain"].status is Status.WARN
    assert "unable to get local issuer certificate" in checks["certificate chain"].detail
    assert checks["certificate name"].status is Status.OK


def test_probe_tls_san_mismatch_fails(ca: ThrowawayCA, relay_port: int) -> None:
    for insecure in (False, True):
        checks = _by_name(
            probe_tls("127.0.0.1", relay_port, server_name="faucet.test", ca_file=ca.cert_file, insecure=insecure)
        )

        assert checks["certificate name"].status is Status.FAIL
        assert "faucet.test" in checks["certificate name"].detail
        assert "DNS:relay.test" in checks["certificate name"].detail
        assert checks["certificate chain"].status is Status.OK


def test_probe_tls_wildcard_san_matches(ca: ThrowawayCA) -> None:
    files = ca.issue("wildcard", dns_names=("*.dev.test",))
    with https_nip11_server(files) as server:
        matching = _by_name(probe_tls("127.0.0.1", server.server_port, server_name="relay.dev.test", ca_file=ca.cert_file))
        too_deep = _by_name(probe_tls("127.0.0.1", server.server_port, server_name="a.relay.dev.test", ca_file=ca.cert_file))

    assert matching["certificate name"].status is Status.OK
    assert too_deep["certificate name"].status is Status.FAIL


def test_probe_tls_near_expiry_warns(ca: ThrowawayCA) -> None:
    files = ca.issue("soon", dns_names=("relay.test",), valid_from=-DAY, valid_for=6 * DAY)
    with https_nip11_server(files) as server:
        checks = _by_name(probe_tls("127.0.0.1", server.server_port, server_name="relay.test", ca_file=ca.cert_file))

    assert checks["certificate expiry"].status is Status.WARN
    assert "expires in 5.0 days" in checks["certificate expiry"].detail
    assert checks["certificate chain"].status is Status.OK


def test_probe_tls_expired_fails(ca: ThrowawayCA) -> None:
    files = ca.issue("expired", dns_names=("relay.test",), valid_from=-10 * DAY, valid_for=7 * DAY)
    with https_nip11_server(files) as server:
        checks = _by_name(probe_tls("127.0.0.1", server.server_port, server_name="relay.test", ca_file=ca.cert_file))

    assert checks["certificate expiry"].status is Status.FAIL
    assert "expired 3.0 days ago" in checks["certificate expiry"].detail
    assert checks["certificate chain"].status is Status.FAIL
    assert "certificate has expired" in checks["certificate chain"].detail


def test_probe_tls_not_yet_valid_fails(ca: ThrowawayCA) -> None:
    files = ca.issue("future", dns_names=("relay.test",), valid_from=2 * DAY, valid_for=30 * DAY)
    with https_nip11_server(files) as server:
        checks = _by_name(probe_tls("127.0.0.1", server.server_port, server_name="relay.test", ca_file=ca.cert_file))

    assert checks["certificate expiry"].status is Status.FAIL
    assert "not valid before" in checks["certificate expiry"].detail


def test_probe_tls_self_signed_leaf_as_ca_file(tmp_path: Path) -> None:
    files = issue_self_signed(tmp_path, "pinned", dns_names=("relay.test",))
    with https_nip11_server(files) as server:
        checks = probe_tls("127.0.0.1", server.server_port, server_name="relay.test", ca_file=files.cert_file)

    assert [check.status for check in checks] == [Status.OK] * 4


def test_probe_tls_missing_ca_file_fails(relay_port: int, tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"

    checks = probe_tls("127.0.0.1", relay_port, server_name="relay.test", ca_file=missing)

    assert len(checks) == 1
    assert checks[0].status is Status.FAIL
    assert f"cannot load CA file '{missing}'" in checks[0].detail


def test_probe_tls_closed_port_fails() -> None:
    port = free_port()

    checks = probe_tls("127.0.0.1", port, server_name="relay.test", timeout_s=2)

    assert len(checks) == 1
    assert checks[0].status is Status.FAIL
    assert f"connection refused to 127.0.0.1:{port}" in checks[0].detail


def test_probe_tls_plain_http_port_fails() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        checks = probe_tls("127.0.0.1", server.server_port, server_name="relay.test", timeout_s=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    assert len(checks) == 1
    assert checks[0].status is Status.FAIL
    assert "TLS handshake with 127.0.0.1" in checks[0].detail


def test_probe_tls_silent_server_times_out() -> None:
    # The kernel completes the TCP handshake from the listen backlog, but the test
    # never calls accept(), so no ServerHello is ever sent.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        checks = probe_tls("127.0.0.1", port, server_name="relay.test", timeout_s=0.5)

    assert len(checks) == 1
    assert checks[0].status is Status.FAIL
    assert checks[0].detail.startswith("timed out after 0.5 s waiting for the TLS handshake")


def test_probe_tcp_open_and_closed_port(relay_port: int) -> None:
    closed_port = free_port()

    open_check = probe_tcp("127.0.0.1", relay_port, timeout_s=2)
    closed_check = probe_tcp("127.0.0.1", closed_port, timeout_s=2)

    assert open_check.status is Status.OK
    assert closed_check.status is Status.FAIL
    assert f"connection refused to 127.0.0.1:{closed_port}" in closed_check.detail
