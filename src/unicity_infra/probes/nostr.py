"""A small blocking NIP-01 client and the websocket round-trip check a wallet depends on.

Keys are secp256k1 keys from coincurve; events are signed with BIP-340 Schnorr
signatures over the NIP-01 event id. The client opens its own TCP socket, so a
``connect`` override works as it does for the NIP-11 check in ``http.py``.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import coincurve
import websockets.sync.client

from unicity_infra.errors import SettingsError
from unicity_infra.probes.errors import (
    ProbeError,
    ProbeTimeoutError,
    ProtocolError,
    RelayRejectedError,
    mapping_errors,
)
from unicity_infra.probes.http import Endpoint, parse_endpoint
from unicity_infra.probes.report import Check, Status
from unicity_infra.probes.tls import create_ssl_context, open_tcp_connection

__all__ = [
    "generate_key",
    "public_key_hex",
    "serialize_event",
    "compute_event_id",
    "sign_event",
    "verify_event",
    "RelayConnection",
    "open_relay",
    "publish_many",
    "fetch_events",
    "probe_websocket_roundtrip",
]

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Filter = dict[str, Any]

# Kind 1 is a NIP-01 short text note, which relays accept unless a kind policy blocks it.
PROBE_KIND = 1
# Name of the step a stalled websocket opening times out in; open_relay retries only that one.
HANDSHAKE_STEP = "the websocket handshake"


def generate_key() -> coincurve.PrivateKey:
    """Generate a random secp256k1 private key."""
    return coincurve.PrivateKey()


def public_key_hex(key: coincurve.PrivateKey) -> str:
    """Return the 32-byte x-only public key of KEY as 64 lower-case hex digits, as NIP-01 writes it."""
    return key.public_key_xonly.format().hex()


def serialize_event(*, pubkey: str, created_at: int, kind: int, tags: Sequence[Sequence[str]], content: str) -> bytes:
    """Serialize the fields that NIP-01 hashes into the event id.

    The result is the UTF-8 JSON array ``[0,pubkey,created_at,kind,tags,content]``
    without whitespace and with non-ASCII characters kept as they are, e.g.
    ``[0,"ab…",1700000000,1,[],"hi"]``.
    """
    fields = [0, pubkey, created_at, kind, [list(tag) for tag in tags], content]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def compute_event_id(*, pubkey: str, created_at: int, kind: int, tags: Sequence[Sequence[str]], content: str) -> str:
    """Compute the NIP-01 event id: the hex SHA-256 of :func:`serialize_event`."""
    serialized = serialize_event(pubkey=pubkey, created_at=created_at, kind=kind, tags=tags, content=content)
    return hashlib.sha256(serialized).hexdigest()


def sign_event(
    key: coincurve.PrivateKey,
    *,
    kind: int,
    content: str,
    tags: Sequence[Sequence[str]] = (),
    created_at: int | None = None,
) -> Event:
    """Build a complete event signed by KEY; CREATED_AT defaults to now in Unix seconds."""
    pubkey = public_key_hex(key)
    timestamp = int(time.time()) if created_at is None else created_at
    event_id = compute_event_id(pubkey=pubkey, created_at=timestamp, kind=kind, tags=tags, content=content)

    signature = key.sign_schnorr(bytes.fromhex(event_id))
    return {
        "id": event_id,
        "pubkey": pubkey,
        "created_at": timestamp,
        "kind": kind,
        "tags": [list(tag) for tag in tags],
        "content": content,
        "sig": signature.hex(),
    }


def verify_event(event: Event) -> bool:
    """Tell whether EVENT's id matches its fields and its signature verifies for its pubkey."""
    try:
        expected_id = compute_event_id(
            pubkey=event["pubkey"],
            created_at=event["created_at"],
            kind=event["kind"],
            tags=event["tags"],
            content=event["content"],
        )
        if expected_id != event["id"]:
            return False
        public_key = coincurve.PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
        return public_key.verify(bytes.fromhex(event["sig"]), bytes.fromhex(event["id"]))
    except (KeyError, TypeError, ValueError):
        return False


class RelayConnection:
    """One websocket connection to a relay, speaking NIP-01.

    Messages that arrive while another response is awaited are kept. Events of open
    subscriptions are queued for :meth:`next_event`, and ``OK`` messages for other
    event ids wait for their own :meth:`publish` call. Not safe for use from two
    threads; open one connection per thread.
    """

    def __init__(
        self,
        websocket: websockets.sync.client.ClientConnection,
        endpoint: Endpoint,
        *,
        resources: contextlib.ExitStack | None = None,
        timeout_s: float,
    ) -> None:
        self._websocket = websocket
        self._endpoint = endpoint
        # What close() releases: the websocket, then its TCP socket.
        self._resources = resources
        self.timeout_s = timeout_s
        self._queued_events: dict[str, collections.deque[Event]] = {}
        self._ok_messages: dict[str, tuple[bool, str]] = {}
        self._finished_subscriptions: dict[str, str | None] = {}
        self.notices: list[str] = []

    def __enter__(self) -> RelayConnection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def endpoint(self) -> Endpoint:
        """The URL and the address this connection went to."""
        return self._endpoint

    def close(self) -> None:
        """Close the websocket; a second call does nothing."""
        if self._resources is not None:
            self._resources.close()
        else:
            self._websocket.close()

    def publish(self, event: Event, *, timeout_s: float | None = None) -> tuple[bool, str]:
        """Send EVENT and wait for the relay's ``OK``; return whether it was accepted, and its message."""
        event_id = event["id"]
        self._send(["EVENT", event], step=f"publishing event {event_id}")

        self._wait(lambda: event_id in self._ok_messages, step=f"the OK for event {event_id}", timeout_s=timeout_s)
        accepted, message = self._ok_messages.pop(event_id)
        logger.debug("relay %s sent OK %s for event %s: %s", self._endpoint.url, accepted, event_id, message)
        return accepted, message

    def subscribe(
        self, filters: Sequence[Filter], *, subscription_id: str | None = None, timeout_s: float | None = None
    ) -> list[Event]:
        """Open a subscription and return the stored events the relay sends before ``EOSE``.

        The subscription stays open: events published later are queued for
        :meth:`next_event` until :meth:`unsubscribe`. Raises :class:`ProtocolError`
        when the relay sends ``CLOSED``.
        """
        subscription = subscription_id or secrets.token_hex(8)
        self._queued_events[subscription] = collections.deque()
        self._send(["REQ", subscription, *filters], step=f"opening subscription {subscription}")

        self._wait(
            lambda: subscription in self._finished_subscriptions,
            step=f"EOSE of subscription {subscription}",
            timeout_s=timeout_s,
        )
        closed_reason = self._finished_subscriptions[subscription]
        if closed_reason is not None:
            self._queued_events.pop(subscription, None)
            raise ProtocolError(
                self._endpoint.address, f"relay closed subscription {subscription}: {closed_reason!r}"
            )

        stored = list(self._queued_events[subscription])
        self._queued_events[subscription].clear()
        return stored

    def next_event(self, subscription_id: str, *, timeout_s: float | None = None) -> Event:
        """Return the next event of an open subscription, waiting for one to arrive."""
        queue = self._queued_events.get(subscription_id)
        if queue is None:
            raise ValueError(f"subscription {subscription_id!r} is not open; call subscribe() first")
        self._wait(lambda: bool(queue), step=f"an event on subscription {subscription_id}", timeout_s=timeout_s)
        return queue.popleft()

    def unsubscribe(self, subscription_id: str) -> None:
        """Send ``CLOSE`` for a subscription and drop its queued events."""
        self._send(["CLOSE", subscription_id], step=f"closing subscription {subscription_id}")
        self._queued_events.pop(subscription_id, None)
        self._finished_subscriptions.pop(subscription_id, None)

    def _send(self, message: list[Any], *, step: str) -> None:
        with mapping_errors(step=step, address=self._endpoint.address, timeout_s=self.timeout_s):
            self._websocket.send(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    def _wait(self, is_done: Callable[[], bool], *, step: str, timeout_s: float | None) -> None:
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit_s
        notices_before = len(self.notices)
        while not is_done():
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise self._timeout_error(step, limit_s, self.notices[notices_before:])
            with mapping_errors(step=step, address=self._endpoint.address, timeout_s=limit_s):
                try:
                    text = self._websocket.recv(timeout=remaining_s)
                except TimeoutError:
                    raise self._timeout_error(step, limit_s, self.notices[notices_before:]) from None
            self._dispatch(text)

    def _timeout_error(self, step: str, limit_s: float, notices: list[str]) -> ProbeError:
        if notices:
            # nostr-rs-relay 0.8.12 sends a NOTICE ("could not parse command"), not
            # CLOSED, for a REQ it cannot parse, so the NOTICE is the only reason given.
            return ProtocolError(
                self._endpoint.address,
                f"timed out after {limit_s:g} s waiting for {step}; the relay sent NOTICE {notices[-1]!r}",
            )
        return ProbeTimeoutError(step, self._endpoint.address, limit_s)

    def _dispatch(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            raise ProtocolError(self._endpoint.address, f"relay sent a message that is not JSON: {text[:80]!r}") from exc
        if not isinstance(message, list) or not message or not isinstance(message[0], str):
            raise ProtocolError(self._endpoint.address, f"relay sent a message that is not a NIP-01 array: {text[:80]!r}")

        match message:
            case ["EVENT", str(subscription), dict(event)]:
                self._queue_event(subscription, event)
            case ["OK", str(event_id), bool(accepted), *rest]:
                self._ok_messages[event_id] = (accepted, str(rest[0]) if rest else "")
            case ["EOSE", str(subscription)]:
                self._finished_subscriptions[subscription] = None
            case ["CLOSED", str(subscription), *rest]:
                self._finished_subscriptions[subscription] = str(rest[0]) if rest else ""
            case ["NOTICE", *rest]:
                logger.info("relay %s sent NOTICE: %s", self._endpoint.url, rest[0] if rest else "")
                self.notices.append(str(rest[0]) if rest else "")
            case _:
                logger.debug("ignored relay message %s from %s", message[0], self._endpoint.url)

    def _queue_event(self, subscription: str, event: Event) -> None:
        queue = self._queued_events.get(subscription)
        if queue is None:
            logger.debug("dropped event for closed subscription %s from %s", subscription, self._endpoint.url)
            return
        queue.append(event)


def open_relay(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> RelayConnection:
    """Open a websocket to the relay at URL (``ws://`` or ``wss://``).

    With CONNECT the TCP connection goes to that host and port, while SNI, the
    Host header and the certificate check use the URL's host name. TIMEOUT_S
    bounds the opening and, by default, every later wait. A handshake that
    times out is tried once more on a new connection: on a busy Docker host a
    connection through a published port can stall while the next one goes
    through. Raises :class:`ProbeError` when the connection cannot be opened.
    """
    endpoint = parse_endpoint(url, connect=connect)
    if not url.lower().startswith(("ws://", "wss://")):
        raise SettingsError("relay URL", url, "a websocket needs a ws:// or wss:// URL")
    context = create_ssl_context(ca_file=ca_file, insecure=insecure) if endpoint.is_tls else None

    # NOTE: during such a stall the first attempt was seen to return only after about 60 s, not TIMEOUT_S;
    # where that wait happens (possibly closing the stalled socket) is not known.
    try:
        return _open_websocket(url, endpoint, context, timeout_s=timeout_s)
    except ProbeTimeoutError as exc:
        if exc.step != HANDSHAKE_STEP:
            raise
        logger.warning("websocket handshake with %s%s timed out after %.0f s; trying once more on a new connection",
                       url, endpoint.via, timeout_s)
    return _open_websocket(url, endpoint, context, timeout_s=timeout_s)


def _open_websocket(url: str, endpoint: Endpoint, context: ssl.SSLContext | None, *, timeout_s: float) -> RelayConnection:
    tcp = open_tcp_connection(endpoint.connect_host, endpoint.connect_port, timeout_s=timeout_s)
    # websockets bounds the handshakes with its own deadline, and its reader thread
    # needs a blocking socket, because a socket timeout would end an idle connection.
    tcp.settimeout(None)
    resources = contextlib.ExitStack()
    resources.callback(tcp.close)
    try:
        with mapping_errors(step=HANDSHAKE_STEP, address=endpoint.address, timeout_s=timeout_s):
            # Entered as a context manager: websockets 17 warns when connect() is not.
            websocket = resources.enter_context(
                websockets.sync.client.connect(
                    url,
                    sock=tcp,
                    ssl=context,
                    server_hostname=endpoint.host if endpoint.is_tls else None,
                    open_timeout=timeout_s,
                    close_timeout=min(timeout_s, 2.0),
                )
            )
    except BaseException:
        resources.close()
        raise

    logger.debug("opened websocket to %s%s", url, endpoint.via)
    return RelayConnection(websocket, endpoint, resources=resources, timeout_s=timeout_s)


def publish_many(
    url: str,
    count: int,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    kind: int = PROBE_KIND,
    timeout_s: float = 10.0,
) -> list[str]:
    """Publish COUNT signed events of KIND from one fresh key, one after another; return their ids.

    Each event waits for its ``OK`` before the next is sent. Raises
    :class:`RelayRejectedError` on the first event the relay rejects.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")

    key = generate_key()
    run_tag = secrets.token_hex(4)
    event_ids: list[str] = []
    with open_relay(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s) as relay:
        for index in range(count):
            event = sign_event(key, kind=kind, content=f"unicity-infra test event {run_tag} {index + 1}/{count}")
            accepted, message = relay.publish(event)
            if not accepted:
                raise RelayRejectedError(relay.endpoint.address, event["id"], message)
            event_ids.append(event["id"])

    logger.debug("published %d events of kind %d to %s", count, kind, url)
    return event_ids


def fetch_events(
    url: str,
    filters: Iterable[Filter],
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> list[Event]:
    """Return the stored events matching FILTERS, as sent before ``EOSE``."""
    with open_relay(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s) as relay:
        return relay.subscribe(list(filters))


def probe_websocket_roundtrip(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> list[Check]:
    """Check what a wallet does first: open a websocket, publish a signed note, read it back.

    Returns the checks ``websocket open``, ``publish event`` and ``subscription``,
    stopping after the first that fails.
    """
    started = time.monotonic()
    try:
        relay = open_relay(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s)
    except ProbeError as exc:
        return [Check("websocket open", Status.FAIL, str(exc), _since(started))]
    checks = [Check("websocket open", Status.OK, f"connected to {url}{relay.endpoint.via}", _since(started))]

    with relay:
        event = sign_event(generate_key(), kind=PROBE_KIND, content=f"unicity-infra probe {secrets.token_hex(8)}")
        checks.append(_publish_check(relay, event))
        if checks[-1].status is Status.OK:
            checks.append(_subscription_check(relay, event))
    return checks


def _publish_check(relay: RelayConnection, event: Event) -> Check:
    started = time.monotonic()
    try:
        accepted, message = relay.publish(event)
    except ProbeError as exc:
        return Check("publish event", Status.FAIL, str(exc), _since(started))

    if not accepted:
        detail = f"relay rejected kind-{event['kind']} event {event['id']}: {message!r}; check the relay's kind policy"
        return Check("publish event", Status.FAIL, detail, _since(started))
    suffix = f" ({message})" if message else ""
    return Check("publish event", Status.OK, f"relay accepted event {event['id']}{suffix}", _since(started))


def _subscription_check(relay: RelayConnection, event: Event) -> Check:
    started = time.monotonic()
    filters = [{"ids": [event["id"]], "authors": [event["pubkey"]]}]
    try:
        stored = relay.subscribe(filters)
    except ProbeError as exc:
        return Check("subscription", Status.FAIL, str(exc), _since(started))

    matching = [candidate for candidate in stored if candidate.get("id") == event["id"]]
    if not matching:
        detail = f"EOSE arrived after {len(stored)} event(s), none with the published id {event['id']}"
        return Check("subscription", Status.FAIL, detail, _since(started))
    if not verify_event(matching[0]) or matching[0].get("content") != event["content"]:
        detail = f"relay returned event {event['id']} with changed fields or an invalid signature"
        return Check("subscription", Status.FAIL, detail, _since(started))
    return Check("subscription", Status.OK, f"received event {event['id']}, then EOSE", _since(started))


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
