"""Unit tests of the aggregator proxy's plan and its nginx locations (container/services/aggregator_proxy.py)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.unit.test_container_nginx import location_block, server_blocks
from unicity_infra.container.config import load_config
from unicity_infra.container.errors import ConfigError
from unicity_infra.container.nginx import NginxSite, render_http_config, render_tls_config
from unicity_infra.container.services import load_plan
from unicity_infra.container.services.aggregator_proxy import (
    AggregatorProxySettings,
    parse_upstream,
    read_nameserver,
    read_proxy_settings,
    render_proxy_locations,
)
from unicity_infra.container.tls import CertificateState

UPSTREAM = "http://unicity-aggregator:3000"


def _settings(**environ: str) -> AggregatorProxySettings:
    return read_proxy_settings({"AGGREGATOR_UPSTREAM": UPSTREAM, **environ})


def _locations(**environ: str) -> str:
    return render_proxy_locations(_settings(**environ), nameserver="127.0.0.11")


def _tls_config(locations: str) -> str:
    site = NginxSite(
        prefix=Path("/run/unicity/nginx"), http_port=80, https_port=443, status_port=8081, upstream_port=8082,
        webroot=Path("/var/www/acme-challenge"), server_names=("aggregator.example.org",), service_locations=locations,
    )
    certificate = CertificateState(
        domain="aggregator.example.org", cert_file=Path("/etc/letsencrypt/live/a/fullchain.pem"),
        key_file=Path("/etc/letsencrypt/live/a/privkey.pem"), not_after=datetime(2027, 1, 1, tzinfo=timezone.utc),
        days_remaining=60,
    )
    return render_tls_config(site, certificate)


def test_render_proxy_locations_json_rpc_to_upstream() -> None:
    assert "proxy_pass $aggregator_upstream;" in location_block(_locations(), "= /")


def test_render_proxy_locations_upstream_resolved_per_request() -> None:
    locations = _locations()

    assert "resolver 127.0.0.11 valid=10s ipv6=off;" in locations
    assert f"set $aggregator_upstream {UPSTREAM};" in locations


def test_render_proxy_locations_health_passed_through() -> None:
    health = location_block(_locations(), "= /health")

    assert "proxy_pass $aggregator_upstream;" in health
    assert "return" not in health
    assert "proxy_intercept_errors" not in _locations()


def test_render_proxy_locations_docs_proxied() -> None:
    assert "proxy_pass $aggregator_upstream;" in location_block(_locations(), "/docs")


def test_render_proxy_locations_trust_base_from_loopback_server() -> None:
    trust_base = location_block(_locations(AGGREGATOR_TRUST_BASE_PORT="18082"), "= /.well-known/trust-base.json")

    assert "proxy_pass http://127.0.0.1:18082;" in trust_base


def test_render_proxy_locations_no_forced_upgrade() -> None:
    locations = _locations()

    assert 'proxy_set_header Connection "";' in locations
    assert "$connection_upgrade" not in locations
    assert "proxy_set_header Upgrade" not in locations


def test_render_proxy_locations_unknown_paths_404_json() -> None:
    fallback = location_block(_locations(), "/")

    assert "default_type application/json;" in fallback
    assert "return 404 '{\"error\": " in fallback


@pytest.mark.parametrize(("value", "exposed"), [("true", True), ("false", False)])
def test_render_proxy_locations_metrics_when_enabled(value: str, exposed: bool) -> None:
    locations = _locations(AGGREGATOR_EXPOSE_METRICS=value)

    assert ("location = /metrics {" in locations) is exposed


def test_render_proxy_locations_ip_upstream_needs_no_resolver() -> None:
    settings = read_proxy_settings({"AGGREGATOR_UPSTREAM": "http://127.0.0.1:3000"})
    locations = render_proxy_locations(settings, nameserver=None)

    assert "resolver" not in locations.replace("needs no resolver", "")
    assert "proxy_pass http://127.0.0.1:3000;" in location_block(locations, "= /")


def test_render_proxy_locations_host_name_without_nameserver() -> None:
    with pytest.raises(ConfigError, match="resolv.conf"):
        render_proxy_locations(_settings(), nameserver=None)


def test_render_tls_config_aggregator_on_tls_only() -> None:
    http_server, tls_server = server_blocks(_tls_config(_locations()))

    assert "location = /.well-known/trust-base.json {" in tls_server
    assert "location = /.well-known/trust-base.json {" not in http_server
    assert "return 301 https://$host$request_uri;" in location_block(http_server, "/")


def test_render_http_config_aggregator_locations_balanced_braces() -> None:
    site = NginxSite(
        prefix=Path("/run/unicity/nginx"), http_port=80, https_port=443, status_port=8081, upstream_port=8082,
        webroot=Path("/var/www/acme-challenge"), service_locations=_locations(AGGREGATOR_EXPOSE_METRICS="true"),
    )
    config = render_http_config(site)

    assert config.count("{") == config.count("}")
    assert "127.0.0.1:8082" not in location_block(config, "/")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://unicity-aggregator:3000", ("http://unicity-aggregator:3000", "unicity-aggregator", 3000)),
        ("http://unicity-aggregator:3000/", ("http://unicity-aggregator:3000", "unicity-aggregator", 3000)),
        ("http://Aggregator", ("http://aggregator:80", "aggregator", 80)),
        ("http://[::1]:3000", ("http://[::1]:3000", "::1", 3000)),
    ],
)
def test_parse_upstream_valid(value: str, expected: tuple[str, str, int]) -> None:
    assert parse_upstream(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "it is required"),
        ("https://aggregator:3000", "http:// URL"),
        ("aggregator:3000", "http:// URL"),
        ("http://aggregator:3000/rpc", "only scheme, host and port"),
        ("http://user@aggregator:3000", "only scheme, host and port"),
        ("http://aggregator:99999", "port"),
    ],
)
def test_parse_upstream_invalid(value: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_upstream(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nameserver 127.0.0.11\noptions ndots:0\n", "127.0.0.11"),
        ("# generated\nsearch example.org\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n", "10.0.0.2"),
        ("nameserver fe80::1%eth0\n", "[fe80::1]"),
        ("search example.org\n", None),
    ],
)
def test_read_nameserver(text: str, expected: str | None) -> None:
    assert read_nameserver(text) == expected


def test_read_proxy_settings_defaults() -> None:
    settings = _settings()

    assert settings.trust_base_file == Path("/etc/aggregator-config/trust-base.json")
    assert settings.trust_base_port == 8082
    assert settings.expose_metrics is False


def test_load_plan_aggregator_proxy_runs_trust_base_server() -> None:
    environ = {"AGGREGATOR_UPSTREAM": "http://127.0.0.1:3000"}
    plan = load_plan("aggregator-proxy", load_config(environ), environ)

    assert plan.command[1:] == (
        "-m", "unicity_infra.container.trust_base_server",
        "--file", "/etc/aggregator-config/trust-base.json", "--port", "8082",
    )
    assert plan.upstream_port == 8082
    assert (plan.uid, plan.gid) == (1001, 1001)
    assert plan.nginx_locations is not None


def test_load_plan_aggregator_proxy_without_upstream() -> None:
    with pytest.raises(ConfigError, match="AGGREGATOR_UPSTREAM"):
        load_plan("aggregator-proxy", load_config({}), {})
