"""The rendered nginx configurations loaded by the real nginx (container/nginx.py), without the supervisor."""

from __future__ import annotations

import base64
import os
import pwd
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.component.conftest import FAKE_RELAY_STANDIN, ProcessReaper, http_get, pick_free_ports, wait_until
from unicity_infra.container.errors import ReloadError
from unicity_infra.container.nginx import NginxSite, install_config, nginx_command, render_http_config, render_tls_config
from unicity_infra.container.tls import CertificateState, issue_self_signed

pytestmark = pytest.mark.component

NGINX = Path(os.environ.get("UNICITY_NGINX_BIN", "/usr/sbin/nginx"))
DOMAIN = "relay.unicity-test.example"


@pytest.fixture()
def site(tmp_path: Path) -> NginxSite:
    http_port, https_port, status_port, upstream_port = pick_free_ports(4)
    (tmp_path / "www").mkdir()
    return NginxSite(
        prefix=tmp_path / "nginx",
        http_port=http_port,
        https_port=https_port,
        status_port=status_port,
        upstream_port=upstream_port,
        webroot=tmp_path / "www",
        server_names=(DOMAIN,),
        listen_address="127.0.0.1",
        user=pwd.getpwuid(os.getuid()).pw_name,
    )


@pytest.fixture()
def standin(site: NginxSite, tmp_path: Path, process_reaper: ProcessReaper) -> Iterator[subprocess.Popen[bytes]]:
    """The relay stand-in listening on the site's upstream port."""
    config = tmp_path / "relay.toml"
    config.write_text(f"[network]\nport = {site.upstream_port}\n")
    process = process_reaper.track(
        subprocess.Popen(
            [sys.executable, str(FAKE_RELAY_STANDIN), "--config", str(config), "--db", str(tmp_path)],
            start_new_session=True,
        )
    )
    wait_until(lambda: socket.create_connection(("127.0.0.1", site.upstream_port), timeout=1).close() or True, timeout_s=10, description="stand-in")
    yield process


def start_nginx(site: NginxSite, process_reaper: ProcessReaper) -> subprocess.Popen[bytes]:
    process = process_reaper.track(subprocess.Popen(nginx_command(NGINX, site), start_new_session=True))
    wait_until(lambda: socket.create_connection(("127.0.0.1", site.http_port), timeout=1).close() or True, timeout_s=10, description="nginx")
    return process


def missing_certificate(tmp_path: Path) -> CertificateState:
    return CertificateState(
        domain=DOMAIN,
        cert_file=tmp_path / "absent" / "fullchain.pem",
        key_file=tmp_path / "absent" / "privkey.pem",
        not_after=datetime(2027, 1, 1, tzinfo=timezone.utc),
        days_remaining=30,
    )


def websocket_handshake(port: int) -> bytes:
    """Send a websocket upgrade request to 127.0.0.1:PORT and return the response head."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET / HTTP/1.1\r\nHost: {DOMAIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                break
            head += chunk
    return head


def test_install_config_rejects_missing_certificate(site: NginxSite, tmp_path: Path) -> None:
    install_config(NGINX, site, render_http_config(site))
    live_before = site.conf_file.read_text()

    with pytest.raises(ReloadError) as caught:
        install_config(NGINX, site, render_tls_config(site, missing_certificate(tmp_path)))

    assert "fullchain.pem" in str(caught.value)
    assert caught.value.exit_code == 14
    assert site.conf_file.read_text() == live_before
    assert list(site.prefix.glob("*.candidate")) == []


def test_install_config_accepts_issued_certificate(site: NginxSite, tmp_path: Path) -> None:
    certificate = issue_self_signed((DOMAIN,), tmp_path / "letsencrypt")

    install_config(NGINX, site, render_tls_config(site, certificate))

    assert f"ssl_certificate {certificate.cert_file};" in site.conf_file.read_text()


def test_install_config_rejects_certificate_of_other_key(site: NginxSite, tmp_path: Path) -> None:
    certificate = issue_self_signed((DOMAIN,), tmp_path / "one")
    other = issue_self_signed((DOMAIN,), tmp_path / "other")
    install_config(NGINX, site, render_http_config(site))
    mismatched = replace(certificate, key_file=other.key_file)

    with pytest.raises(ReloadError) as caught:
        install_config(NGINX, site, render_tls_config(site, mismatched))

    assert "key values mismatch" in str(caught.value)
    assert caught.value.exit_code == 14


def test_http_config_proxies_websocket_upgrade(
    site: NginxSite, standin: subprocess.Popen[bytes], process_reaper: ProcessReaper
) -> None:
    install_config(NGINX, site, render_http_config(site))
    start_nginx(site, process_reaper)

    head = websocket_handshake(site.http_port)

    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"upgrade: websocket" in head.lower()


def test_http_config_serves_webroot_file(site: NginxSite, process_reaper: ProcessReaper) -> None:
    challenge_dir = site.webroot / ".well-known" / "acme-challenge"
    challenge_dir.mkdir(parents=True)
    (challenge_dir / "token-1").write_text("token-1.thumbprint")
    install_config(NGINX, site, render_http_config(site))
    start_nginx(site, process_reaper)

    status, headers, body = http_get(site.http_port, "/.well-known/acme-challenge/token-1")
    traversal_status, _, _ = http_get(site.http_port, "/.well-known/acme-challenge/../../nginx/nginx.conf")

    assert status == 200
    assert headers["Content-Type"] == "text/plain"
    assert body == b"token-1.thumbprint"
    assert traversal_status != 200


def test_reload_switches_running_nginx_to_tls(
    site: NginxSite, standin: subprocess.Popen[bytes], process_reaper: ProcessReaper, tmp_path: Path
) -> None:
    install_config(NGINX, site, render_http_config(site))
    nginx = start_nginx(site, process_reaper)
    certificate = issue_self_signed((DOMAIN,), tmp_path / "letsencrypt")

    install_config(NGINX, site, render_tls_config(site, certificate))
    nginx.send_signal(signal.SIGHUP)

    # Old workers finish their connections after the reload, so the redirect shows up shortly after SIGHUP.
    status, headers, _ = wait_until(
        lambda: (response := http_get(site.http_port, "/x", headers={"Host": DOMAIN}))[0] == 301 and response,
        timeout_s=10,
        description="redirect after reload",
    )
    assert status == 301
    assert headers["Location"] == f"https://{DOMAIN}/x"
    assert socket.create_connection(("127.0.0.1", site.https_port), timeout=2).close() is None
