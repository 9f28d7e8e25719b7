"""Unit tests of the nginx configuration renderers (container/nginx.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from unicity_infra.container.config import load_config
from unicity_infra.container.nginx import NginxSite, nginx_command, render_http_config, render_tls_config, site_from_config
from unicity_infra.container.tls import CertificateState

CERT_FILE = Path("/etc/letsencrypt/live/relay.example.org/fullchain.pem")
KEY_FILE = Path("/etc/letsencrypt/live/relay.example.org/privkey.pem")


@pytest.fixture()
def site() -> NginxSite:
    return NginxSite(
        prefix=Path("/run/unicity/nginx"),
        http_port=80,
        https_port=443,
        status_port=8081,
        upstream_port=8080,
        webroot=Path("/var/www/acme-challenge"),
        server_names=("relay.example.org", "nostr.example.org"),
    )


@pytest.fixture()
def certificate() -> CertificateState:
    return CertificateState(
        domain="relay.example.org",
        cert_file=CERT_FILE,
        key_file=KEY_FILE,
        not_after=datetime(2027, 1, 1, tzinfo=timezone.utc),
        days_remaining=60,
    )


def server_blocks(config: str) -> list[str]:
    """Split CONFIG into its top-level ``server { ... }`` blocks by brace depth."""
    blocks = []
    for match in re.finditer(r"^    server \{$", config, flags=re.MULTILINE):
        depth = 0
        for index in range(match.start(), len(config)):
            if config[index] == "{":
                depth += 1
            elif config[index] == "}":
                depth -= 1
                if depth == 0:
                    blocks.append(config[match.start() : index + 1])
                    break
    return blocks


def location_block(server: str, header: str) -> str:
    start = server.index(f"location {header} {{")
    return server[start : server.index("}", start) + 1]


def test_render_http_config_proxies_to_service(site: NginxSite) -> None:
    config = render_http_config(site)

    [http_server] = server_blocks(config)
    default = location_block(http_server, "/")
    assert "listen 80 default_server;" in http_server
    assert "proxy_pass http://127.0.0.1:8080;" in default
    assert "return 301" not in config
    assert "ssl_certificate" not in config


def test_render_http_config_serves_acme_webroot(site: NginxSite) -> None:
    [http_server] = server_blocks(render_http_config(site))

    acme = location_block(http_server, "^~ /.well-known/acme-challenge/")
    assert "root /var/www/acme-challenge;" in acme
    assert "try_files $uri =404;" in acme


def test_render_http_config_health_goes_to_status_server(site: NginxSite) -> None:
    [http_server] = server_blocks(render_http_config(site))

    health = location_block(http_server, "= /_ssl/health")
    assert "proxy_pass http://127.0.0.1:8081;" in health


@pytest.mark.parametrize("render", ["http", "tls"])
def test_render_config_websocket_headers(site: NginxSite, certificate: CertificateState, render: str) -> None:
    config = render_http_config(site) if render == "http" else render_tls_config(site, certificate)

    proxy_server = server_blocks(config)[-1]
    default = location_block(proxy_server, "/")
    assert "map $http_upgrade $connection_upgrade {" in config
    assert "proxy_http_version 1.1;" in default
    assert "proxy_set_header Upgrade $http_upgrade;" in default
    assert "proxy_set_header Connection $connection_upgrade;" in default
    assert "proxy_read_timeout 3600s;" in default
    assert "proxy_send_timeout 3600s;" in default


def test_render_tls_config_acme_location_not_redirected(site: NginxSite, certificate: CertificateState) -> None:
    http_server, _ = server_blocks(render_tls_config(site, certificate))

    acme = location_block(http_server, "^~ /.well-known/acme-challenge/")
    health = location_block(http_server, "= /_ssl/health")
    default = location_block(http_server, "/")
    assert "return" not in acme
    assert "root /var/www/acme-challenge;" in acme
    assert "return" not in health
    assert "return 301 https://$host$request_uri;" in default
    assert "proxy_pass" not in default


def test_render_tls_config_tls_server(site: NginxSite, certificate: CertificateState) -> None:
    _, tls_server = server_blocks(render_tls_config(site, certificate))

    assert "listen 443 ssl default_server;" in tls_server
    assert "server_name relay.example.org nostr.example.org;" in tls_server
    assert "proxy_pass http://127.0.0.1:8080;" in location_block(tls_server, "/")
    assert "proxy_pass http://127.0.0.1:8081;" in location_block(tls_server, "= /_ssl/health")


def test_render_tls_config_references_exactly_the_certificate(site: NginxSite, certificate: CertificateState) -> None:
    config = render_tls_config(site, certificate)

    assert re.findall(r"ssl_certificate (\S+);", config) == [f"{CERT_FILE}"]
    assert re.findall(r"ssl_certificate_key (\S+);", config) == [f"{KEY_FILE}"]


def test_render_config_no_http2(site: NginxSite, certificate: CertificateState) -> None:
    # nginx 1.22 (Debian bookworm) does not know "http2 on;"; the configuration must load on it.
    assert "http2" not in render_tls_config(site, certificate)


def test_render_config_paths_inside_prefix(site: NginxSite) -> None:
    config = render_http_config(site)

    assert "pid /run/unicity/nginx/nginx.pid;" in config
    assert "proxy_temp_path /run/unicity/nginx/tmp/proxy;" in config
    assert "client_body_temp_path /run/unicity/nginx/tmp/client_body;" in config
    assert "daemon off;" in config


def test_render_config_user_directive(site: NginxSite) -> None:
    with_user = NginxSite(**{**site.__dict__, "user": "www-data"})

    assert re.search(r"^user www-data;$", render_http_config(with_user), flags=re.MULTILINE)
    assert not re.search(r"^user ", render_http_config(site), flags=re.MULTILINE)


def test_render_config_listen_address(site: NginxSite, certificate: CertificateState) -> None:
    loopback = NginxSite(**{**site.__dict__, "listen_address": "127.0.0.1", "http_port": 18080, "https_port": 18443})

    config = render_tls_config(loopback, certificate)

    assert "listen 127.0.0.1:18080 default_server;" in config
    assert "listen 127.0.0.1:18443 ssl default_server;" in config


def test_render_http_config_without_domain_catches_all() -> None:
    config = render_http_config(site_from_config(load_config({}), upstream_port=8080))

    assert "server_name _;" in config


def test_render_config_balanced_braces(site: NginxSite, certificate: CertificateState) -> None:
    for config in (render_http_config(site), render_tls_config(site, certificate)):
        assert config.count("{") == config.count("}")


def test_site_from_config_uses_environment_paths() -> None:
    config = load_config(
        {
            "SSL_DOMAIN": "relay.example.org",
            "UNICITY_RUN_DIR": "/tmp/run",
            "UNICITY_WEBROOT": "/tmp/www",
            "UNICITY_HTTP_PORT": "18080",
            "UNICITY_HTTPS_PORT": "18443",
            "UNICITY_STATUS_PORT": "18081",
        }
    )

    site = site_from_config(config, upstream_port=18082)

    assert site.prefix == Path("/tmp/run/nginx")
    assert site.conf_file == Path("/tmp/run/nginx/nginx.conf")
    assert (site.http_port, site.https_port, site.status_port, site.upstream_port) == (18080, 18443, 18081, 18082)
    assert site.server_names == ("relay.example.org",)


def test_nginx_command_foreground_with_prefix(site: NginxSite) -> None:
    command = nginx_command(Path("/usr/sbin/nginx"), site)

    assert command == ["/usr/sbin/nginx", "-p", "/run/unicity/nginx/", "-e", "stderr", "-c", "/run/unicity/nginx/nginx.conf"]


def test_render_config_service_locations_replace_default(site: NginxSite, certificate: CertificateState) -> None:
    custom = replace(site, service_locations="location = /only {\n    return 204;\n}\n")

    http_server, tls_server = server_blocks(render_tls_config(custom, certificate))
    [plain_server] = server_blocks(render_http_config(custom))

    assert "return 204;" in location_block(tls_server, "= /only")
    assert "return 204;" in location_block(plain_server, "= /only")
    assert "location = /only" not in http_server
    assert "proxy_pass http://127.0.0.1:8080;" not in tls_server


def test_render_http_config_without_upstream_port_returns_404(site: NginxSite) -> None:
    text = render_http_config(replace(site, upstream_port=None))

    assert "proxy_pass http://127.0.0.1:None" not in text
    assert "return 404;" in text
