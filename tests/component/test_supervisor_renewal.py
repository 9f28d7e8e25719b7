"""Renewal while the supervisor runs: ``certbot renew`` against Pebble, then a graceful nginx reload.

Pebble issues certificates valid for five years (1825 days). With SSL_CERT_RENEW_DAYS=3650
a fresh certificate is already inside the renewal window, so the first scheduled check
renews it; with the default of 30 days it does not.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.component.conftest import EntrypointRun, pick_free_ports, wait_until
from tests.fixtures.pebble import PebbleCA, start_pebble

pytestmark = pytest.mark.component

DOMAIN = "relay.unicity-test.example"
StartEntrypoint = Callable[..., EntrypointRun]


@pytest.fixture()
def pebble(tmp_path: Path) -> Iterator[tuple[PebbleCA, int]]:
    """A running Pebble that validates HTTP-01 on a free port, and that port."""
    http_port = pick_free_ports(1)[0]
    ca = start_pebble(tmp_path / "pebble", http_port=http_port)
    yield ca, http_port
    ca.stop()


def start_renewing(start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int], **overrides: str) -> EntrypointRun:
    ca, http_port = pebble
    env = {
        "SSL_DOMAIN": DOMAIN,
        "UNICITY_HTTP_PORT": str(http_port),
        "ACME_SERVER": ca.directory_url,
        "ACME_CA_BUNDLE": str(ca.listener_ca_file),
        "SSL_RENEW_FIRST_CHECK_S": "4",
        "SSL_RENEW_INTERVAL_S": "3600",
    }
    env.update(overrides)
    return start_entrypoint(**env)


def serial_of_der(der: bytes) -> str:
    pem = ssl.DER_cert_to_PEM_cert(der)
    result = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def served_serial(port: int) -> str:
    """Return the serial of the certificate a new TLS connection to nginx is given."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return serial_of_der(der)


def file_serial(cert_file: Path) -> str:
    result = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(cert_file)], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_renewal_keeps_open_connection_and_serves_new_certificate(
    start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int]
) -> None:
    run = start_renewing(start_entrypoint, pebble, SSL_CERT_RENEW_DAYS="3650")
    run.wait_running(timeout_s=60)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", run.https_port), timeout=10)

    # The stand-in sends no close frame back, so the client should not wait long for one.
    with connect(
        f"wss://{DOMAIN}:{run.https_port}/", sock=raw, ssl=context, server_hostname=DOMAIN, close_timeout=1
    ) as websocket:
        tls_object = websocket.socket
        assert isinstance(tls_object, ssl.SSLSocket)
        before = serial_of_der(tls_object.getpeercert(binary_form=True) or b"")
        websocket.send("before renewal")
        first_echo = websocket.recv(timeout=5)

        wait_until(
            lambda: "nginx serves the renewed certificate" in run.log_text(),
            timeout_s=60, interval_s=0.2, description="renewed certificate served",
        )
        websocket.send("after renewal")
        second_echo = websocket.recv(timeout=5)
    after = served_serial(run.https_port)
    log = run.log_text()

    assert first_echo == "before renewal"
    assert second_echo == "after renewal"
    assert after != before
    assert after == file_serial(run.cert_root / "live" / DOMAIN / "fullchain.pem")
    assert "days left, renewal threshold is 3650 days" in log
    assert f"renewing certificate domain={DOMAIN} server={pebble[0].directory_url}" in log
    assert run.health_via_nginx()["tls"] is True
    assert run.stop() == 0


def test_renewal_not_due_leaves_certificate(start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int]) -> None:
    run = start_renewing(start_entrypoint, pebble, SSL_RENEW_FIRST_CHECK_S="1")
    run.wait_running(timeout_s=60)
    before = served_serial(run.https_port)

    wait_until(
        lambda: "certificate still valid" in run.log_text(), timeout_s=30, interval_s=0.2, description="first renewal check"
    )

    assert served_serial(run.https_port) == before
    assert "renewing certificate" not in run.log_text()
    assert run.stop() == 0


def test_renewal_failure_keeps_serving(start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int]) -> None:
    run = start_renewing(start_entrypoint, pebble, SSL_CERT_RENEW_DAYS="3650")
    run.wait_running(timeout_s=60)
    before = served_serial(run.https_port)
    # Pebble goes away, so certbot renew cannot reach the ACME directory.
    pebble[0].stop()

    wait_until(
        lambda: "certificate renewal failed failures=1" in run.log_text(),
        timeout_s=120, interval_s=0.5, description="failed renewal logged",
    )

    assert run.process.poll() is None
    assert served_serial(run.https_port) == before
    assert run.wait_running()["status"] == "ok"
    assert run.stop() == 0
