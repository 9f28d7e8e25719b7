"""Unit tests of the reachability check (container/reachability.py) that need no network.

A name that does not resolve is simulated by replacing getaddrinfo; the paths that fetch
the token over HTTP are covered by tests/component/test_supervisor_registration.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from unicity_infra.container import reachability
from unicity_infra.container.reachability import DomainUnreachableError, check_domains_reach_us, resolve_address


def no_such_name(*_: object, **__: object) -> list[object]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_resolve_address_prefers_static_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reachability.socket, "getaddrinfo", no_such_name)

    assert resolve_address("relay.example.org", {"relay.example.org": "10.1.2.3"}) == "10.1.2.3"
    with pytest.raises(OSError):
        resolve_address("other.example.org", {"relay.example.org": "10.1.2.3"})


def test_check_unresolvable_domain_exits_10(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(reachability.socket, "getaddrinfo", no_such_name)

    with pytest.raises(DomainUnreachableError) as caught:
        check_domains_reach_us(["relay.example.org"], webroot=tmp_path, attempts=2, interval_s=0.01)

    assert caught.value.exit_code == 10
    assert caught.value.address is None
    assert str(caught.value).startswith("domain relay.example.org does not reach this container: it does not resolve")
    assert "Name or service not known" in str(caught.value)


def test_check_removes_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(reachability.socket, "getaddrinfo", no_such_name)

    with pytest.raises(DomainUnreachableError):
        check_domains_reach_us(["relay.example.org"], webroot=tmp_path, attempts=1)

    assert list((tmp_path / ".well-known" / "acme-challenge").iterdir()) == []


def test_check_cancelled_returns_without_trying(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    attempts: list[str] = []
    monkeypatch.setattr(reachability, "resolve_address", lambda name, hosts: attempts.append(name) or "127.0.0.1")

    check_domains_reach_us(["relay.example.org"], webroot=tmp_path, is_cancelled=lambda: True)

    assert attempts == []


def test_error_message_names_domain_and_address() -> None:
    error = DomainUnreachableError("relay.example.org", "172.20.0.3", "GET http://relay.example.org/x returned HTTP 404")

    assert str(error).startswith(
        "domain relay.example.org does not reach this container: it resolves to 172.20.0.3, and GET "
    )
    assert "point relay.example.org (DNS or /etc/hosts) at the edge or at this container" in str(error)
