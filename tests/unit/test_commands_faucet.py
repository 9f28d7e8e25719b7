"""Defaults 'run faucet' takes from the stack (commands/faucet.py), over a recorded engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from unicity_infra.commands.faucet import resolve_faucet_defaults
from unicity_infra.engine.docker import ContainerInfo
from unicity_infra.settings import build_run_settings
from unicity_infra.stack.aggregator import LABEL_COMPONENT
from unicity_infra.stack.spec import LABEL_ENDPOINT


def info(name: str, service: str, *, state: str = "running", **labels: str) -> ContainerInfo:
    return ContainerInfo(name=name, service=service, stack="ci", image="image", state=state, health="healthy",
                         labels=labels, exit_code=None)


@dataclass
class RecordedApi:
    """Returns the environment recorded for each container from inspect_container."""

    env: dict[str, list[str]] = field(default_factory=dict)

    def inspect_container(self, name: str) -> dict[str, Any]:
        return {"Config": {"Env": self.env.get(name, [])}}


@dataclass
class RecordedEngine:
    """Stands in for DockerEngine: lists the containers given, by service."""

    containers: list[ContainerInfo]
    api: RecordedApi = field(default_factory=RecordedApi)

    def list_containers(self, *, stack: str | None = None, service: str | None = None) -> list[ContainerInfo]:
        return [container for container in self.containers if service is None or container.service == service]


def faucet_settings(**options: object):  # noqa: ANN201
    return build_run_settings("faucet", no_haproxy=True, **options)  # type: ignore[arg-type]


def test_resolve_faucet_defaults_takes_stack_relay() -> None:
    engine = RecordedEngine([info("unicity-ci-relay", "relay", **{LABEL_ENDPOINT: "ws://127.0.0.1:7777"})])

    settings, notes = resolve_faucet_defaults(engine, faucet_settings(), stack="ci")  # type: ignore[arg-type]

    assert settings.faucet is not None
    assert settings.faucet.nostr_relays == ("ws://unicity-ci-relay:80",)
    assert "ws://unicity-ci-relay:80" in notes[0]


def test_resolve_faucet_defaults_tls_relay_port() -> None:
    engine = RecordedEngine([info("unicity-ci-relay", "relay", **{LABEL_ENDPOINT: "wss://relay.test:7443"})])
    engine.api.env["unicity-ci-relay"] = ["SSL_HTTPS_PORT=8443"]

    settings, _ = resolve_faucet_defaults(engine, faucet_settings(), stack="ci")  # type: ignore[arg-type]

    assert settings.faucet is not None
    assert settings.faucet.nostr_relays == ("wss://relay.test:8443",)


def test_resolve_faucet_defaults_ignores_stopped_relay() -> None:
    engine = RecordedEngine([info("unicity-ci-relay", "relay", state="exited")])

    settings, notes = resolve_faucet_defaults(engine, faucet_settings(), stack="ci")  # type: ignore[arg-type]

    assert settings.faucet is not None
    assert settings.faucet.nostr_relays == ()
    assert "built-in relays" in notes[0]


def test_resolve_faucet_defaults_keeps_given_relays() -> None:
    engine = RecordedEngine([info("unicity-ci-relay", "relay")])

    settings, _ = resolve_faucet_defaults(
        engine, faucet_settings(nostr_relays="wss://relay.example.org"), stack="ci"  # type: ignore[arg-type]
    )

    assert settings.faucet is not None
    assert settings.faucet.nostr_relays == ("wss://relay.example.org",)


def test_resolve_faucet_defaults_stack_aggregator() -> None:
    proxy = info("unicity-ci-aggregator-proxy", "aggregator",
                 **{LABEL_COMPONENT: "aggregator-proxy", LABEL_ENDPOINT: "http://127.0.0.1:3000"})
    engine = RecordedEngine([proxy, info("unicity-ci-aggregator", "aggregator", **{LABEL_COMPONENT: "aggregator"})])

    settings, _ = resolve_faucet_defaults(engine, faucet_settings(), stack="ci")  # type: ignore[arg-type]

    assert settings.faucet is not None
    assert settings.faucet.aggregator_url == "http://unicity-ci-aggregator-proxy:80"
    assert settings.faucet.trust_base_url == "http://unicity-ci-aggregator-proxy:80/.well-known/trust-base.json"


def test_resolve_faucet_defaults_foreign_aggregator() -> None:
    engine = RecordedEngine([])

    settings, notes = resolve_faucet_defaults(
        engine, faucet_settings(aggregator_url="https://aggregator.example.org"), stack="ci"  # type: ignore[arg-type]
    )

    assert settings.faucet is not None
    assert settings.faucet.trust_base_url is None
    assert any("does not verify the aggregator" in note for note in notes)


class _Genesis:
    sha256 = "cd" * 32


def test_pin_trust_base_only_for_stack_aggregator(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from unicity_infra.commands import aggregator as aggregator_module
    from unicity_infra.commands import faucet as faucet_module
    from unicity_infra.settings import FaucetSettings, build_run_settings

    monkeypatch.setattr(faucet_module, "_stack_aggregator_url", lambda engine, stack: "http://s-aggregator-proxy:80")
    monkeypatch.setattr(aggregator_module, "read_genesis_trust_base", lambda engine, stack: _Genesis())
    base = build_run_settings("faucet", no_haproxy=True, publish="127.0.0.1:8090")

    def pinned(trust_base_url: str | None) -> str | None:
        settings = replace(base, faucet=FaucetSettings(trust_base_url=trust_base_url))
        return faucet_module.pin_stack_trust_base(None, settings, stack="s").faucet.trust_base_sha256  # type: ignore[arg-type]

    assert pinned("http://s-aggregator-proxy:80/.well-known/trust-base.json") == "cd" * 32
    assert pinned("https://elsewhere.example/trust-base.json") is None
    assert pinned(None) is None
