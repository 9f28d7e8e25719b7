"""Settings validation: every bad input stops with exit 2, names the option and value, creates nothing."""

from __future__ import annotations

import pytest

from unicity_infra import cli as cli_module
from unicity_infra.errors import SettingsError
from unicity_infra.settings import (
    AGGREGATOR_IMAGE_KEYS,
    UPSTREAM_IMAGES,
    ExtraPort,
    PublishAddress,
    build_aggregator_settings,
    build_run_settings,
    parse_domain,
    parse_domain_list,
    parse_extra_ports,
    parse_image_overrides,
    parse_publish,
    wrapper_image,
)

BAD_RUN_INPUTS = [
    (["--domain", "relay_1.example.org"], "--domain", "cannot contain '_'"),
    (["--domain", "localhost"], "--domain", "fully qualified"),
    (["--domain", "-relay.example.org"], "--domain", "not a valid host-name label"),
    (["--domain", "relay..example.org"], "--domain", "not a valid host-name label"),
    (["--domain", "a" * 64 + ".example.org"], "--domain", "1-63"),
    (["--domain", "10.0.0.1"], "--domain", "not an IP address"),
    (["--domain", "relay.example.org", "--ssl-email", "ops"], "--ssl-email", "e-mail address"),
    (["--domain", "relay.example.org", "--ssl-email", "ops@localhost"], "--ssl-email", "e-mail address"),
    (["--ssl-https-port", "0"], "--ssl-https-port", "1 to 65535"),
    (["--ssl-https-port", "65536"], "--ssl-https-port", "1 to 65535"),
    (["--ssl-https-port", "https"], "--ssl-https-port", "1 to 65535"),
    (["--extra-ports", "[{"], "--extra-ports", "not valid JSON"),
    (["--extra-ports", '{"listen": 1}'], "--extra-ports", "JSON list"),
    (["--extra-ports", '[{"listen": 5000, "target": 5000}]'], "--extra-ports", "exactly the keys"),
    (["--extra-ports", '[{"listen": 5000, "target": 5000, "mode": "udp"}]'], "--extra-ports", 'mode must be "http" or "tcp"'),
    (["--extra-ports", '[{"listen": 70000, "target": 5000, "mode": "tcp"}]'], "--extra-ports", "listen must be an integer"),
    (["--extra-ports", '[{"listen": "5000", "target": 5000, "mode": "tcp"}]'], "--extra-ports", "listen must be an integer"),
    (["--extra-ports", '[{"listen": 443, "target": 5000, "mode": "tcp"}]'], "--extra-ports", "used by the edge"),
    (["--extra-ports", '[{"listen": 5000, "target": 1, "mode": "tcp"}, {"listen": 5000, "target": 2, "mode": "tcp"}]'],
     "--extra-ports", "only once"),
    (["--container-name", "my relay"], "--container-name", "container name"),
    (["--container-name", "-relay"], "--container-name", "container name"),
    (["--image", "Unicity/Relay:1"], "--image", "image reference"),
    (["--image", "relay:bad tag"], "--image", "image reference"),
    (["--haproxy-net", "net/work"], "--haproxy-net", "network name"),
    (["--haproxy-host", "edge_1"], "--haproxy-host", "host name"),
    (["--publish", "localhost:7777"], "--publish", "IP address"),
    (["--publish", "127.0.0.1:99999"], "--publish", "1 to 65535"),
    (["--ssl-required", "maybe"], "--ssl-required", "true or false"),
    (["--ssl-test-mode"], "--ssl-test-mode", "needs --domain"),
    (["--ssl-email", "ops@example.org"], "--ssl-email", "needs --domain"),
    (["--no-ssl", "--ssl-staging"], "--no-ssl", "cannot be combined with --ssl-staging"),
    (["--no-haproxy", "--haproxy-host", "edge"], "--no-haproxy", "cannot be combined"),
    (["--haproxy-api-key-file", "/nonexistent/key"], "--haproxy-api-key-file", "no such file"),
    (["--acme-ca-bundle", "/"], "--acme-ca-bundle", "not a regular file"),
    (["--domain", "r.example.org", "--acme-server", "http://pebble:14000/dir"], "--acme-server", "https://"),
    (["--domain", "r.example.org", "--ssl-test-mode", "--acme-server", "https://ca.example/dir"],
     "--acme-server", "self-signed"),
]


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def engine_must_not_be_used(self):  # noqa: ANN001, ANN202
        raise AssertionError("the Docker Engine was contacted although the settings were invalid")

    monkeypatch.setattr(cli_module.Context, "engine", engine_must_not_be_used)


@pytest.mark.parametrize(("arguments", "option", "fragment"), BAD_RUN_INPUTS)
def test_run_bad_input_exits_2_naming_option(
    no_engine: None, capsys: pytest.CaptureFixture[str], arguments: list[str], option: str, fragment: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["run", "relay", *arguments])

    error = capsys.readouterr().err
    assert exit_info.value.code == 2, error
    assert error.startswith("error: invalid ")
    assert f" {option}" in error
    assert fragment in error
    assert len(error.strip().splitlines()) == 1


def test_settings_error_keeps_facts() -> None:
    with pytest.raises(SettingsError) as error_info:
        build_run_settings("relay", ssl_https_port="99999")

    assert error_info.value.option == "--ssl-https-port"
    assert error_info.value.value == "99999"


def test_bad_input_table_has_at_least_20_cases() -> None:
    assert len(BAD_RUN_INPUTS) >= 20


def test_main_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["run", "relay", "--domain", "relay_1.example.org"])

    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == "error: invalid value for --domain: 'relay_1.example.org'; host names cannot contain '_'; use a hyphen"


def test_parse_domain_lowercases_and_strips_dot() -> None:
    assert parse_domain("Relay.Example.ORG.") == "relay.example.org"


def test_parse_domain_list_drops_duplicates_and_blanks() -> None:
    assert parse_domain_list("a.example.org, ,A.example.org,b.example.org") == ("a.example.org", "b.example.org")


def test_parse_extra_ports_valid() -> None:
    ports = parse_extra_ports('[{"listen": 50001, "target": 50002, "mode": "tcp"}, {"listen": 50003, "target": 3, "mode": "http"}]')
    assert ports == (ExtraPort(50001, 50002, "tcp"), ExtraPort(50003, 3, "http"))


def test_parse_publish_defaults_to_loopback() -> None:
    assert parse_publish("7443") == PublishAddress("127.0.0.1", 7443)


def test_parse_publish_ipv6() -> None:
    assert parse_publish("[::1]:7443") == PublishAddress("::1", 7443)


def test_build_run_settings_defaults() -> None:
    settings = build_run_settings("relay")

    assert settings.image == "unicity-infra/relay:0.1.0"
    assert settings.container_name == "unicity-relay"
    assert settings.haproxy_host == "haproxy"
    assert settings.haproxy_net == "haproxy-net"
    assert not settings.tls_enabled
    assert settings.front_port == 80


def test_build_run_settings_no_ssl_clears_domain() -> None:
    settings = build_run_settings("relay", domain="relay.example.org", no_ssl=True)

    assert settings.domain is None


def test_build_run_settings_drops_alias_equal_to_domain() -> None:
    settings = build_run_settings("relay", domain="relay.example.org",
                                  domain_aliases="relay.example.org,nostr.example.org")

    assert settings.domain_aliases == ("nostr.example.org",)


def test_build_run_settings_tls_front_port() -> None:
    settings = build_run_settings("relay", domain="relay.example.org", ssl_https_port="8443")

    assert settings.front_port == 8443


# --- run aggregator -------------------------------------------------------------

BAD_AGGREGATOR_INPUTS = [
    (["aggregator", "--network-id", "0"], "--network-id", "1 to 65535"),
    (["aggregator", "--network-id", "three"], "--network-id", "1 to 65535"),
    (["aggregator", "--image-override", "mongo"], "--image-override", "KEY=IMAGE"),
    (["aggregator", "--image-override", "redis=redis:7"], "--image-override", "unknown key 'redis'"),
    (["aggregator", "--image-override", "mongo=Mongo:7"], "--image-override", "image reference"),
    (["aggregator", "--image-override", "mongo=mongo:7", "--image-override", "mongo=mongo:8"],
     "--image-override", "given twice"),
    (["aggregator", "--image", "x/proxy:1", "--image-override", "aggregator-proxy=y/proxy:1"], "--image", "drop one"),
    (["aggregator", "--container-name", "agg"], "--container-name", "choose another --stack"),
    (["aggregator", "--fresh"], "--fresh", "add --yes"),
    (["relay", "--network-id", "3"], "--network-id", "only to 'run aggregator'"),
    (["relay", "--image-override", "mongo=mongo:7"], "--image-override", "only to 'run aggregator'"),
    (["relay", "--fresh"], "--fresh", "only to 'run aggregator'"),
]


@pytest.mark.parametrize(("arguments", "option", "fragment"), BAD_AGGREGATOR_INPUTS)
def test_run_aggregator_bad_input_exits_2(
    no_engine: None, capsys: pytest.CaptureFixture[str], arguments: list[str], option: str, fragment: str
) -> None:
    # pytest's captured stdin is not a terminal, so --fresh without --yes is rejected.
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["run", *arguments])

    error = capsys.readouterr().err
    assert exit_info.value.code == 2, error
    assert f" {option}" in error
    assert fragment in error


def test_build_run_settings_aggregator_runs_proxy_image() -> None:
    settings = build_run_settings("aggregator", no_haproxy=True)

    assert settings.image == wrapper_image("aggregator-proxy")


@pytest.mark.parametrize(
    ("options", "publish"),
    [
        ({"no_haproxy": True}, PublishAddress("127.0.0.1", 3000)),
        ({}, PublishAddress("127.0.0.1", 3000)),
        ({"no_haproxy": True, "publish": "127.0.0.1:13000"}, PublishAddress("127.0.0.1", 13000)),
        ({"domain": "aggregator.example.org"}, None),
    ],
)
def test_build_run_settings_aggregator_default_publish(options: dict[str, object], publish: PublishAddress | None) -> None:
    assert build_run_settings("aggregator", **options).publish == publish  # type: ignore[arg-type]


def test_build_run_settings_relay_not_published_by_default() -> None:
    assert build_run_settings("relay", no_haproxy=True).publish is None


def test_build_aggregator_settings_defaults() -> None:
    settings = build_aggregator_settings()

    assert settings.network_id == 3
    assert settings.image_overrides == {}
    assert settings.fresh is False


def test_parse_image_overrides_by_key() -> None:
    overrides = parse_image_overrides(["mongo=mongo:7.0.14", "aggregator-go=example.test/aggregator-go:0.2.1"])

    assert overrides == {"mongo": "mongo:7.0.14", "aggregator-go": "example.test/aggregator-go:0.2.1"}


def test_aggregator_image_keys_match_stack() -> None:
    from unicity_infra.stack.aggregator import AGGREGATOR_IMAGES

    assert tuple(AGGREGATOR_IMAGES) == AGGREGATOR_IMAGE_KEYS


def test_upstream_images_aggregator_pins() -> None:
    assert UPSTREAM_IMAGES["bft-core"] == "ghcr.io/unicitynetwork/bft-core:ceceacd11b7a735de74ce17884a3a45e0db1748d"
    assert UPSTREAM_IMAGES["mongo"] == "mongo:7.0"
    assert UPSTREAM_IMAGES["aggregator-go"] == "ghcr.io/unicitynetwork/aggregator-go:0.2.0"
    assert UPSTREAM_IMAGES["curl"] == "curlimages/curl:8.13.0"


def test_run_relay_ignores_the_stack_wide_override_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # scripts/standin-images.sh exports the variable for the aggregator; 'run relay' must still start.
    from unicity_infra.commands import run as run_module
    from unicity_infra.errors import InfraError

    reached: list[object] = []

    def record_run(engine, settings, **kwargs):  # noqa: ANN001, ANN003, ANN202
        reached.append(settings)
        raise InfraError("stopped by the test before Docker")

    monkeypatch.setattr(cli_module.Context, "engine", lambda self: None)
    monkeypatch.setattr(run_module, "run_service", record_run)
    monkeypatch.setenv("UNICITY_INFRA_IMAGE_OVERRIDES", "mongo=example.test/mongo:7")

    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["run", "relay", "--no-haproxy", "--publish", "7777"])

    assert exit_info.value.code == 1, capsys.readouterr().err
    assert len(reached) == 1


def test_run_relay_still_refuses_a_typed_image_override(
    no_engine: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["run", "relay", "--image-override", "mongo=example.test/mongo:7"])

    assert exit_info.value.code == 2
    assert "--image-override" in capsys.readouterr().err
