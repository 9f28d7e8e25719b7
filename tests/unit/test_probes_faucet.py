"""Unit tests of the faucet probe's pure parts: discovery URL and document checks."""

from __future__ import annotations

from typing import Any

import pytest

from unicity_infra.errors import SettingsError
from unicity_infra.probes.faucet import check_discovery_document, discovery_url_of
from unicity_infra.probes.report import Status

PUBKEY = "03" + "7e" * 32


def running_document(**overrides: Any) -> dict[str, Any]:
    return {
        "status": "running",
        "chain_pubkey": PUBKEY,
        "direct_address": f"DIRECT://{PUBKEY}",
        "nametag": "faucet-dev",
        "network": "testnet",
        **overrides,
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://faucet.example.org", "https://faucet.example.org/.well-known/faucet.json"),
        ("https://faucet.example.org/", "https://faucet.example.org/.well-known/faucet.json"),
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090/.well-known/faucet.json"),
        ("https://faucet.example.org/.well-known/faucet.json", "https://faucet.example.org/.well-known/faucet.json"),
        ("https://example.org/faucet", "https://example.org/faucet/.well-known/faucet.json"),
    ],
)
def test_discovery_url_of(url: str, expected: str) -> None:
    assert discovery_url_of(url) == expected


@pytest.mark.parametrize("url", ["wss://faucet.example.org", "faucet.example.org", "https://"])
def test_discovery_url_of_rejects_non_http(url: str) -> None:
    with pytest.raises(SettingsError, match="http:// or https://"):
        discovery_url_of(url)


def test_check_discovery_document_running() -> None:
    status, detail = check_discovery_document(running_document())

    assert status is Status.OK
    assert PUBKEY in detail
    assert "faucet-dev" in detail


@pytest.mark.parametrize("state", ["starting", "restarting", "failed", "stopped", None])
def test_check_discovery_document_not_running_fails(state: str | None) -> None:
    status, detail = check_discovery_document(running_document(status=state, restart_count=2, last_exit_code=1))

    assert status is Status.FAIL
    assert "restart_count=2" in detail
    assert "last_exit_code=1" in detail


@pytest.mark.parametrize(
    "pubkey",
    [None, PUBKEY[:16] + "...", "04" + "7e" * 32, PUBKEY.upper(), PUBKEY[2:], PUBKEY + "00"],
)
def test_check_discovery_document_bad_pubkey_fails(pubkey: object) -> None:
    status, detail = check_discovery_document(running_document(chain_pubkey=pubkey, direct_address=f"DIRECT://{pubkey}"))

    assert status is Status.FAIL
    assert "66-hex compressed" in detail


def test_check_discovery_document_mismatched_address_fails() -> None:
    status, detail = check_discovery_document(running_document(direct_address="DIRECT://02" + "00" * 32))

    assert status is Status.FAIL
    assert "does not match" in detail


def test_check_discovery_document_without_nametag_warns() -> None:
    status, detail = check_discovery_document(running_document(nametag=None))

    assert status is Status.WARN
    assert "direct address" in detail
