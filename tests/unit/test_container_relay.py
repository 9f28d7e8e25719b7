"""Unit tests of the relay service plan (container/services/relay.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from unicity_infra.container.config import load_config
from unicity_infra.container.errors import ConfigError
from unicity_infra.container.services import load_plan
from unicity_infra.container.services.relay import RELAY_GID, RELAY_UID, read_relay_settings, render_relay_config

FORBIDDEN_KEYS = {"event_kind_allowlist", "pubkey_whitelist"}


def all_keys(table: dict[str, object]) -> set[str]:
    keys = set()
    for key, value in table.items():
        keys.add(key)
        if isinstance(value, dict):
            keys |= all_keys(value)
    return keys


def render(environ: dict[str, str]) -> dict[str, object]:
    config = load_config(environ)
    return tomllib.loads(render_relay_config(read_relay_settings(config, environ)))


def test_render_relay_config_defaults() -> None:
    document = render({})

    assert document["info"] == {
        "relay_url": "ws://localhost",
        "name": "unicity-infra relay",
        "description": "Nostr relay of the Unicity development stack",
    }
    assert document["database"]["data_directory"] == "/var/lib/relay"
    assert document["network"]["address"] == "127.0.0.1"
    assert document["network"]["port"] == 8080


def test_render_relay_config_ping_interval() -> None:
    assert render({})["network"]["ping_interval_seconds"] == 30


def test_render_relay_config_url_from_domain() -> None:
    assert render({"SSL_DOMAIN": "relay.example.org"})["info"]["relay_url"] == "wss://relay.example.org"


def test_render_relay_config_environment_values() -> None:
    document = render(
        {
            "RELAY_NAME": 'dev "relay"',
            "RELAY_DESCRIPTION": "line one\nline two \\ backslash",
            "RELAY_URL": "wss://nostr.example.org",
            "RELAY_DATA_DIR": "/data/relay",
            "RELAY_PORT": "7777",
        }
    )

    assert document["info"]["name"] == 'dev "relay"'
    assert document["info"]["description"] == "line one\nline two \\ backslash"
    assert document["info"]["relay_url"] == "wss://nostr.example.org"
    assert document["database"]["data_directory"] == "/data/relay"
    assert document["network"]["port"] == 7777


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SSL_DOMAIN": "relay.example.org"},
        {"RELAY_NAME": "event_kind_allowlist = []", "RELAY_DESCRIPTION": '"]\npubkey_whitelist = ["x'},
        {"RELAY_NAME": "[authorization]\npubkey_whitelist = []"},
    ],
)
def test_render_relay_config_never_allow_list(environ: dict[str, str]) -> None:
    document = render(environ)

    assert all_keys(document) & FORBIDDEN_KEYS == set()
    assert "authorization" not in document


def test_render_relay_config_limits_present() -> None:
    limits = render({})["limits"]

    assert limits["max_event_bytes"] == 1048576
    assert limits["max_ws_message_bytes"] >= limits["max_event_bytes"]


@pytest.mark.parametrize(("name", "value"), [("RELAY_PORT", "relay"), ("RELAY_DATA_DIR", "relative/dir")])
def test_read_relay_settings_invalid(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plan("relay", load_config({}), {name: value})

    assert caught.value.name == name


def test_build_plan_command_and_identity() -> None:
    plan = load_plan("relay", load_config({}), {})

    assert plan.command == (
        "/usr/local/bin/nostr-rs-relay", "--config", "/run/unicity/relay/config.toml", "--db", "/var/lib/relay",
    )
    assert (plan.uid, plan.gid) == (RELAY_UID, RELAY_GID) == (1001, 1001)
    assert plan.upstream_port == 8080
    assert plan.data_dirs == (Path("/var/lib/relay"),)
    assert plan.env["RUST_LOG"] == "info,nostr_rs_relay=info"
    assert [file.path for file in plan.config_files] == [Path("/run/unicity/relay/config.toml")]


def test_build_plan_overrides() -> None:
    environ = {"RELAY_BINARY": "/opt/relay", "UNICITY_SERVICE_UID": "0", "UNICITY_SERVICE_GID": "0", "RUST_LOG": "debug"}

    plan = load_plan("relay", load_config(environ), environ)

    assert plan.command[0] == "/opt/relay"
    assert (plan.uid, plan.gid) == (0, 0)
    assert plan.env["RUST_LOG"] == "debug"


def test_load_plan_unknown_service() -> None:
    with pytest.raises(ConfigError, match="expected one of: .*relay"):
        load_plan("postgres", load_config({}), {})


def test_load_plan_port_clash_with_status_server() -> None:
    with pytest.raises(ConfigError, match="service port"):
        load_plan("relay", load_config({}), {"RELAY_PORT": "8081"})
