"""up: service ordering and per-mode options."""

from __future__ import annotations

import pytest

from unicity_infra.commands.up import UpSettings, _run_options, order_services
from unicity_infra.errors import SettingsError
from unicity_infra.settings import SERVICES


def test_order_services_default_all() -> None:
    ordered = order_services(())

    assert ordered[0] == "relay"
    assert set(ordered) == {service for service in ("relay", "aggregator", "faucet") if service in SERVICES}


def test_order_services_reorders_request() -> None:
    if "aggregator" not in SERVICES:
        pytest.skip("this build has no aggregator service")
    assert order_services(("aggregator", "relay")) == ("relay", "aggregator")


def test_order_services_unknown() -> None:
    with pytest.raises(SettingsError, match="expected one of"):
        order_services(("mailer",))


def test_run_options_direct_publishes_fixed_port() -> None:
    options = _run_options(UpSettings(mode="direct"), "relay", stack="default")

    assert options == {"container_name": "unicity-relay", "no_haproxy": True, "publish": "127.0.0.1:7777"}


def test_run_options_direct_port_override() -> None:
    options = _run_options(UpSettings(mode="direct", ports={"relay": 17777}), "relay", stack="ci")

    assert options["publish"] == "127.0.0.1:17777"
    assert options["container_name"] == "unicity-ci-relay"


def test_run_options_local_edge_uses_suffix() -> None:
    options = _run_options(UpSettings(mode="local-edge"), "relay", stack="default")

    assert options["domain"] == "relay.unicity.localhost"
    assert "no_haproxy" not in options


def test_run_options_explicit_domain_wins() -> None:
    settings = UpSettings(mode="production", domains={"relay": "relay-dev.example.org"}, ssl_email="ops@example.org")
    options = _run_options(settings, "relay", stack="default")

    assert options["domain"] == "relay-dev.example.org"
    assert options["ssl_email"] == "ops@example.org"
