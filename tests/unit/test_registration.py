"""Unit tests of the registration client's retry rules, over a scripted transport and a fake clock."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from unicity_infra.container.registration import (
    RegistrationError,
    Reply,
    backends_url,
    is_registered,
    register,
    unregister,
)

API = "http://edge.test:8404"


@dataclass
class Call:
    method: str
    url: str
    body: dict[str, object] | None
    headers: dict[str, str]


@dataclass
class ScriptedTransport:
    """Replies to each request with the next scripted reply, or raises it when it is an exception."""

    replies: list[Reply | OSError]
    calls: list[Call] = field(default_factory=list)
    default: Reply | OSError | None = None

    def __call__(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout_s: float) -> Reply:
        self.calls.append(Call(method, url, json.loads(body) if body else None, headers))
        reply = self.replies.pop(0) if self.replies else self.default
        if reply is None:
            raise AssertionError(f"unexpected request {method} {url}")
        if isinstance(reply, OSError):
            raise reply
        return reply


@dataclass
class FakeClock:
    now_s: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


def _register(transport: ScriptedTransport, clock: FakeClock, **overrides: object) -> None:
    options: dict[str, object] = {
        "domain": "relay.test",
        "container": "relay-1",
        "https_port": 443,
        "extra_ports": None,
        "api_key": None,
        "deadline_s": 300,
        "transport": transport,
        "sleep": clock.sleep,
        "clock": clock.now,
    }
    options.update(overrides)
    register(API, **options)  # type: ignore[arg-type]


def test_backends_url_variants() -> None:
    assert backends_url("http://h:8404") == "http://h:8404/v1/backends"
    assert backends_url("http://h:8404/") == "http://h:8404/v1/backends"
    assert backends_url("http://h:8404/v1") == "http://h:8404/v1/backends"
    assert backends_url("http://h:8404", "relay.test") == "http://h:8404/v1/backends/relay.test"


def test_register_posts_payload_with_bearer() -> None:
    transport = ScriptedTransport([Reply(201, "{}")])
    extra = [{"listen": 50001, "target": 50001, "mode": "tcp"}]

    _register(transport, FakeClock(), api_key="s3cret", extra_ports=extra, http_port=8080)

    call = transport.calls[0]
    assert (call.method, call.url) == ("POST", f"{API}/v1/backends")
    assert call.body == {
        "domain": "relay.test",
        "container": "relay-1",
        "http_port": 8080,
        "https_port": 443,
        "extra_ports": extra,
    }
    assert call.headers["Authorization"] == "Bearer s3cret"


def test_register_without_key_sends_no_authorization() -> None:
    transport = ScriptedTransport([Reply(200, "{}")])

    _register(transport, FakeClock())

    assert "Authorization" not in transport.calls[0].headers


def test_register_conflict_deletes_and_retries() -> None:
    transport = ScriptedTransport([Reply(409, "owned"), Reply(204, ""), Reply(201, "{}")])
    clock = FakeClock()

    _register(transport, clock)

    assert [(call.method, call.url) for call in transport.calls] == [
        ("POST", f"{API}/v1/backends"),
        ("DELETE", f"{API}/v1/backends/relay.test"),
        ("POST", f"{API}/v1/backends"),
    ]
    assert clock.sleeps == []


def test_register_conflict_gives_up_after_three_deletes() -> None:
    transport = ScriptedTransport([Reply(409, "owned"), Reply(204, "")] * 3 + [Reply(409, "still owned by relay-2")])

    with pytest.raises(RegistrationError) as caught:
        _register(transport, FakeClock())

    assert [call.method for call in transport.calls].count("DELETE") == 3
    assert caught.value.status == 409
    assert "still owned by relay-2" in str(caught.value)


def test_register_unauthorized_fails_at_once() -> None:
    transport = ScriptedTransport([Reply(401, '{"error": "missing or wrong API key"}')])
    clock = FakeClock()

    with pytest.raises(RegistrationError) as caught:
        _register(transport, clock, api_key="wrong")

    assert caught.value.status == 401
    assert "API key" in str(caught.value)
    assert "wrong" not in str(caught.value).replace("wrong API key", "")
    assert clock.sleeps == []


def test_register_invalid_request_fails_at_once() -> None:
    transport = ScriptedTransport([Reply(400, '{"error": "domain: invalid host name", "field": "domain"}')])
    clock = FakeClock()

    with pytest.raises(RegistrationError) as caught:
        _register(transport, clock)

    assert caught.value.status == 400
    assert "invalid host name" in str(caught.value)
    assert clock.sleeps == []


def test_register_retries_with_backoff_then_succeeds() -> None:
    transport = ScriptedTransport([ConnectionRefusedError(111, "Connection refused"), Reply(503, "starting"), Reply(201, "{}")])
    clock = FakeClock()

    _register(transport, clock)

    assert clock.sleeps == [1, 2]
    assert len(transport.calls) == 3


def test_register_backoff_is_capped_and_ends_at_deadline() -> None:
    transport = ScriptedTransport([], default=Reply(502, "bad gateway " + "x" * 1000))
    clock = FakeClock()

    with pytest.raises(RegistrationError) as caught:
        _register(transport, clock, deadline_s=120)

    assert clock.sleeps == [1, 2, 4, 8, 16, 30, 30, 29]
    assert caught.value.exit_code == 13
    assert caught.value.status == 502
    assert caught.value.url == f"{API}/v1/backends"
    assert "HTTP 502" in str(caught.value)
    assert "bad gateway" in str(caught.value)
    assert len(caught.value.reply) <= 301


def test_register_deadline_without_any_reply() -> None:
    transport = ScriptedTransport([], default=TimeoutError("timed out"))

    with pytest.raises(RegistrationError) as caught:
        _register(transport, FakeClock(), deadline_s=3)

    assert caught.value.status is None
    assert "timed out" in str(caught.value)
    assert API in str(caught.value)


def test_register_aliases_get_same_payload() -> None:
    transport = ScriptedTransport([], default=Reply(201, "{}"))

    _register(transport, FakeClock(), aliases=("nostr.test", " relay.test", "nostr.test", ""))

    primary, alias = (call.body or {} for call in transport.calls)
    assert len(transport.calls) == 2
    assert alias["domain"] == "nostr.test"
    assert primary == {**alias, "domain": "relay.test"}


@pytest.mark.parametrize("status", [200, 204, 404])
def test_unregister_done_statuses(status: int) -> None:
    transport = ScriptedTransport([Reply(status, "")])

    unregister(API, domain="relay.test", api_key="k", transport=transport, sleep=FakeClock().sleep)

    assert transport.calls[0].method == "DELETE"
    assert transport.calls[0].url == f"{API}/v1/backends/relay.test"


def test_unregister_tries_every_alias_then_raises() -> None:
    transport = ScriptedTransport([Reply(401, "no"), Reply(204, "")])

    with pytest.raises(RegistrationError) as caught:
        unregister(API, domain="relay.test", api_key=None, aliases=("nostr.test",), transport=transport)

    assert [call.url.rsplit("/", 1)[1] for call in transport.calls] == ["relay.test", "nostr.test"]
    assert caught.value.domain == "relay.test"


def test_unregister_retries_server_errors() -> None:
    transport = ScriptedTransport([Reply(500, "oops"), Reply(204, "")])
    clock = FakeClock()

    unregister(API, domain="relay.test", api_key=None, transport=transport, sleep=clock.sleep, clock=clock.now)

    assert clock.sleeps == [1]


@pytest.mark.parametrize(("status", "expected"), [(200, True), (404, False)])
def test_is_registered_statuses(status: int, expected: bool) -> None:
    transport = ScriptedTransport([Reply(status, "{}")])

    assert is_registered(API, "relay.test", None, transport=transport) is expected


@pytest.mark.parametrize("reply", [Reply(401, "no"), Reply(500, "oops"), ConnectionRefusedError(111, "refused")])
def test_is_registered_failures(reply: Reply | OSError) -> None:
    transport = ScriptedTransport([reply])

    with pytest.raises(RegistrationError):
        is_registered(API, "relay.test", "k", transport=transport)
