"""Local-edge mode: the faucet reaches the stack's relay and aggregator by their names and trusts the edge's CA."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from unicity_infra.commands.faucet import edge_routed_names
from unicity_infra.commands.run import LocalEdge, RunResult, _behind_local_edge
from unicity_infra.commands.up import EdgeLink, UpSettings, _run_options
from unicity_infra.settings import RunSettings, build_run_settings
from unicity_infra.stack.faucet import faucet_plan, trust_edge_ca
from unicity_infra.stack.relay import relay_plan

NETWORK = "unicity-test-edge"
EDGE = LocalEdge(container="unicity-t-edge", address="172.30.0.2", https_host="127.0.0.1", https_port=8443,
                 ca_bundle=Path("/state/edge/t/ca-bundle.pem"), acme_directory="https://haproxy:14000/dir",
                 key_required=False, key_file=None)


class FakeEngine:
    """The stack's containers: name → (state, networks, environment)."""

    def __init__(self, containers: dict[str, tuple[str, list[str], dict[str, str]]]) -> None:
        self.containers = containers
        self.api = SimpleNamespace(inspect_container=self._inspect)

    def list_containers(self, *, stack: str | None = None, service: str | None = None) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=name, state=state) for name, (state, _, _) in self.containers.items()]

    def container_networks(self, name: str) -> list[str]:
        state, networks, _ = self.containers[name]
        return networks if state == "running" else []

    def _inspect(self, name: str) -> dict[str, object]:
        environment = self.containers[name][2]
        return {"Config": {"Env": [f"{key}={value}" for key, value in environment.items()]}}


def stack_engine() -> FakeEngine:
    return FakeEngine({
        "unicity-t-edge": ("running", [NETWORK], {"EDGE_ALIASES": "haproxy"}),
        "unicity-t-relay": ("running", [NETWORK], {"SSL_DOMAIN": "relay.unicity.localhost"}),
        "unicity-t-aggregator-proxy": ("running", [NETWORK, "unicity-t-aggregator"],
                                       {"SSL_DOMAIN": "aggregator.unicity.localhost",
                                        "SSL_DOMAIN_ALIASES": "rpc.unicity.localhost"}),
        "unicity-t-old": ("exited", [NETWORK], {"SSL_DOMAIN": "old.unicity.localhost"}),
    })


def faucet_settings(**options: object) -> RunSettings:
    return build_run_settings("faucet", container_name="unicity-t-faucet", domain="faucet.unicity.localhost",
                              haproxy_net=NETWORK, **options)  # type: ignore[arg-type]


def test_routed_names_stack_services_only() -> None:
    settings = faucet_settings(
        nostr_relays="wss://relay.unicity.localhost,wss://relay.example.org,wss://old.unicity.localhost",
        aggregator_url="https://rpc.unicity.localhost",
        trust_base_url="https://aggregator.unicity.localhost/.well-known/trust-base.json",
    )

    names = edge_routed_names(stack_engine(), settings, stack="t")

    assert names == ("aggregator.unicity.localhost", "relay.unicity.localhost", "rpc.unicity.localhost")


def test_routed_names_skip_plain_urls() -> None:
    settings = faucet_settings(nostr_relays="ws://relay.unicity.localhost", aggregator_url="http://unicity-t-proxy:80")

    assert edge_routed_names(stack_engine(), settings, stack="t") == ()


def test_routed_names_other_network_ignored() -> None:
    engine = stack_engine()
    engine.containers["unicity-t-relay"] = ("running", ["haproxy-net"], {"SSL_DOMAIN": "relay.unicity.localhost"})

    names = edge_routed_names(engine, faucet_settings(nostr_relays="wss://relay.unicity.localhost"), stack="t")

    assert names == ()


def test_trust_edge_ca_mounts_bundle() -> None:
    spec = faucet_plan(faucet_settings(), stack="t").containers[0]

    trusting = trust_edge_ca(spec, Path("/state/ca-bundle.pem"))

    assert trusting.env["NODE_EXTRA_CA_CERTS"] == "/run/secrets/edge_ca_bundle"
    mounted = {secret.target: secret.source for secret in trusting.secret_files}
    assert mounted["/run/secrets/edge_ca_bundle"] == Path("/state/ca-bundle.pem")


def test_trust_edge_ca_keeps_own_variable() -> None:
    spec = faucet_plan(faucet_settings(), stack="t").containers[0]
    own = replace(spec, env={**spec.env, "NODE_EXTRA_CA_CERTS": "/mine.pem"})

    spec = trust_edge_ca(own, Path("/state/ca-bundle.pem"))

    assert spec.env["NODE_EXTRA_CA_CERTS"] == "/mine.pem"


def test_faucet_behind_edge_pins_names_and_ca() -> None:
    settings = faucet_settings(nostr_relays="wss://relay.unicity.localhost",
                               aggregator_url="https://aggregator.unicity.localhost")
    result = RunResult(container="unicity-t-faucet", image="faucet", endpoint="https://faucet.unicity.localhost")
    spec = faucet_plan(settings, stack="t").containers[0]

    spec = _behind_local_edge(stack_engine(), settings, spec, EDGE, stack="t", result=result,
                              progress=SimpleNamespace(note=lambda text: None))

    assert spec.extra_hosts == {"faucet.unicity.localhost": "172.30.0.2", "relay.unicity.localhost": "172.30.0.2",
                                "aggregator.unicity.localhost": "172.30.0.2"}
    assert spec.env["NODE_EXTRA_CA_CERTS"] == "/run/secrets/edge_ca_bundle"
    assert any("NODE_EXTRA_CA_CERTS" in note for note in result.notes)


def test_relay_behind_edge_only_own_domain() -> None:
    settings = build_run_settings("relay", container_name="unicity-t-relay", domain="relay.unicity.localhost",
                                  domain_aliases="nostr.unicity.localhost", haproxy_net=NETWORK)
    result = RunResult(container="unicity-t-relay", image="relay", endpoint="wss://relay.unicity.localhost")
    spec = _behind_local_edge(stack_engine(), settings, relay_plan(settings, stack="t").containers[0], EDGE, stack="t",
                              result=result, progress=SimpleNamespace(note=lambda text: None))

    assert spec.extra_hosts == {"relay.unicity.localhost": "172.30.0.2", "nostr.unicity.localhost": "172.30.0.2"}
    assert "NODE_EXTRA_CA_CERTS" not in spec.env


def test_up_options_use_running_edge_network() -> None:
    edge = EdgeLink(network=NETWORK, alias="edge", https=("127.0.0.1", 8443), ca_bundle=None)

    options = _run_options(UpSettings(mode="local-edge"), "faucet", stack="t", edge=edge)

    assert options["haproxy_net"] == NETWORK
    assert options["haproxy_host"] == "edge"
    assert options["domain"] == "faucet.unicity.localhost"
