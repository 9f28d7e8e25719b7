"""Unit tests of the supervisor's environment parsing (container/config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicity_infra.container.config import (
    BackoffPolicy,
    ExtraPort,
    check_port_conflicts,
    load_config,
    parse_domain_aliases,
    parse_extra_ports,
)
from unicity_infra.container.errors import EXIT_CONFIG, ConfigError


def test_load_config_defaults() -> None:
    config = load_config({})

    assert config.domain is None
    assert config.tls_requested is False
    assert config.ssl_required is True
    assert config.cert_renew_days == 30
    assert config.https_port == 443
    assert config.http_listen_port == 80
    assert config.https_listen_port == 443
    assert config.status_port == 8081
    assert config.stop_grace_s == 8.0
    assert config.cert_root == Path("/etc/letsencrypt")
    assert config.webroot == Path("/var/www/acme-challenge")
    assert config.run_dir == Path("/run/unicity")
    assert config.backoff == BackoffPolicy(initial_s=1.0, max_s=60.0, reset_after_s=60.0)


def test_load_config_domain_and_aliases() -> None:
    config = load_config({"SSL_DOMAIN": "Relay.Example.org", "SSL_DOMAIN_ALIASES": "nostr.example.org, relay.example.org"})

    assert config.domain == "relay.example.org"
    assert config.domain_aliases == ("nostr.example.org",)
    assert config.server_names == ("relay.example.org", "nostr.example.org")


def test_load_config_https_listen_port_default() -> None:
    config = load_config({"SSL_HTTPS_PORT": "8443"})

    assert config.https_port == 8443
    assert config.https_listen_port == 8443


def test_load_config_path_overrides() -> None:
    config = load_config(
        {
            "SSL_CERT_ROOT": "/tmp/le",
            "UNICITY_WEBROOT": "/tmp/www",
            "UNICITY_RUN_DIR": "/tmp/run",
            "UNICITY_NGINX_BIN": "/opt/nginx",
            "UNICITY_HTTP_PORT": "18080",
            "UNICITY_HTTPS_PORT": "18443",
            "UNICITY_STATUS_PORT": "18081",
        }
    )

    assert config.cert_root == Path("/tmp/le")
    assert config.webroot == Path("/tmp/www")
    assert config.run_dir == Path("/tmp/run")
    assert config.nginx_binary == Path("/opt/nginx")
    assert (config.http_listen_port, config.https_listen_port, config.status_port) == (18080, 18443, 18081)


def test_load_config_empty_values_mean_default() -> None:
    config = load_config({"SSL_DOMAIN": "", "SSL_HTTPS_PORT": " ", "SSL_REQUIRED": ""})

    assert config.domain is None
    assert config.https_port == 443
    assert config.ssl_required is True


@pytest.mark.parametrize(
    ("name", "value", "expected_words"),
    [
        ("SSL_HTTPS_PORT", "https", "port number from 1 to 65535"),
        ("SSL_HTTPS_PORT", "0", "port number from 1 to 65535"),
        ("SSL_HTTPS_PORT", "70000", "port number from 1 to 65535"),
        ("UNICITY_HTTP_PORT", "-1", "port number from 1 to 65535"),
        ("SSL_REQUIRED", "maybe", "expected true or false"),
        ("SSL_TEST_MODE", "2", "expected true or false"),
        ("SSL_CERT_RENEW_DAYS", "thirty", "whole number from 0 to 3650"),
        ("SSL_CERT_RENEW_DAYS", "-1", "whole number from 0 to 3650"),
        ("UNICITY_STOP_GRACE_S", "0", "positive number of seconds"),
        ("UNICITY_STOP_GRACE_S", "soon", "positive number of seconds"),
        ("UNICITY_BACKOFF_INITIAL_S", "nan", "positive number of seconds"),
        ("SSL_DOMAIN", "relay_1.example.org", "host name of letters"),
        ("SSL_DOMAIN", "-relay.example.org", "host name of letters"),
        ("SSL_CERT_ROOT", "letsencrypt", "absolute path"),
        ("UNICITY_LISTEN_ADDRESS", "localhost", "IPv4 address"),
        ("EXTRA_PORTS", "{", "JSON array"),
    ],
)
def test_load_config_invalid_value(name: str, value: str, expected_words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({name: value})

    assert caught.value.name == name
    assert repr(value) in str(caught.value)
    assert expected_words in str(caught.value)
    assert caught.value.exit_code == EXIT_CONFIG


def test_load_config_aliases_without_domain() -> None:
    with pytest.raises(ConfigError, match="set SSL_DOMAIN as well"):
        load_config({"SSL_DOMAIN_ALIASES": "nostr.example.org"})


def test_load_config_port_clash() -> None:
    with pytest.raises(ConfigError, match="already used by UNICITY_HTTP_PORT"):
        load_config({"UNICITY_HTTP_PORT": "8081"})


def test_check_port_conflicts_service_port() -> None:
    config = load_config({})

    with pytest.raises(ConfigError, match="service port"):
        check_port_conflicts(config, upstream_port=8081)


def test_check_port_conflicts_https_only_with_domain() -> None:
    # Without a domain nginx opens no HTTPS port, so it cannot clash.
    config = load_config({"UNICITY_HTTPS_PORT": "8081"})

    check_port_conflicts(config, upstream_port=8080)


def test_parse_domain_aliases_deduplicates() -> None:
    aliases = parse_domain_aliases(" b.example.org,c.example.org , b.example.org,,a.example.org", primary="a.example.org")

    assert aliases == ("b.example.org", "c.example.org")


def test_parse_extra_ports_valid() -> None:
    ports = parse_extra_ports('[{"listen": 50001, "target": 50002, "mode": "tcp"}, {"listen": 50003, "target": 50003, "mode": "http"}]')

    assert ports == (ExtraPort(50001, 50002, "tcp"), ExtraPort(50003, 50003, "http"))


@pytest.mark.parametrize(
    "value",
    [
        '{"listen": 1, "target": 1, "mode": "tcp"}',
        '[{"listen": 1, "target": 1}]',
        '[{"listen": 0, "target": 1, "mode": "tcp"}]',
        '[{"listen": true, "target": 1, "mode": "tcp"}]',
        '[{"listen": 1, "target": "1", "mode": "tcp"}]',
        '[{"listen": 1, "target": 1, "mode": "udp"}]',
    ],
)
def test_parse_extra_ports_invalid(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_extra_ports(value)

    assert caught.value.name == "EXTRA_PORTS"


def test_backoff_policy_schedule() -> None:
    policy = BackoffPolicy()

    delays = [policy.delay_s(failures) for failures in range(1, 10)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_backoff_policy_custom_constants() -> None:
    policy = BackoffPolicy(initial_s=0.1, max_s=0.5, reset_after_s=1.0)

    assert [policy.delay_s(failures) for failures in range(1, 5)] == [0.1, 0.2, 0.4, 0.5]


def test_backoff_policy_long_crash_loop_stays_capped() -> None:
    assert BackoffPolicy().delay_s(10_000) == 60.0


def test_load_config_edge_and_renewal_defaults() -> None:
    config = load_config({})

    assert config.heartbeat_s == 30.0
    assert config.reachability_check == "auto"
    assert config.domain_http_port == 80
    assert config.static_hosts == ()
    assert config.container_name is None
    assert config.renew_first_check_s == 3600.0
    assert config.renew_interval_s == 43200.0


def test_load_config_edge_and_renewal_overrides() -> None:
    config = load_config(
        {
            "HAPROXY_HEARTBEAT_S": "1.5",
            "SSL_REACHABILITY_CHECK": "False",
            "UNICITY_DOMAIN_HTTP_PORT": "18080",
            "UNICITY_HOSTS": "relay.example.org=127.0.0.1, nostr.example.org=127.0.0.2",
            "UNICITY_CONTAINER_NAME": "unicity-relay",
            "SSL_RENEW_FIRST_CHECK_S": "5",
            "SSL_RENEW_INTERVAL_S": "60",
        }
    )

    assert config.heartbeat_s == 1.5
    assert config.reachability_check == "false"
    assert config.domain_http_port == 18080
    assert config.static_address("nostr.example.org") == "127.0.0.2"
    assert config.static_address("other.example.org") is None
    assert config.container_name == "unicity-relay"
    assert config.renew_first_check_s == 5.0
    assert config.renew_interval_s == 60.0


@pytest.mark.parametrize(
    ("name", "value", "expected_text"),
    [
        ("UNICITY_HOSTS", "relay.example.org", "expected name=IPv4 pairs"),
        ("UNICITY_HOSTS", "relay.example.org=localhost", "'localhost' is not an IPv4 address"),
        ("UNICITY_HOSTS", "relay_1.example.org=127.0.0.1", "expected a host name"),
        ("SSL_REACHABILITY_CHECK", "sometimes", "expected auto, true or false"),
        ("HAPROXY_HEARTBEAT_S", "0", "expected a positive number of seconds"),
        ("SSL_RENEW_INTERVAL_S", "soon", "expected a positive number of seconds"),
        ("UNICITY_CONTAINER_NAME", "bad name", "expected a host name"),
    ],
)
def test_load_config_edge_settings_invalid(name: str, value: str, expected_text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({name: value})

    assert caught.value.name == name
    assert expected_text in str(caught.value)
