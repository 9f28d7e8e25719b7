"""up's per-service host names: validation through the real CLI, and the names reaching each service's settings."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from unicity_infra import cli as cli_module
from unicity_infra.commands import up as up_module
from unicity_infra.commands.up import UpSettings, _run_options
from unicity_infra.errors import SettingsError
from unicity_infra.settings import build_run_settings


def up_settings(captured: dict[str, object], *arguments: str) -> UpSettings:
    cli_module.main(["up", *arguments])
    settings = captured["settings"]
    assert isinstance(settings, UpSettings)
    return settings


def run_domain(settings: UpSettings, service: str) -> str | None:
    """Return the domain the service's run settings carry, as 'up' builds them."""
    return build_run_settings(service, **_run_options(settings, service, stack="h1-test")).domain  # type: ignore[arg-type]


def test_production_domains_reach_each_service(captured: dict[str, object]) -> None:
    settings = up_settings(captured, "--mode", "production", "--relay-domain", "Relay.Example.org",
                           "--aggregator-domain", "gateway.example.org", "--faucet-domain", "faucet.example.net")

    assert settings.domains == {"relay": "relay.example.org", "aggregator": "gateway.example.org",
                                "faucet": "faucet.example.net"}
    assert run_domain(settings, "relay") == "relay.example.org"
    assert run_domain(settings, "aggregator") == "gateway.example.org"
    assert run_domain(settings, "faucet") == "faucet.example.net"


def test_production_suffix_names_the_rest(captured: dict[str, object]) -> None:
    settings = up_settings(captured, "--mode", "production", "--domain-suffix", "example.org",
                           "--aggregator-domain", "gateway.example.com")

    assert run_domain(settings, "relay") == "relay.example.org"
    assert run_domain(settings, "aggregator") == "gateway.example.com"
    assert run_domain(settings, "faucet") == "faucet.example.org"


def test_production_needs_only_selected_services(captured: dict[str, object]) -> None:
    settings = up_settings(captured, "relay", "--mode", "production", "--relay-domain", "relay.example.org")

    assert settings.services == ("relay",)
    assert run_domain(settings, "relay") == "relay.example.org"


def test_local_edge_domain_overrides_suffix(captured: dict[str, object]) -> None:
    settings = up_settings(captured, "--mode", "local-edge", "--faucet-domain", "tap.unicity.localhost")

    assert run_domain(settings, "faucet") == "tap.unicity.localhost"
    assert run_domain(settings, "relay") == "relay.unicity.localhost"


def test_direct_mode_ignores_domains(captured: dict[str, object]) -> None:
    settings = up_settings(captured, "--aggregator-domain", "gateway.example.org")

    assert run_domain(settings, "aggregator") is None
    assert _run_options(settings, "aggregator", stack="h1-test")["publish"] == "127.0.0.1:3000"


def test_domains_from_settings_file(captured: dict[str, object], tmp_path: Path) -> None:
    (tmp_path / "unicity-infra.toml").write_text(
        '[up]\nmode = "production"\nrelay-domain = "relay.example.org"\naggregator_domain = "gateway.example.org"\n'
        'faucet-domain = "faucet.example.org"\n')

    settings = up_settings(captured)

    assert settings.mode == "production"
    assert run_domain(settings, "aggregator") == "gateway.example.org"
    assert run_domain(settings, "faucet") == "faucet.example.org"


BAD_UP_INPUTS = [
    (["--mode", "production"], "--mode",
     "for the relay, aggregator and faucet: give --relay-domain, --aggregator-domain and --faucet-domain, or a"),
    (["--mode", "production", "--relay-domain", "relay.example.org"], "--mode",
     "for the aggregator and faucet: give --aggregator-domain and --faucet-domain"),
    (["--mode", "production", "--relay-domain", "relay.example.org", "--faucet-domain", "faucet.example.org"],
     "--mode", "for the aggregator: give --aggregator-domain, or"),
    (["faucet", "--mode", "production", "--relay-domain", "relay.example.org"], "--mode",
     "for the faucet: give --faucet-domain, or"),
    (["--mode", "production", "--domain-suffix", "unicity.localhost"], "--mode", "other than unicity.localhost"),
    (["--mode", "production", "--aggregator-domain", "gateway_1.example.org", "--domain-suffix", "example.org"],
     "--aggregator-domain", "cannot contain '_'"),
    (["--mode", "local-edge", "--faucet-domain", "https://faucet.example.org"], "--faucet-domain", "not a URL"),
    (["--mode", "local-edge", "--relay-domain", "relay"], "--relay-domain", "fully qualified"),
    (["--mode", "production", "--domain-suffix", "example.org", "--relay-domain", "faucet.example.org"],
     "--relay-domain", "the faucet gets this host name too (from --domain-suffix)"),
    (["--mode", "production", "--relay-domain", "a.example.org", "--aggregator-domain", "a.example.org",
      "--faucet-domain", "f.example.org"], "--aggregator-domain", "the relay gets this host name too (from --relay-domain)"),
    (["--mode", "local-edge", "--aggregator-domain", "relay.unicity.localhost"], "--aggregator-domain",
     "the relay gets this host name too"),
    (["--relay-port", "7000", "--aggregator-port", "7000"], "--aggregator-port",
     "the relay already uses this port (--relay-port)"),
    (["--faucet-port", "7777"], "--faucet-port", "the relay already uses this port (--relay-port)"),
    (["--timeout", "-1"], "--timeout", "expected a number of seconds above 0"),
    (["--timeout", "0"], "--timeout", "expected a number of seconds above 0"),
    (["--mode", "local-edge", "--relay-port", "http"], "--relay-port", "expected a port number"),
]


@pytest.mark.parametrize(("arguments", "option", "fragment"), BAD_UP_INPUTS)
def test_up_bad_domain_exits_2(captured: dict[str, object], capsys: pytest.CaptureFixture[str],
                               arguments: list[str], option: str, fragment: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["up", *arguments])

    error = capsys.readouterr().err
    assert exit_info.value.code == 2, error
    assert error.startswith(f"error: invalid value for {option}: ")
    assert fragment in error
    assert "settings" not in captured
    assert "engine_created" not in captured


def test_production_error_from_file_names_key(captured: dict[str, object], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "unicity-infra.toml").write_text('[up]\nmode = "production"\n')

    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["up", "--relay-domain", "relay.example.org"])

    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "for the aggregator and faucet" in error
    assert "set by key 'mode' in table [up] of unicity-infra.toml, line 2" in error


def test_production_key_file_reaches_services(captured: dict[str, object], tmp_path: Path) -> None:
    key = tmp_path / "edge-key"
    key.write_text("k" * 40)
    settings = up_settings(captured, "--mode", "production", "--domain-suffix", "example.org",
                           "--haproxy-api-key-file", str(key))

    for service in ("relay", "aggregator", "faucet"):
        run_settings = build_run_settings(service, **_run_options(settings, service, stack="s"))  # type: ignore[arg-type]
        assert run_settings.haproxy_api_key_file == key


def test_local_edge_takes_edge_key_file(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text("k" * 40)
    edge = up_module.EdgeLink(network="haproxy-net", alias="haproxy", key_file=str(key))

    options = _run_options(UpSettings(mode="local-edge"), "relay", stack="s", edge=edge)

    assert options["haproxy_api_key_file"] == str(key)


def test_missing_key_file_exits_2(captured: dict[str, object], capsys: pytest.CaptureFixture[str],
                                  tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["up", "--mode", "production", "--domain-suffix", "example.org",
                         "--haproxy-api-key-file", str(tmp_path / "absent")])

    assert exit_info.value.code == 2
    assert "--haproxy-api-key-file" in capsys.readouterr().err
    assert "engine_created" not in captured


def test_same_port_for_unselected_service_is_accepted(captured: dict[str, object]) -> None:
    settings = up_settings(captured, "relay", "aggregator", "--faucet-port", "7777")

    assert settings.ports == {"relay": 7777, "aggregator": 3000, "faucet": 7777}


def test_same_port_outside_direct_mode_is_accepted(captured: dict[str, object]) -> None:
    settings = up_settings(captured, "--mode", "local-edge", "--relay-port", "3000")

    assert settings.mode == "local-edge"


class PortsEngine:
    """The one engine call the port check makes: the stack's own published ports."""

    def __init__(self, ours: set[int]) -> None:
        self.ours = ours

    def published_ports(self, *, stack: str) -> set[int]:
        return self.ours


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port that a listening socket of the test holds."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _relay_on(port: int) -> dict[str, object]:
    return {"relay": build_run_settings("relay", no_haproxy=True, publish=f"127.0.0.1:{port}")}


def test_port_held_by_other_program_is_rejected(held_port: int) -> None:
    with pytest.raises(SettingsError) as caught:
        up_module._check_ports(PortsEngine(set()), _relay_on(held_port), stack="s")  # type: ignore[arg-type]

    assert caught.value.option == "--relay-port"
    assert f"127.0.0.1:{held_port} is not free" in str(caught.value)
    assert "Nothing was started" in str(caught.value)


def test_port_held_by_own_container_is_accepted(held_port: int) -> None:
    up_module._check_ports(PortsEngine({held_port}), _relay_on(held_port), stack="s")  # type: ignore[arg-type]


def test_run_bad_timeout_exits_2(captured: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main(["run", "relay", "--no-haproxy", "--timeout", "0"])

    assert exit_info.value.code == 2
    assert "invalid value for --timeout: 0.0; expected a number of seconds above 0" in capsys.readouterr().err
    assert "engine_created" not in captured
