"""The relay's specs: environment, ports, volumes, networks, labels and secrets."""

from __future__ import annotations

from pathlib import Path

from unicity_infra.settings import build_run_settings
from unicity_infra.stack.plan import spec_hash
from unicity_infra.stack.relay import relay_endpoint, relay_plan
from unicity_infra.stack.spec import LABEL_MANAGED, LABEL_ROLE, LABEL_SERVICE, LABEL_STACK, PortBinding


def _direct_tls_settings(**overrides: object):  # noqa: ANN202
    options = {"domain": "relay.test", "ssl_test_mode": True, "no_haproxy": True, "publish": "127.0.0.1:7443"}
    options.update(overrides)
    return build_run_settings("relay", **options)  # type: ignore[arg-type]


def test_relay_plan_direct_tls_publishes_443() -> None:
    plan = relay_plan(_direct_tls_settings(), stack="default")

    assert plan.containers[0].ports == (PortBinding(443, 7443, "127.0.0.1"),)


def test_relay_plan_plain_publishes_80() -> None:
    plan = relay_plan(build_run_settings("relay", no_haproxy=True, publish="7777"), stack="default")

    assert plan.containers[0].ports == (PortBinding(80, 7777, "127.0.0.1"),)


def test_relay_plan_env_uses_ssl_manager_names() -> None:
    env = relay_plan(_direct_tls_settings(), stack="default").containers[0].env

    assert env["SSL_DOMAIN"] == "relay.test"
    assert env["SSL_TEST_MODE"] == "true"
    assert env["SSL_REQUIRED"] == "true"
    assert env["SSL_HTTPS_PORT"] == "443"
    assert "HAPROXY_HOST" not in env


def test_relay_plan_haproxy_env_and_network() -> None:
    settings = build_run_settings(
        "relay", domain="relay.example.org", extra_ports='[{"listen": 7000, "target": 7000, "mode": "tcp"}]'
    )
    plan = relay_plan(settings, stack="default")
    container = plan.containers[0]

    assert container.env["HAPROXY_HOST"] == "haproxy"
    assert container.env["HAPROXY_API_PORT"] == "8404"
    assert container.env["EXTRA_PORTS"] == '[{"listen": 7000, "target": 7000, "mode": "tcp"}]'
    assert container.networks == ("haproxy-net",)
    assert plan.networks[0].external
    assert container.ports == ()


def test_relay_plan_api_key_travels_as_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key")
    settings = build_run_settings("relay", domain="relay.example.org", haproxy_api_key_file=str(key_file))
    container = relay_plan(settings, stack="default").containers[0]

    assert container.env["HAPROXY_API_KEY_FILE"] == "/run/secrets/haproxy_api_key"
    assert container.secret_files[0].source == key_file.resolve()
    assert all("s3cret-key" not in value for value in container.env.values())


def test_relay_plan_volumes_have_roles() -> None:
    plan = relay_plan(_direct_tls_settings(), stack="default")
    roles = {volume.name: volume.labels[LABEL_ROLE] for volume in plan.volumes}

    assert roles == {"unicity-relay-data": "data", "unicity-relay-letsencrypt": "certificates"}
    mounts = {mount.target: mount.volume for mount in plan.containers[0].volumes}
    assert mounts == {"/var/lib/relay": "unicity-relay-data", "/etc/letsencrypt": "unicity-relay-letsencrypt"}


def test_relay_plan_labels_find_ours() -> None:
    labels = relay_plan(_direct_tls_settings(), stack="ci-1").containers[0].labels

    assert labels[LABEL_MANAGED] == "true"
    assert labels[LABEL_STACK] == "ci-1"
    assert labels[LABEL_SERVICE] == "relay"


def test_relay_plan_stack_gets_own_direct_network() -> None:
    assert relay_plan(_direct_tls_settings(), stack="default").networks[0].name == "unicity-infra"
    assert relay_plan(_direct_tls_settings(), stack="ci-1").networks[0].name == "unicity-infra-ci-1"


def test_relay_endpoint_forms() -> None:
    assert relay_endpoint(_direct_tls_settings()) == "wss://relay.test:7443"
    assert relay_endpoint(build_run_settings("relay", no_haproxy=True, publish="7777")) == "ws://127.0.0.1:7777"
    assert relay_endpoint(build_run_settings("relay", domain="relay.example.org")) == "wss://relay.example.org"


def test_spec_hash_changes_with_settings() -> None:
    first = relay_plan(_direct_tls_settings(), stack="default").containers[0]
    same = relay_plan(_direct_tls_settings(), stack="default").containers[0]
    other = relay_plan(_direct_tls_settings(publish="127.0.0.1:7444"), stack="default").containers[0]

    assert spec_hash(first) == spec_hash(same)
    assert spec_hash(first) != spec_hash(other)
