"""The faucet's settings and specs: its options, environment, secrets, ports, volumes and endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicity_infra.errors import SettingsError
from unicity_infra.settings import build_faucet_settings, build_run_settings, parse_secret_file
from unicity_infra.stack.faucet import (
    aggregator_url_in_network,
    discovery_url,
    faucet_endpoint,
    faucet_plan,
    relay_url_in_network,
    trust_base_url_of,
)
from unicity_infra.stack.spec import LABEL_ENDPOINT, LABEL_ROLE, LABEL_SERVICE, PortBinding, SecretFile

SECRET_VALUE = "unit-secret-4b1d"


def _secret(tmp_path: Path, name: str = "api-key", content: str = SECRET_VALUE) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def _direct(**options: object):  # noqa: ANN202
    return build_run_settings("faucet", no_haproxy=True, publish="127.0.0.1:8090", **options)  # type: ignore[arg-type]


def test_faucet_plan_sets_upstream_variable_names() -> None:
    settings = _direct(
        nostr_relays="ws://relay-a:80, wss://relay.example.org",
        aggregator_url="https://aggregator.example.org/",
        trust_base_url="https://aggregator.example.org/.well-known/trust-base.json",
        network="Testnet",
        nametag="@faucet-dev",
    )

    env = faucet_plan(settings, stack="default").containers[0].env

    assert env["UNICITY_NOSTR_RELAYS"] == "ws://relay-a:80,wss://relay.example.org"
    assert env["SPHERE_NOSTR_RELAYS"] == env["UNICITY_NOSTR_RELAYS"]
    assert env["SPHERE_AGGREGATOR_URL"] == "https://aggregator.example.org"
    assert env["SPHERE_TRUSTBASE_URL"] == "https://aggregator.example.org/.well-known/trust-base.json"
    assert env["SPHERE_AGGREGATOR_SKIP_VERIFICATION"] == "false"
    assert env["UNICITY_NETWORK"] == "testnet"
    assert env["SPHERE_NAMETAG"] == "faucet-dev"
    assert env["UNICITY_DATA_DIR"] == "/data/wallet"


def test_faucet_plan_without_trust_base() -> None:
    env = faucet_plan(_direct(aggregator_url="http://aggregator:3000"), stack="default").containers[0].env

    assert "SPHERE_AGGREGATOR_SKIP_VERIFICATION" not in env
    assert "SPHERE_TRUSTBASE_URL" not in env
    assert "UNICITY_NOSTR_RELAYS" not in env


def test_faucet_plan_mounts_secrets_and_names_them_only(tmp_path: Path) -> None:
    secret = _secret(tmp_path)

    container = faucet_plan(_direct(secret_files=(f"SPHERE_API_KEY={secret}",)), stack="default").containers[0]

    assert SecretFile("SPHERE_API_KEY", secret.resolve()) in container.secret_files
    assert container.env["FAUCET_SECRET_FILES"] == "SPHERE_API_KEY"
    assert SECRET_VALUE not in repr(container)


def test_faucet_plan_direct_plain_publishes_80() -> None:
    plan = faucet_plan(_direct(), stack="ci")
    container = plan.containers[0]

    assert container.ports == (PortBinding(80, 8090, "127.0.0.1"),)
    assert container.networks == ("unicity-infra-ci",)
    assert container.labels[LABEL_SERVICE] == "faucet"
    assert container.labels[LABEL_ENDPOINT] == "http://127.0.0.1:8090"


def test_faucet_plan_identity_volume_is_wiped_data() -> None:
    plan = faucet_plan(_direct(container_name="unicity-ci-faucet"), stack="ci")

    mounts = {mount.target: mount.volume for mount in plan.containers[0].volumes}
    roles = {volume.name: volume.labels[LABEL_ROLE] for volume in plan.volumes}
    assert mounts == {"/data": "unicity-ci-faucet-data", "/etc/letsencrypt": "unicity-ci-faucet-letsencrypt"}
    assert roles == {"unicity-ci-faucet-data": "data", "unicity-ci-faucet-letsencrypt": "certificates"}


@pytest.mark.parametrize(
    ("options", "endpoint"),
    [
        ({"no_haproxy": True, "publish": "127.0.0.1:8090"}, "http://127.0.0.1:8090"),
        ({"no_haproxy": True, "publish": "127.0.0.1:8443", "domain": "faucet.test", "ssl_test_mode": True},
         "https://faucet.test:8443"),
        ({"no_haproxy": True, "publish": "127.0.0.1:443", "domain": "faucet.test", "ssl_test_mode": True},
         "https://faucet.test"),
        ({"domain": "faucet.example.org"}, "https://faucet.example.org"),
        ({"no_haproxy": True}, "http://unicity-faucet:80"),
    ],
)
def test_faucet_endpoint(options: dict[str, object], endpoint: str) -> None:
    assert faucet_endpoint(build_run_settings("faucet", **options)) == endpoint  # type: ignore[arg-type]


def test_discovery_url_appends_well_known_path() -> None:
    assert discovery_url("http://127.0.0.1:8090/") == "http://127.0.0.1:8090/.well-known/faucet.json"


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("ws://127.0.0.1:7777", "ws://unicity-ci-relay:80"),
        ("ws://unicity-ci-relay:80", "ws://unicity-ci-relay:80"),
        ("wss://relay.example.org", "wss://relay.example.org"),
        ("wss://relay.test:7443", "wss://relay.test"),
        ("", "ws://unicity-ci-relay:80"),
    ],
)
def test_relay_url_in_network(endpoint: str, url: str) -> None:
    assert relay_url_in_network("unicity-ci-relay", endpoint) == url


def test_trust_base_url_of_aggregator() -> None:
    assert trust_base_url_of("http://aggregator:3000/") == "http://aggregator:3000/.well-known/trust-base.json"


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("nostr_relays", "ws://relay:80"),
        ("aggregator_url", "http://aggregator:3000"),
        ("trust_base_url", "http://aggregator:3000/.well-known/trust-base.json"),
        ("network", "testnet"),
        ("nametag", "faucet"),
        ("secret_files", ("A=/etc/hostname",)),
    ],
)
def test_build_run_settings_rejects_faucet_options_for_relay(option: str, value: object) -> None:
    with pytest.raises(SettingsError, match="applies only to 'run faucet'"):
        build_run_settings("relay", **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nostr_relays": "http://relay:80"}, "ws:// or wss://"),
        ({"nostr_relays": "ws://relay:80,relay2"}, "'relay2'"),
        ({"aggregator_url": "ftp://aggregator"}, "http:// or https://"),
        ({"trust_base_url": "aggregator/trust-base.json"}, "http:// or https://"),
        ({"network": "Test Net"}, "network name"),
        ({"nametag": "faucet dev"}, "letters, digits"),
        ({"nametag": "@"}, "letters, digits"),
    ],
)
def test_build_faucet_settings_rejects_invalid(options: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        build_faucet_settings(**options)  # type: ignore[arg-type]


def test_build_faucet_settings_defaults() -> None:
    faucet = build_faucet_settings()

    assert faucet.network == "testnet"
    assert faucet.nostr_relays == ()
    assert faucet.secret_files == ()


def test_parse_secret_file_returns_name_and_path(tmp_path: Path) -> None:
    secret = _secret(tmp_path)

    assert parse_secret_file(f"SPHERE_API_KEY={secret}") == ("SPHERE_API_KEY", secret.resolve())


def test_parse_secret_file_missing_names_path(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_secret_file(f"SPHERE_API_KEY={tmp_path / 'absent'}")

    assert str(tmp_path / "absent") in str(raised.value)
    assert "no such file" in str(raised.value)


def test_parse_secret_file_empty_names_path(tmp_path: Path) -> None:
    secret = _secret(tmp_path, content="\n")

    with pytest.raises(SettingsError) as raised:
        parse_secret_file(f"SPHERE_API_KEY={secret}")

    assert str(secret) in str(raised.value)
    assert "empty" in str(raised.value)


def test_parse_secret_file_unreadable_names_path_not_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = _secret(tmp_path)
    # Root passes any permission check, so the access check itself is made to fail.
    monkeypatch.setattr("unicity_infra.settings.os.access", lambda path, mode: False)

    with pytest.raises(SettingsError) as raised:
        parse_secret_file(f"SPHERE_API_KEY={secret}")

    assert "not readable" in str(raised.value)
    assert str(secret) in str(raised.value)
    assert SECRET_VALUE not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("SPHERE_API_KEY", "NAME=PATH"),
        ("SPHERE_API_KEY=", "NAME=PATH"),
        ("1KEY=/etc/hostname", "not an environment variable name"),
        ("API-KEY=/etc/hostname", "not an environment variable name"),
        ("haproxy_api_key=/etc/hostname", "used by the tool itself"),
        ("ACME_CA_BUNDLE=/etc/hostname", "used by the tool itself"),
    ],
)
def test_parse_secret_file_rejects_bad_names(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_secret_file(value)


def test_build_faucet_settings_rejects_duplicate_secret(tmp_path: Path) -> None:
    secret = _secret(tmp_path)

    with pytest.raises(SettingsError, match="only once"):
        build_faucet_settings(secret_files=(f"KEY={secret}", f"KEY={secret}"))


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://127.0.0.1:3000", "http://unicity-ci-aggregator-proxy:80"),
        ("https://aggregator.example.org", "https://aggregator.example.org"),
        ("https://aggregator.test:8443", "https://aggregator.test"),
    ],
)
def test_aggregator_url_in_network(endpoint: str, url: str) -> None:
    assert aggregator_url_in_network("unicity-ci-aggregator-proxy", endpoint) == url


def test_new_genesis_changes_faucet_spec() -> None:
    from dataclasses import replace

    from unicity_infra.settings import FaucetSettings
    from unicity_infra.stack.faucet import LABEL_FAUCET_TRUST_BASE
    from unicity_infra.stack.plan import spec_hash

    def container(sha256: str | None):  # noqa: ANN202
        settings = replace(_direct(), faucet=FaucetSettings(trust_base_url="http://proxy/.well-known/trust-base.json",
                                                            trust_base_sha256=sha256))
        return faucet_plan(settings, stack="s").containers[0]

    old_chain, new_chain, unpinned = container("aa" * 32), container("bb" * 32), container(None)

    assert old_chain.labels[LABEL_FAUCET_TRUST_BASE] == "aa" * 32
    assert LABEL_FAUCET_TRUST_BASE not in unpinned.labels
    assert spec_hash(old_chain) != spec_hash(new_chain)
