"""Relay URL handling: scheme conversion, default ports and the --connect override."""

from __future__ import annotations

import pytest

from unicity_infra.errors import SettingsError
from unicity_infra.probes.http import parse_endpoint, to_http_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://127.0.0.1:7777", "http://127.0.0.1:7777"),
        ("wss://relay.test", "https://relay.test"),
        ("wss://relay.test:8443/path?x=1", "https://relay.test:8443/path?x=1"),
        ("WSS://relay.test/", "https://relay.test/"),
        ("https://relay.test/", "https://relay.test/"),
        ("http://relay.test", "http://relay.test"),
    ],
)
def test_to_http_url_conversion(url: str, expected: str) -> None:
    assert to_http_url(url) == expected


@pytest.mark.parametrize("url", ["relay.test", "ftp://relay.test", "wss://", "ws://relay.test:99999", "ws:///path"])
def test_to_http_url_rejects_invalid_url(url: str) -> None:
    with pytest.raises(SettingsError, match="relay URL"):
        to_http_url(url)


@pytest.mark.parametrize(
    ("url", "port", "is_tls"),
    [
        ("ws://relay.test", 80, False),
        ("wss://relay.test", 443, True),
        ("wss://relay.test:8443", 8443, True),
        ("http://relay.test:7777/", 7777, False),
    ],
)
def test_parse_endpoint_default_ports(url: str, port: int, is_tls: bool) -> None:
    endpoint = parse_endpoint(url)

    assert endpoint.host == "relay.test"
    assert endpoint.port == port
    assert endpoint.is_tls is is_tls
    assert (endpoint.connect_host, endpoint.connect_port) == ("relay.test", port)
    assert endpoint.via == ""


def test_parse_endpoint_connect_override() -> None:
    endpoint = parse_endpoint("wss://relay.test", connect=("127.0.0.1", 7443))

    assert endpoint.host == "relay.test"
    assert endpoint.port == 443
    assert endpoint.address == "127.0.0.1:7443"
    assert endpoint.via == " via 127.0.0.1:7443"


def test_parse_endpoint_ipv6_address() -> None:
    endpoint = parse_endpoint("ws://[::1]:7777")

    assert endpoint.host == "::1"
    assert endpoint.address == "[::1]:7777"
