"""probe faucet: which address the relay check connects to."""

from __future__ import annotations

import pytest

from unicity_infra import cli as cli_module
from unicity_infra.probes import faucet as faucet_probes


@pytest.fixture
def probe_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    calls: list[dict[str, object]] = []

    def record(url: str, **options: object) -> None:
        calls.append(options)
        raise RuntimeError("stopped by the test before any connection")

    monkeypatch.setattr(faucet_probes, "probe_faucet", record)
    return calls


def probe(*arguments: str) -> None:
    with pytest.raises(SystemExit):
        cli_module.main(["probe", "faucet", *arguments])


def test_relay_connect_defaults_to_connect(probe_calls: list[dict[str, object]]) -> None:
    probe("https://faucet.unicity.localhost", "--relay", "wss://relay.unicity.localhost", "--connect", "127.0.0.1:443")

    assert probe_calls[0]["relay_connect"] == ("127.0.0.1", 443)


def test_relay_connect_flag_wins(probe_calls: list[dict[str, object]]) -> None:
    probe("https://faucet.example.org", "--relay", "wss://relay.example.org", "--connect", "127.0.0.1:443",
          "--relay-connect", "127.0.0.1:8443")

    assert probe_calls[0]["relay_connect"] == ("127.0.0.1", 8443)


def test_plain_faucet_keeps_tls_relay_unrouted(probe_calls: list[dict[str, object]]) -> None:
    probe("http://127.0.0.1:7780", "--relay", "wss://relay.example.org", "--connect", "127.0.0.1:7780")

    assert probe_calls[0]["relay_connect"] is None
