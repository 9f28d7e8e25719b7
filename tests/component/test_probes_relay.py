"""probe_relay against the real nostr-rs-relay, directly and behind a real nginx terminating TLS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.component.probes_support import (
    ThrowawayCA,
    find_relay_binary,
    free_port,
    run_nginx_tls_proxy,
    run_relay,
)
from unicity_infra.probes.relay import probe_relay
from unicity_infra.probes.report import Report, Status, render_json

pytestmark = pytest.mark.component

TLS_CHECKS = ["TLS handshake", "certificate chain", "certificate name", "certificate expiry"]
ROUNDTRIP_CHECKS = ["NIP-11", "websocket open", "publish event", "subscription"]


@pytest.fixture(scope="module")
def relay_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = find_relay_binary()
    with run_relay(binary, tmp_path_factory.mktemp("relay")) as port:
        yield port


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_port(relay_port: int, ca: ThrowawayCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    files = ca.issue("relay", dns_names=("relay.test",))
    with run_nginx_tls_proxy(files, relay_port, tmp_path_factory.mktemp("nginx")) as port:
        yield port


def _statuses(report: Report) -> dict[str, Status]:
    return {check.name: check.status for check in report.checks}


def test_probe_relay_direct_ws(relay_port: int) -> None:
    report = probe_relay(f"ws://127.0.0.1:{relay_port}", timeout_s=5)

    assert [check.name for check in report.checks] == ["TCP connect", *ROUNDTRIP_CHECKS]
    assert report.ok, render_json([report])
    assert report.warnings == 0
    assert report.target == f"ws://127.0.0.1:{relay_port}"


def test_probe_relay_wss_with_connect_and_ca_file(tls_port: int, ca: ThrowawayCA) -> None:
    report = probe_relay("wss://relay.test", connect=("127.0.0.1", tls_port), ca_file=ca.cert_file, timeout_s=5)

    assert [check.name for check in report.checks] == ["TCP connect", *TLS_CHECKS, *ROUNDTRIP_CHECKS]
    assert report.ok, render_json([report])
    assert report.warnings == 0
    assert report.target == f"wss://relay.test via 127.0.0.1:{tls_port}"
    assert "name='unicity-infra probe test relay'" in report.checks[5].detail


def test_probe_relay_wss_untrusted_fails_every_tls_step(tls_port: int) -> None:
    report = probe_relay("wss://relay.test", connect=("127.0.0.1", tls_port), timeout_s=5)
    statuses = _statuses(report)

    assert not report.ok
    assert statuses["TLS handshake"] is Status.OK
    assert statuses["certificate chain"] is Status.FAIL
    assert statuses["certificate name"] is Status.OK
    assert statuses["NIP-11"] is Status.FAIL
    assert statuses["websocket open"] is Status.FAIL


def test_probe_relay_wss_insecure_warns(tls_port: int) -> None:
    report = probe_relay("wss://relay.test", connect=("127.0.0.1", tls_port), insecure=True, timeout_s=5)

    assert report.ok, render_json([report])
    assert report.warnings == 1
    assert _statuses(report)["certificate chain"] is Status.WARN
    assert _statuses(report)["subscription"] is Status.OK


def test_probe_relay_wss_wrong_name_fails(tls_port: int, ca: ThrowawayCA) -> None:
    report = probe_relay("wss://faucet.test", connect=("127.0.0.1", tls_port), ca_file=ca.cert_file, timeout_s=5)
    checks = {check.name: check for check in report.checks}

    assert checks["certificate name"].status is Status.FAIL
    assert checks["NIP-11"].status is Status.FAIL
    assert "does not name this host" in checks["NIP-11"].detail


def test_probe_relay_closed_port_stops_after_tcp() -> None:
    port = free_port()

    report = probe_relay(f"wss://relay.test:{port}", connect=("127.0.0.1", port), timeout_s=5)

    assert len(report.checks) == 1
    assert report.checks[0].status is Status.FAIL
    assert f"connection refused to 127.0.0.1:{port}" in report.checks[0].detail


def test_probe_relay_plain_port_wss_stops(relay_port: int) -> None:
    report = probe_relay("wss://relay.test", connect=("127.0.0.1", relay_port), timeout_s=5)

    assert [check.name for check in report.checks] == ["TCP connect", "TLS handshake"]
    assert report.checks[1].status is Status.FAIL
