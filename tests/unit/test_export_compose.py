"""export compose: the compose file carries the specs 'up' applies, with $ escaped and secrets as files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from unicity_infra.commands.up import UpSettings
from unicity_infra.errors import SettingsError
from unicity_infra.export.compose import compose_document, render_compose
from unicity_infra.export.stack import ExportedStack, plan_export
from unicity_infra.settings import build_run_settings
from unicity_infra.stack.relay import relay_plan
from unicity_infra.stack.spec import HealthCheck


def exported(mode: str = "direct", *services: str, stack: str = "t1", **fields: Any) -> ExportedStack:
    return plan_export(UpSettings(mode=mode, services=services, **fields), stack=stack)


def loaded(stack: ExportedStack) -> dict[str, Any]:
    """Parse the rendered text, as docker-compose reads it."""
    return yaml.safe_load(render_compose(stack, command="test"))


def unescape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [unescape(item) for item in value]
    if isinstance(value, dict):
        return {key: unescape(item) for key, item in value.items()}
    return value


def relay_with_secret(tmp_path: Path, name: str = "key") -> ExportedStack:
    key = tmp_path / name
    key.write_text("s3cret-value-never-exported\n")
    settings = build_run_settings("relay", domain="relay.example.org", container_name="unicity-t1-relay",
                                  haproxy_api_key_file=str(key))
    return ExportedStack(stack="t1", mode="production", plans={"relay": relay_plan(settings, stack="t1")})


def test_compose_relay_environment_and_port_follow_up_settings() -> None:
    relay = loaded(exported("direct", "relay", ports={"relay": 17777}))["services"]["relay"]

    assert relay["container_name"] == "unicity-t1-relay"
    assert relay["environment"]["RELAY_URL"] == "ws://127.0.0.1:17777"
    assert relay["ports"] == ["127.0.0.1:17777:80/tcp"]


def test_compose_environment_equals_spec_environment() -> None:
    stack = exported("production", domain_suffix="example.org")
    services = loaded(stack)["services"]

    for plan in stack.plans.values():
        for spec in plan.containers:
            key = next(key for key, entry in services.items() if entry["container_name"] == spec.name)
            assert unescape(services[key].get("environment", {})) == spec.env


def test_compose_volume_and_network_names() -> None:
    document = loaded(exported("direct", "relay"))

    assert document["volumes"]["unicity-t1-relay-data"]["name"] == "unicity-t1-relay-data"
    assert document["networks"]["unicity-infra-t1"]["name"] == "unicity-infra-t1"
    assert document["services"]["relay"]["volumes"] == ["unicity-t1-relay-data:/var/lib/relay",
                                                        "unicity-t1-relay-letsencrypt:/etc/letsencrypt"]


def test_compose_escapes_every_dollar() -> None:
    text = render_compose(exported("direct"), command="test")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))

    assert "$$output" in body
    assert "$" not in body.replace("$$", "")


def test_compose_dollar_round_trips_to_the_spec_command() -> None:
    stack = exported("direct", "aggregator")
    spec = next(spec for spec in stack.plans["aggregator"].containers if spec.name.endswith("bft-genesis"))

    entrypoint = loaded(stack)["services"]["bft-genesis"]["entrypoint"]

    assert unescape(entrypoint) == list(spec.entrypoint)


def test_compose_escapes_dollar_in_environment_value() -> None:
    stack = exported("direct", "relay")
    spec = stack.plans["relay"].containers[0]
    spec.env["PASSWORD_HINT"] = "a$b"

    assert compose_document(stack)["services"]["relay"]["environment"]["PASSWORD_HINT"] == "a$$b"


def test_compose_secret_is_a_file_reference(tmp_path: Path) -> None:
    text = render_compose(relay_with_secret(tmp_path), command="test")
    document = yaml.safe_load(text)

    assert document["secrets"] == {"haproxy_api_key": {"file": str(tmp_path / "key")}}
    assert document["services"]["relay"]["secrets"] == ["haproxy_api_key"]
    assert document["services"]["relay"]["environment"]["HAPROXY_API_KEY_FILE"] == "/run/secrets/haproxy_api_key"
    assert "s3cret-value-never-exported" not in text


def test_compose_secret_with_two_sources_is_refused(tmp_path: Path) -> None:
    first = relay_with_secret(tmp_path, "one")
    second = relay_with_secret(tmp_path, "two")
    both = ExportedStack(stack="t1", mode="production",
                         plans={"relay": first.plans["relay"], "faucet": second.plans["relay"]})

    with pytest.raises(SettingsError, match="haproxy_api_key"):
        compose_document(both)


def test_compose_faucet_waits_for_relay_and_aggregator() -> None:
    faucet = loaded(exported("direct"))["services"]["faucet"]

    assert faucet["depends_on"] == {"relay": {"condition": "service_healthy"},
                                    "aggregator-proxy": {"condition": "service_healthy"}}


def test_compose_faucet_alone_waits_for_nothing() -> None:
    assert "depends_on" not in loaded(exported("direct", "faucet"))["services"]["faucet"]


def test_compose_aggregator_keeps_its_own_order() -> None:
    services = loaded(exported("direct", "aggregator"))["services"]

    assert services["bft-genesis"]["depends_on"] == {"genesis-prepare": {"condition": "service_completed_successfully"}}
    assert services["bft-config-upload"]["depends_on"] == {
        "bft-root": {"condition": "service_healthy"},
        "genesis-verify": {"condition": "service_completed_successfully"},
    }
    assert services["aggregator-proxy"]["depends_on"] == {"aggregator": {"condition": "service_healthy"}}
    assert "depends_on" not in services["mongodb"]


def test_compose_one_shot_steps_do_not_restart() -> None:
    services = loaded(exported("direct", "aggregator"))["services"]

    assert services["genesis-prepare"]["restart"] == "no"
    assert services["bft-root"]["restart"] == "unless-stopped"


def test_compose_healthcheck_from_spec() -> None:
    stack = exported("direct", "aggregator")
    spec = next(spec for spec in stack.plans["aggregator"].containers if spec.name.endswith("-mongodb"))
    assert isinstance(spec.health, HealthCheck)

    check = loaded(stack)["services"]["mongodb"]["healthcheck"]

    assert unescape(check["test"]) == ["CMD", *spec.health.test]
    assert (check["interval"], check["timeout"], check["retries"], check["start_period"]) == ("2s", "10s", 15, "60s")


def test_compose_wrapper_keeps_its_image_healthcheck() -> None:
    assert "healthcheck" not in loaded(exported("direct", "relay"))["services"]["relay"]


def test_compose_local_edge_aliases() -> None:
    services = loaded(exported("local-edge", "relay", "faucet"))["services"]

    assert next(iter(services)) == "edge"
    assert services["edge"]["networks"]["haproxy-net"]["aliases"] == [
        "haproxy", "relay.unicity.localhost", "faucet.unicity.localhost"]
    assert services["relay"]["depends_on"] == {"edge": {"condition": "service_healthy"}}


def test_compose_local_edge_network_is_created_not_external() -> None:
    network = loaded(exported("local-edge", "relay"))["networks"]["haproxy-net"]

    assert "external" not in network


def test_compose_production_joins_the_external_edge_network() -> None:
    document = loaded(exported("production", "relay", domain_suffix="example.org"))

    assert document["networks"]["haproxy-net"] == {"name": "haproxy-net", "external": True}
    assert document["services"]["relay"]["environment"]["SSL_DOMAIN"] == "relay.example.org"
    assert "ports" not in document["services"]["relay"]


def test_compose_labels_of_status_and_down() -> None:
    labels = loaded(exported("direct", "relay"))["services"]["relay"]["labels"]

    assert labels["org.unicity.infra.managed"] == "true"
    assert labels["org.unicity.infra.stack"] == "t1"
    assert labels["org.unicity.infra.stop-timeout"] == "10"


def test_compose_unknown_service_is_refused() -> None:
    with pytest.raises(SettingsError, match="mailer"):
        exported("direct", "mailer")


def test_compose_local_edge_faucet_trusts_roots() -> None:
    faucet = loaded(exported("local-edge", "faucet"))["services"]["faucet"]

    assert faucet["environment"]["NODE_EXTRA_CA_CERTS"] == "/run/unicity-edge/issuing-roots.pem"
    assert "unicity-t1-edge-state:/run/unicity-edge:ro" in faucet["volumes"]
