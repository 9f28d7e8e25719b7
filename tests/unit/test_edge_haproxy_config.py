"""Unit tests of the edge's Backend model, validation and haproxy.cfg rendering."""

from __future__ import annotations

import json

import pytest

from unicity_infra.edge.errors import InvalidFieldError
from unicity_infra.edge.haproxy_config import (
    Backend,
    ExtraPort,
    dump_backends,
    haproxy_messages,
    parse_backend,
    parse_backends,
    parse_domain_name,
    parse_show_proc,
    render_haproxy_config,
)

RELAY = Backend(domain="relay.test", container="relay-1", http_port=80, https_port=443)
FAUCET = Backend(domain="faucet.test", container="faucet-1", http_port=8080, https_port=None)


def _payload(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "domain": "relay.test",
        "container": "relay-1",
        "http_port": 80,
        "https_port": 443,
        "extra_ports": None,
    }
    payload.update(overrides)
    return payload


def _section(config: str, header: str) -> str:
    """Return the lines of the section that starts with ``header`` up to the next blank line."""
    start = config.index("\n" + header + "\n") + 1
    end = config.find("\n\n", start)
    return config[start:] if end == -1 else config[start:end]


# --- parse_backend -------------------------------------------------------------------------------


def test_parse_backend_full_payload() -> None:
    backend = parse_backend(_payload(extra_ports=[{"listen": 50001, "target": 50001, "mode": "tcp"}]))

    assert backend == Backend(
        domain="relay.test",
        container="relay-1",
        http_port=80,
        https_port=443,
        extra_ports=(ExtraPort(listen=50001, target=50001, mode="tcp"),),
    )


def test_parse_backend_defaults_and_lower_case() -> None:
    backend = parse_backend({"domain": "Relay.Example.ORG", "container": "3f2a9c1b7d6e"})

    assert backend == Backend(domain="relay.example.org", container="3f2a9c1b7d6e", http_port=80, https_port=None)


def test_parse_backend_ignores_unknown_keys() -> None:
    backend = parse_backend(_payload(tunnel_peer_ip="10.0.0.2"))

    assert backend.domain == "relay.test"


def test_parse_backend_accepts_ipv4_container() -> None:
    assert parse_backend(_payload(container="127.0.0.1")).container == "127.0.0.1"


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        (["not", "an", "object"], "body", "JSON object"),
        (_payload(domain=None), "domain", "expected a host name"),
        (_payload(domain="relay_1.test"), "domain", "cannot contain '_'"),
        (_payload(domain="-relay.test"), "domain", "label '-relay'"),
        (_payload(domain="relay..test"), "domain", "label ''"),
        (_payload(domain="relay.test."), "domain", "label ''"),
        (_payload(domain="a" * 64 + ".test"), "domain", "1-63"),
        (_payload(domain=("a" * 60 + ".") * 5 + "test"), "domain", "at most 253"),
        (_payload(domain="127.0.0.1"), "domain", "not an IP address"),
        (_payload(domain="relay test"), "domain", "label 'relay test'"),
        (_payload(container=""), "container", "Docker container name"),
        (_payload(container="relay 1"), "container", "Docker container name"),
        (_payload(container="-relay"), "container", "Docker container name"),
        (_payload(container="::1"), "container", "IPv4"),
        (_payload(container=7), "container", "Docker container name"),
        (_payload(http_port=0), "http_port", "1 to 65535"),
        (_payload(http_port=65536), "http_port", "1 to 65535"),
        (_payload(http_port="80"), "http_port", "1 to 65535"),
        (_payload(http_port=True), "http_port", "1 to 65535"),
        (_payload(http_port=None), "http_port", "1 to 65535"),
        (_payload(https_port=0), "https_port", "1 to 65535"),
        (_payload(https_port=443.5), "https_port", "1 to 65535"),
        (_payload(extra_ports={"listen": 1}), "extra_ports", "list"),
        (_payload(extra_ports=[{"listen": 5000, "target": 5000}]), "extra_ports[0]", "exactly the keys"),
        (_payload(extra_ports=[{"listen": 5000, "target": 5000, "mode": "udp", "x": 1}]), "extra_ports[0]", "exactly"),
        (_payload(extra_ports=[{"listen": 0, "target": 5000, "mode": "tcp"}]), "extra_ports[0].listen", "1 to 65535"),
        (_payload(extra_ports=[{"listen": 5000, "target": 70000, "mode": "tcp"}]), "extra_ports[0].target", "65535"),
        (_payload(extra_ports=[{"listen": 5000, "target": 5000, "mode": "udp"}]), "extra_ports[0].mode", '"tcp"'),
        (
            _payload(
                extra_ports=[
                    {"listen": 5000, "target": 5000, "mode": "tcp"},
                    {"listen": 5000, "target": 5001, "mode": "http"},
                ]
            ),
            "extra_ports[1].listen",
            "appears twice",
        ),
    ],
)
def test_parse_backend_invalid_field(payload: object, field: str, fragment: str) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        parse_backend(payload)

    assert caught.value.field == field
    assert fragment in str(caught.value)


def test_parse_domain_name_lower_cases() -> None:
    assert parse_domain_name("Relay.Test") == "relay.test"


def test_parse_domain_name_single_label() -> None:
    assert parse_domain_name("haproxy") == "haproxy"


# --- state file text --------------------------------------------------------------------------


def test_dump_backends_round_trip() -> None:
    backends = [RELAY, FAUCET, Backend("x.test", "x", 80, 443, (ExtraPort(5000, 6000, "http"),))]

    assert parse_backends(dump_backends(backends)) == sorted(backends, key=lambda backend: backend.domain)


def test_dump_backends_sorted_and_versioned() -> None:
    document = json.loads(dump_backends([RELAY, FAUCET]))

    assert document["version"] == 1
    assert [entry["domain"] for entry in document["backends"]] == ["faucet.test", "relay.test"]


def test_parse_backends_names_bad_entry() -> None:
    text = json.dumps({"version": 1, "backends": [RELAY.to_json(), {"domain": "bad_name", "container": "c"}]})

    with pytest.raises(InvalidFieldError) as caught:
        parse_backends(text)

    assert caught.value.field == "backends[1].domain"


@pytest.mark.parametrize("text", ['{"version": 2, "backends": []}', '{"version": 1}', "[]", "not json"])
def test_parse_backends_rejects_other_documents(text: str) -> None:
    with pytest.raises(ValueError):
        parse_backends(text)


# --- render_haproxy_config ------------------------------------------------------------------------


def test_render_haproxy_config_http_routes_by_bare_host() -> None:
    config = render_haproxy_config([RELAY, FAUCET])
    frontend = _section(config, "frontend http-in")

    assert "    bind :80" in frontend
    assert "req.hdr(host),field(1,:),lower" in frontend
    assert "use_backend be-http-relay.test if { var(txn.route_host) -m str relay.test }" in frontend
    assert "use_backend be-http-faucet.test if { var(txn.route_host) -m str faucet.test }" in frontend
    assert "default_backend no-match-http" in frontend


def test_render_haproxy_config_unknown_host_gets_503() -> None:
    fallback = _section(render_haproxy_config([]), "backend no-match-http")

    assert "http-request return status 503" in fallback


def test_render_haproxy_config_tls_needs_https_port() -> None:
    config = render_haproxy_config([RELAY, FAUCET])
    frontend = _section(config, "frontend https-in")

    assert "use_backend be-tls-relay.test if { req.ssl_sni,lower -m str relay.test }" in frontend
    assert "faucet.test" not in frontend
    assert "backend be-tls-faucet.test" not in config


def test_render_haproxy_config_waits_for_complete_hello() -> None:
    frontend = _section(render_haproxy_config([RELAY]), "frontend https-in")

    assert "    mode tcp" in frontend
    assert "tcp-request inspect-delay 5s" in frontend
    assert "tcp-request content accept if { req.ssl_hello_type 1 } { req.ssl_sni -m found }" in frontend
    assert "tcp-request content reject if !{ req.ssl_hello_type 1 }" in frontend


def test_render_haproxy_config_servers_point_at_container() -> None:
    config = render_haproxy_config([RELAY])

    assert "    server app relay-1:80" in _section(config, "backend be-http-relay.test")
    assert "    server app relay-1:443" in _section(config, "backend be-tls-relay.test")


def test_render_haproxy_config_tunnel_timeout() -> None:
    defaults = _section(render_haproxy_config([]), "defaults")

    assert "timeout tunnel 1h" in defaults
    assert "timeout client 60s" in defaults


def test_render_haproxy_config_docker_resolvers() -> None:
    config = render_haproxy_config([RELAY], resolvers="docker")

    assert "nameserver dns1 127.0.0.11:53" in _section(config, "resolvers docker")
    assert "resolvers docker" in _section(config, "defaults")
    assert "init-addr last,libc,none" in _section(config, "defaults")


def test_render_haproxy_config_without_resolvers() -> None:
    config = render_haproxy_config([RELAY], resolvers=None)

    assert "resolvers" not in config
    assert "init-addr last,libc,none" in _section(config, "defaults")


def test_render_haproxy_config_bind_address_and_ports() -> None:
    config = render_haproxy_config([], bind_address="127.0.0.1", http_port=18080, https_port=18443)

    assert "    bind 127.0.0.1:18080" in _section(config, "frontend http-in")
    assert "    bind 127.0.0.1:18443" in _section(config, "frontend https-in")


def test_render_haproxy_config_master_worker_and_stats_socket() -> None:
    config = render_haproxy_config([], stats_socket="/run/edge/stats.sock")
    global_section = _section(config, "global")

    assert "    master-worker" in global_section
    assert "stats socket /run/edge/stats.sock mode 600 level admin expose-fd listeners" in global_section


def test_render_haproxy_config_extra_ports() -> None:
    backend = Backend(
        "fulcrum.test",
        "fulcrum-1",
        80,
        443,
        (ExtraPort(50001, 50001, "tcp"), ExtraPort(50003, 8080, "http")),
    )
    config = render_haproxy_config([backend])

    tcp_listener = _section(config, "listen extra-50001")
    http_listener = _section(config, "listen extra-50003")
    assert "    mode tcp" in tcp_listener
    assert "    bind :50001" in tcp_listener
    assert "    server app fulcrum-1:50001" in tcp_listener
    assert "    mode http" in http_listener
    assert "    server app fulcrum-1:8080" in http_listener


def test_render_haproxy_config_alias_shares_extra_port() -> None:
    port = ExtraPort(50001, 50001, "tcp")
    primary = Backend("relay.test", "relay-1", 80, 443, (port,))
    alias = Backend("nostr.test", "relay-1", 80, 443, (port,))

    config = render_haproxy_config([primary, alias])

    assert config.count("listen extra-50001") == 1


def test_render_haproxy_config_rejects_conflicting_listen() -> None:
    first = Backend("a.test", "a", 80, None, (ExtraPort(50001, 1, "tcp"),))
    second = Backend("b.test", "b", 80, None, (ExtraPort(50001, 1, "tcp"),))

    with pytest.raises(ValueError, match="50001"):
        render_haproxy_config([first, second])


def test_render_haproxy_config_rejects_reserved_listen() -> None:
    backend = Backend("a.test", "a", 80, None, (ExtraPort(18404, 1, "tcp"),))

    with pytest.raises(ValueError, match="18404"):
        render_haproxy_config([backend], api_port=18404)


# --- haproxy output parsing -------------------------------------------------------------------------

SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
13019           master          2 [failed: 1]   0d00h00m05s     2.6.12-1+deb12u4
# workers
13034           worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
13020           worker          1               0d00h00m05s     2.6.12-1+deb12u4
# programs

"""


def test_parse_show_proc_counters_and_workers() -> None:
    status = parse_show_proc(SHOW_PROC)

    assert status.reloads == 2
    assert status.failed_reloads == 1
    assert status.workers == (13034,)
    assert status.old_workers == (13020,)


def test_parse_show_proc_without_master_line() -> None:
    with pytest.raises(ValueError):
        parse_show_proc("Unknown command\n")


def test_haproxy_messages_keeps_alerts_without_pid() -> None:
    output = [
        "[NOTICE]   (20690) : haproxy version is 2.6.12-1+deb12u4",
        "[ALERT]    (20690) : config : parsing [bad.cfg:2] : unknown keyword 'foo' in 'global' section",
        "",
    ]

    assert haproxy_messages(output) == ["[ALERT] config : parsing [bad.cfg:2] : unknown keyword 'foo' in 'global' section"]


def test_haproxy_messages_alerts_only() -> None:
    output = [
        "[WARNING]  (12608) : Paused frontend f.",
        "[ALERT]    (12605) : Binding [cur.cfg:12] for frontend g: cannot bind socket (Address already in use)",
    ]

    assert haproxy_messages(output, alerts_only=True) == [
        "[ALERT] Binding [cur.cfg:12] for frontend g: cannot bind socket (Address already in use)"
    ]


def test_haproxy_messages_falls_back_to_all_lines() -> None:
    assert haproxy_messages(["something odd", "  "]) == ["something odd"]
