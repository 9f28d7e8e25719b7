"""The supervisor's TLS path as a host process: real openssl, real nginx, the relay stand-in.

SSL_TEST_MODE issues self-signed certificates into a temporary certificate root.
"""

from __future__ import annotations

import json
import socket
import ssl
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.component.conftest import EntrypointRun, http_get, pick_free_ports, wait_until
from tests.component.probes_support import find_relay_binary

pytestmark = pytest.mark.component

DOMAIN = "relay.unicity-test.example"
ALIAS = "nostr.unicity-test.example"
StartEntrypoint = Callable[..., EntrypointRun]


def tls_context(cafile: Path | None = None) -> ssl.SSLContext:
    """Return a client context that trusts only CAFILE, or trusts anything when CAFILE is None."""
    if cafile is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(cafile))


def peer_certificate(port: int, server_name: str, cafile: Path) -> dict[str, Any]:
    """Complete a TLS handshake with SNI SERVER_NAME, verifying the name against CAFILE, and return the peer certificate."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with tls_context(cafile).wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert()


def https_get(port: int, path: str, *, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET PATH over TLS with SNI DOMAIN, without verifying the certificate."""
    request = f"GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n"
    for name, value in (headers or {}).items():
        request += f"{name}: {value}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with tls_context().wrap_socket(raw, server_hostname=DOMAIN) as tls:
            tls.sendall((request + "\r\n").encode())
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def certificate_serial(cert_file: Path) -> str:
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-serial", "-in", str(cert_file)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def slow_openssl(directory: Path, delay_s: float) -> Path:
    """Write an openssl wrapper that waits DELAY_S before ``openssl req``, to observe the boot before the certificate."""
    wrapper = directory / "slow-openssl"
    wrapper.write_text(f'#!/bin/sh\nif [ "$1" = req ]; then sleep {delay_s}; fi\nexec openssl "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def start_tls(start_entrypoint: StartEntrypoint, **overrides: str) -> EntrypointRun:
    return start_entrypoint(SSL_DOMAIN=DOMAIN, SSL_TEST_MODE="true", **overrides)


def test_first_boot_serves_http_before_certificate(start_entrypoint: StartEntrypoint, tmp_path: Path) -> None:
    run = start_tls(start_entrypoint, UNICITY_OPENSSL_BIN=str(slow_openssl(tmp_path, 3)))
    cert_file = run.cert_root / "live" / DOMAIN / "fullchain.pem"

    # While openssl is still "working", nginx already serves port 80 and no certificate exists.
    early = wait_until(lambda: json.loads(http_get(run.http_port, "/_ssl/health")[2]), timeout_s=10, description="port 80")
    assert early["tls"] is False
    assert early["cert_expires"] is None
    assert not cert_file.exists()

    document = run.wait_for_health(lambda doc: doc["tls"] is True, description="TLS switch")
    assert document["domain"] == DOMAIN
    assert document["days_remaining"] == 89
    assert document["cert_expires"].endswith("Z")
    assert run.stop() == 0


def test_first_boot_tls_handshake_with_sni(start_entrypoint: StartEntrypoint) -> None:
    run = start_tls(start_entrypoint, SSL_DOMAIN_ALIASES=ALIAS)
    run.wait_running()
    cert_file = run.cert_root / "live" / DOMAIN / "fullchain.pem"
    key_file = run.cert_root / "live" / DOMAIN / "privkey.pem"

    # Verification against the issued certificate itself checks the SAN against the SNI name.
    certificate = peer_certificate(run.https_port, DOMAIN, cert_file)
    alias_certificate = peer_certificate(run.https_port, ALIAS, cert_file)

    assert ("DNS", DOMAIN) in certificate["subjectAltName"]
    assert ("DNS", ALIAS) in alias_certificate["subjectAltName"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert run.stop() == 0


def test_tls_proxies_nip11(start_entrypoint: StartEntrypoint) -> None:
    run = start_tls(start_entrypoint)
    run.wait_running()

    status, body = https_get(run.https_port, "/", headers={"Accept": "application/nostr+json"})

    assert status == 200
    assert json.loads(body)["software"] == "fake_relay_standin"
    assert run.stop() == 0


def test_tls_health_on_https_port(start_entrypoint: StartEntrypoint) -> None:
    run = start_tls(start_entrypoint)
    run.wait_running()

    status, body = https_get(run.https_port, "/_ssl/health")

    assert status == 200
    assert json.loads(body)["tls"] is True
    assert run.stop() == 0


def test_acme_token_served_over_http_with_tls_on(start_entrypoint: StartEntrypoint) -> None:
    run = start_tls(start_entrypoint)
    run.wait_for_health(lambda doc: doc["tls"] is True, description="TLS switch")
    token = run.webroot / ".well-known" / "acme-challenge" / "token-abc"
    token.write_text("token-abc.key-authorization")

    status, _, body = http_get(run.http_port, "/.well-known/acme-challenge/token-abc", headers={"Host": DOMAIN})
    missing_status, _, _ = http_get(run.http_port, "/.well-known/acme-challenge/no-such-token", headers={"Host": DOMAIN})

    assert status == 200
    assert body == b"token-abc.key-authorization"
    assert missing_status == 404
    assert run.stop() == 0


def test_other_http_paths_redirect_to_https(start_entrypoint: StartEntrypoint) -> None:
    run = start_tls(start_entrypoint)
    run.wait_for_health(lambda doc: doc["tls"] is True, description="TLS switch")

    status, headers, _ = http_get(run.http_port, "/some/path?x=1", headers={"Host": DOMAIN})
    root_status, root_headers, _ = http_get(run.http_port, "/", headers={"Host": DOMAIN, "Accept": "application/nostr+json"})

    assert status == 301
    assert headers["Location"] == f"https://{DOMAIN}/some/path?x=1"
    assert root_status == 301
    assert root_headers["Location"] == f"https://{DOMAIN}/"
    assert run.stop() == 0


def test_websocket_over_tls_upgrades(start_entrypoint: StartEntrypoint) -> None:
    run = start_tls(start_entrypoint)
    run.wait_running()

    raw = socket.create_connection(("127.0.0.1", run.https_port), timeout=5)
    with connect(f"wss://{DOMAIN}:{run.https_port}/", sock=raw, ssl=tls_context(), server_hostname=DOMAIN) as websocket:
        websocket.send('["REQ","sub-1",{}]')
        echoed = websocket.recv(timeout=5)
        status_code = websocket.response.status_code

    assert status_code == 101
    assert echoed == '["REQ","sub-1",{}]'
    assert run.stop() == 0


def test_second_start_reuses_valid_certificate(start_entrypoint: StartEntrypoint, tmp_path: Path) -> None:
    first = start_tls(start_entrypoint)
    first.wait_running()
    cert_file = first.cert_root / "live" / DOMAIN / "fullchain.pem"
    serial = certificate_serial(cert_file)
    assert first.stop() == 0

    second = start_tls(start_entrypoint, root=tmp_path)
    second.wait_running()

    assert certificate_serial(cert_file) == serial
    assert "reusing certificate" in second.log_text()
    assert "issuing self-signed certificate" not in second.log_text()
    assert second.stop() == 0


def test_second_start_renews_certificate_inside_threshold(start_entrypoint: StartEntrypoint, tmp_path: Path) -> None:
    first = start_tls(start_entrypoint)
    first.wait_running()
    cert_file = first.cert_root / "live" / DOMAIN / "fullchain.pem"
    serial = certificate_serial(cert_file)
    assert first.stop() == 0

    # A fresh self-signed certificate has 89 whole days left, inside a 90-day threshold.
    second = start_tls(start_entrypoint, root=tmp_path, SSL_CERT_RENEW_DAYS="90")
    second.wait_running()

    assert certificate_serial(cert_file) != serial
    assert "renewal threshold is 90 days" in second.log_text()
    assert second.stop() == 0


def closed_acme_server() -> str:
    """Return an ACME directory URL on a loopback port where nothing listens."""
    return f"https://127.0.0.1:{pick_free_ports(1)[0]}/dir"


def test_certificate_failure_optional_serves_plain_http(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(SSL_DOMAIN=DOMAIN, SSL_REQUIRED="false", ACME_SERVER=closed_acme_server())

    document = run.wait_running(timeout_s=60)
    status, _, body = http_get(run.http_port, "/", headers={"Host": DOMAIN, "Accept": "application/nostr+json"})

    assert document["tls"] is False
    assert status == 200
    assert json.loads(body)["software"] == "fake_relay_standin"
    assert "certbot exited with status 1" in run.log_text()
    assert "SSL_REQUIRED=false" in run.log_text()
    assert run.stop() == 0


def test_certificate_failure_required_exits_11(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(SSL_DOMAIN=DOMAIN, ACME_SERVER=closed_acme_server())

    status = run.wait_exit(timeout_s=60)

    assert status == 11
    assert f"certificate for {DOMAIN} could not be obtained: certbot exited" in run.log_text()
    assert run.events() == []


def test_real_relay_behind_tls(start_entrypoint: StartEntrypoint) -> None:
    binary = find_relay_binary()
    run = start_tls(start_entrypoint, RELAY_BINARY=str(binary), RUST_LOG="warn")
    run.wait_running(timeout_s=30)

    status, body = https_get(run.https_port, "/", headers={"Accept": "application/nostr+json"})
    raw = socket.create_connection(("127.0.0.1", run.https_port), timeout=5)
    with connect(f"wss://{DOMAIN}:{run.https_port}/", sock=raw, ssl=tls_context(), server_hostname=DOMAIN) as websocket:
        websocket.send('["REQ","sub-1",{"kinds":[1],"limit":1}]')
        reply = json.loads(websocket.recv(timeout=10))
        status_code = websocket.response.status_code

    assert status == 200
    assert "nostr-rs-relay" in json.loads(body)["software"]
    assert status_code == 101
    assert reply == ["EOSE", "sub-1"]
    assert run.stop() == 0


def test_unexpected_error_stops_nginx(start_entrypoint: StartEntrypoint, tmp_path: Path) -> None:
    cert_root = tmp_path / "broken-letsencrypt"
    cert_root.mkdir()
    # A file where certbot's layout needs the "live" directory makes issuance fail with an OSError.
    (cert_root / "live").write_text("not a directory")
    run = start_tls(start_entrypoint, SSL_CERT_ROOT=str(cert_root))

    status = run.wait_exit(timeout_s=20)

    assert status == 1
    assert "supervisor failed during start-up of service relay" in run.log_text()
    assert "stopped nginx" in run.log_text()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", run.http_port), timeout=1).close()
