"""NIP-01 event ids and BIP-340 signatures, and the client's message handling over a scripted websocket."""

from __future__ import annotations

import collections
import hashlib
import json

import coincurve
import pytest

from unicity_infra.probes.errors import ProbeTimeoutError, ProtocolError
from unicity_infra.probes.http import parse_endpoint
from unicity_infra.probes.nostr import (
    RelayConnection,
    compute_event_id,
    public_key_hex,
    serialize_event,
    sign_event,
    verify_event,
)

# The x coordinate of the secp256k1 generator G, i.e. the x-only public key of secret 1.
GENERATOR_X = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
SECRET_ONE = coincurve.PrivateKey((1).to_bytes(32, "big"))


def test_public_key_hex_secret_one() -> None:
    assert public_key_hex(SECRET_ONE) == GENERATOR_X


def test_serialize_event_has_no_whitespace() -> None:
    serialized = serialize_event(pubkey=GENERATOR_X, created_at=1700000000, kind=1, tags=[], content="hello")

    assert serialized == f'[0,"{GENERATOR_X}",1700000000,1,[],"hello"]'.encode()


def test_compute_event_id_matches_sha256sum_vector() -> None:
    # printf '%s' '[0,"79be…1798",1700000000,1,[],"hello"]' | sha256sum
    event_id = compute_event_id(pubkey=GENERATOR_X, created_at=1700000000, kind=1, tags=[], content="hello")

    assert event_id == "bde202ea7642ff9910600c7edc948a1f4220f0cbf5e4fb2b7efafa681bbb5285"


def test_serialize_event_escapes_and_keeps_utf8() -> None:
    tags = [["e", "f" * 64], ["p", "abc"]]
    content = 'line\n"quoted" \\ café'

    serialized = serialize_event(pubkey=GENERATOR_X, created_at=1700000000, kind=1, tags=tags, content=content)

    expected_text = (
        f'[0,"{GENERATOR_X}",1700000000,1,[["e","{"f" * 64}"],["p","abc"]],'
        '"line\\n\\"quoted\\" \\\\ café"]'
    )
    assert serialized == expected_text.encode("utf-8")
    assert hashlib.sha256(serialized).hexdigest() == "129f6cae7c85ece4a5f3b3196deac8ed12e37ec39030d682645ebd86acb41dde"


def test_sign_event_signature_verifies_with_coincurve() -> None:
    event = sign_event(SECRET_ONE, kind=1, content="hello", created_at=1700000000)
    public_key = coincurve.PublicKeyXOnly(bytes.fromhex(event["pubkey"]))

    assert event["id"] == "bde202ea7642ff9910600c7edc948a1f4220f0cbf5e4fb2b7efafa681bbb5285"
    assert len(event["sig"]) == 128
    assert public_key.verify(bytes.fromhex(event["sig"]), bytes.fromhex(event["id"]))


def test_verify_event_accepts_signed_event() -> None:
    event = sign_event(coincurve.PrivateKey(), kind=30078, content="x", tags=[["d", "name"]])

    assert verify_event(event) is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content", "changed"),
        ("kind", 4),
        ("created_at", 1),
        ("sig", "00" * 64),
        ("pubkey", GENERATOR_X),
        ("id", "zz"),
    ],
)
def test_verify_event_rejects_changed_field(field: str, value: object) -> None:
    event = sign_event(coincurve.PrivateKey(), kind=1, content="original", created_at=1700000000)
    event[field] = value

    assert verify_event(event) is False


def test_verify_event_rejects_missing_field() -> None:
    event = sign_event(coincurve.PrivateKey(), kind=1, content="original")
    del event["sig"]

    assert verify_event(event) is False


class ScriptedWebsocket:
    """Stands in for a websocket: recv() returns scripted relay messages, send() records."""

    def __init__(self, messages: list[list[object]]) -> None:
        self.incoming = collections.deque(json.dumps(message) for message in messages)
        self.sent: list[list[object]] = []
        self.closed = False

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def recv(self, timeout: float | None = None) -> str:
        if not self.incoming:
            raise TimeoutError
        return self.incoming.popleft()

    def close(self) -> None:
        self.closed = True


def _connection(messages: list[list[object]]) -> tuple[RelayConnection, ScriptedWebsocket]:
    websocket = ScriptedWebsocket(messages)
    endpoint = parse_endpoint("ws://127.0.0.1:7777")
    return RelayConnection(websocket, endpoint, timeout_s=0.2), websocket  # type: ignore[arg-type]


def test_publish_keeps_ok_for_other_event() -> None:
    event = sign_event(SECRET_ONE, kind=1, content="hello", created_at=1700000000)
    relay, websocket = _connection(
        [["OK", "other", True, ""], ["NOTICE", "slow down"], ["OK", event["id"], False, "blocked: kind 1"]]
    )

    accepted, message = relay.publish(event)

    assert websocket.sent == [["EVENT", event]]
    assert accepted is False
    assert message == "blocked: kind 1"
    assert relay.notices == ["slow down"]


def test_subscribe_returns_stored_events_and_queues_live_ones() -> None:
    stored = {"id": "1"}
    live = {"id": "2"}
    relay, websocket = _connection(
        [["EVENT", "s", stored], ["EVENT", "unknown", {"id": "x"}], ["EOSE", "s"], ["EVENT", "s", live]]
    )

    events = relay.subscribe([{"kinds": [1]}], subscription_id="s")

    assert websocket.sent == [["REQ", "s", {"kinds": [1]}]]
    assert events == [stored]
    assert relay.next_event("s") == live


def test_subscribe_closed_raises_protocol_error() -> None:
    relay, _ = _connection([["CLOSED", "s", "auth-required: log in first"]])

    with pytest.raises(ProtocolError, match="relay closed subscription s: 'auth-required: log in first'"):
        relay.subscribe([{"kinds": [1]}], subscription_id="s")


def test_subscribe_timeout_names_the_notice() -> None:
    relay, _ = _connection([["NOTICE", "invalid filter"]])

    with pytest.raises(ProtocolError, match="the relay sent NOTICE 'invalid filter'"):
        relay.subscribe([{"bogus": True}], subscription_id="s")


def test_publish_timeout_raises_probe_timeout() -> None:
    event = sign_event(SECRET_ONE, kind=1, content="hello")
    relay, _ = _connection([])

    with pytest.raises(ProbeTimeoutError, match=r"timed out after 0.2 s waiting for the OK for event"):
        relay.publish(event)


@pytest.mark.parametrize("message", ["not json", '{"an": "object"}', "[]", "[1, 2]"])
def test_dispatch_rejects_non_nip01_message(message: str) -> None:
    relay, websocket = _connection([])
    websocket.incoming.append(message)

    with pytest.raises(ProtocolError, match="relay sent a message that is not"):
        relay.subscribe([{}], subscription_id="s")


def test_unsubscribe_sends_close_and_drops_queue() -> None:
    relay, websocket = _connection([["EOSE", "s"]])
    relay.subscribe([{}], subscription_id="s")

    relay.unsubscribe("s")

    assert websocket.sent[-1] == ["CLOSE", "s"]
    with pytest.raises(ValueError, match="subscription 's' is not open"):
        relay.next_event("s")


def test_close_closes_websocket() -> None:
    relay, websocket = _connection([])

    with relay:
        pass

    assert websocket.closed is True
