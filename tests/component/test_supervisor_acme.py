"""The supervisor obtaining its certificate from Pebble through certbot's HTTP-01 webroot method.

pebble-challtestsrv resolves every name to 127.0.0.1, and Pebble validates on the
supervisor's HTTP port, so the whole ACME exchange stays on loopback.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.component.conftest import EntrypointRun, pick_free_ports
from tests.fixtures.pebble import PebbleCA, start_pebble

pytestmark = pytest.mark.component

DOMAIN = "relay.unicity-test.example"
ALIAS = "nostr.unicity-test.example"
StartEntrypoint = Callable[..., EntrypointRun]


@pytest.fixture()
def pebble(tmp_path: Path) -> Iterator[tuple[PebbleCA, int]]:
    """A running Pebble that validates HTTP-01 on a free port, and that port."""
    http_port = pick_free_ports(1)[0]
    ca = start_pebble(tmp_path / "pebble", http_port=http_port)
    yield ca, http_port
    ca.stop()


def start_with_acme(start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int], **overrides: str) -> EntrypointRun:
    ca, http_port = pebble
    return start_entrypoint(
        SSL_DOMAIN=DOMAIN,
        UNICITY_HTTP_PORT=str(http_port),
        ACME_SERVER=ca.directory_url,
        ACME_CA_BUNDLE=str(ca.listener_ca_file),
        **overrides,
    )


def verified_peer_certificate(port: int, server_name: str, roots_file: Path) -> dict[str, Any]:
    """Handshake with SNI SERVER_NAME, verifying the chain against ROOTS_FILE and the name against the SAN."""
    context = ssl.create_default_context(cafile=str(roots_file))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert()


def certificate_serial(cert_file: Path) -> str:
    result = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(cert_file)], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def write_roots(ca: PebbleCA, directory: Path) -> Path:
    roots_file = directory / "pebble-roots.pem"
    roots_file.write_text(ca.issuing_roots_pem())
    return roots_file


def test_acme_certificate_from_pebble(start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int], tmp_path: Path) -> None:
    run = start_with_acme(start_entrypoint, pebble, SSL_DOMAIN_ALIASES=ALIAS, SSL_ADMIN_EMAIL="ops@unicity-test.example")

    document = run.wait_running(timeout_s=90)
    roots_file = write_roots(pebble[0], tmp_path)

    certificate = verified_peer_certificate(run.https_port, DOMAIN, roots_file)
    alias_certificate = verified_peer_certificate(run.https_port, ALIAS, roots_file)
    assert document["tls"] is True
    assert ("DNS", DOMAIN) in certificate["subjectAltName"]
    assert ("DNS", ALIAS) in alias_certificate["subjectAltName"]
    assert (run.cert_root / "renewal" / f"{DOMAIN}.conf").is_file()
    assert "certificate obtained" in run.log_text()
    assert run.stop() == 0


def test_acme_certificate_reused_on_restart(start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int], tmp_path: Path) -> None:
    first = start_with_acme(start_entrypoint, pebble)
    first.wait_running(timeout_s=90)
    cert_file = first.cert_root / "live" / DOMAIN / "fullchain.pem"
    serial = certificate_serial(cert_file)
    assert first.stop() == 0

    second = start_with_acme(start_entrypoint, pebble, root=tmp_path)
    second.wait_running(timeout_s=30)

    assert certificate_serial(cert_file) == serial
    assert "reusing certificate" in second.log_text()
    assert "requesting certificate" not in second.log_text()
    assert second.stop() == 0


def test_acme_replaces_self_signed_certificate(
    start_entrypoint: StartEntrypoint, pebble: tuple[PebbleCA, int], tmp_path: Path
) -> None:
    test_mode = start_entrypoint(SSL_DOMAIN=DOMAIN, SSL_TEST_MODE="true")
    test_mode.wait_running()
    assert test_mode.stop() == 0

    run = start_with_acme(start_entrypoint, pebble, root=tmp_path)
    run.wait_running(timeout_s=90)
    roots_file = write_roots(pebble[0], tmp_path)

    certificate = verified_peer_certificate(run.https_port, DOMAIN, roots_file)
    assert ("DNS", DOMAIN) in certificate["subjectAltName"]
    assert "certificate is self-signed but SSL_TEST_MODE is off" in run.log_text()
    assert list((run.cert_root / "replaced").glob(f"{DOMAIN}-*/live/fullchain.pem")) != []
    assert run.stop() == 0
