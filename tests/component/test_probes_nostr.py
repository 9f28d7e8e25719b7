"""The NIP-01 client and the websocket round trip against the real nostr-rs-relay on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.component.probes_support import (
    CertificateFiles,
    NIP11Server,
    ThrowawayCA,
    find_relay_binary,
    free_port,
    https_nip11_server,
    run_nginx_tls_proxy,
    run_relay,
)
from unicity_infra.probes.errors import (
    ProbeTimeoutError,
    ProtocolError,
    RelayRejectedError,
)
from unicity_infra.probes.nostr import (
    fetch_events,
    generate_key,
    open_relay,
    probe_websocket_roundtrip,
    publish_many,
    sign_event,
    verify_event,
)
from unicity_infra.probes.report import Status

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def relay_binary() -> Path:
    return find_relay_binary()


@pytest.fixture(scope="module")
def relay_url(relay_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_relay(relay_binary, tmp_path_factory.mktemp("relay")) as port:
        yield f"ws://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return ThrowawayCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_port(
    relay_url: str, ca: ThrowawayCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    files: CertificateFiles = ca.issue("relay", dns_names=("relay.test",))
    relay_port = int(relay_url.rsplit(":", 1)[1])
    with run_nginx_tls_proxy(files, relay_port, tmp_path_factory.mktemp("nginx")) as port:
        yield port


def test_probe_websocket_roundtrip_real_relay(relay_url: str) -> None:
    checks = probe_websocket_roundtrip(relay_url, timeout_s=5)

    assert [check.name for check in checks] == ["websocket open", "publish event", "subscription"]
    assert [check.status for check in checks] == [Status.OK] * 3, [check.detail for check in checks]
    assert "then EOSE" in checks[2].detail


def test_probe_websocket_roundtrip_through_tls_with_connect(tls_port: int, ca: ThrowawayCA) -> None:
    checks = probe_websocket_roundtrip(
        "wss://relay.test", connect=("127.0.0.1", tls_port), ca_file=ca.cert_file, timeout_s=5
    )

    assert [check.status for check in checks] == [Status.OK] * 3, [check.detail for check in checks]
    assert f"via 127.0.0.1:{tls_port}" in checks[0].detail


def test_probe_websocket_roundtrip_untrusted_tls_fails(tls_port: int) -> None:
    checks = probe_websocket_roundtrip("wss://relay.test", connect=("127.0.0.1", tls_port), timeout_s=5)

    assert len(checks) == 1
    assert checks[0].status is Status.FAIL
    assert "TLS verify failed" in checks[0].detail


def test_probe_websocket_roundtrip_closed_port_fails() -> None:
    port = free_port()

    checks = probe_websocket_roundtrip(f"ws://127.0.0.1:{port}", timeout_s=5)

    assert len(checks) == 1
    assert checks[0].status is Status.FAIL
    assert f"connection refused to 127.0.0.1:{port}" in checks[0].detail


def test_probe_websocket_roundtrip_not_a_relay_fails(ca: ThrowawayCA) -> None:
    files = ca.issue("web", dns_names=("web.test",))
    server: NIP11Server
    with https_nip11_server(files) as server:
        checks = probe_websocket_roundtrip(
            "wss://web.test", connect=("127.0.0.1", server.server_port), ca_file=ca.cert_file, timeout_s=5
        )

    assert checks[0].status is Status.FAIL
    assert "websocket upgrade rejected with HTTP 200" in checks[0].detail


def test_probe_websocket_roundtrip_blocked_kind_fails(relay_binary: Path, tmp_path: Path) -> None:
    # An allowlist without kind 1 is the policy that once made the faucet fail.
    with run_relay(relay_binary, tmp_path, limits="event_kind_allowlist = [30078]") as port:
        checks = probe_websocket_roundtrip(f"ws://127.0.0.1:{port}", timeout_s=5)

    assert [check.status for check in checks] == [Status.OK, Status.FAIL]
    assert "relay rejected kind-1 event" in checks[1].detail
    assert "blocked" in checks[1].detail


def test_publish_many_then_fetch_events(relay_url: str) -> None:
    event_ids = publish_many(relay_url, 20, timeout_s=5)

    events = fetch_events(relay_url, [{"ids": event_ids}], timeout_s=5)

    assert len(event_ids) == 20
    assert len(set(event_ids)) == 20
    assert {event["id"] for event in events} == set(event_ids)
    assert all(verify_event(event) for event in events)


def test_publish_many_other_kind(relay_url: str) -> None:
    event_ids = publish_many(relay_url, 2, kind=30078, timeout_s=5)

    events = fetch_events(relay_url, [{"ids": event_ids}], timeout_s=5)

    assert {event["kind"] for event in events} == {30078}


def test_publish_many_rejected_kind_raises(relay_binary: Path, tmp_path: Path) -> None:
    with run_relay(relay_binary, tmp_path, limits="event_kind_allowlist = [30078]") as port:
        with pytest.raises(RelayRejectedError, match="blocked"):
            publish_many(f"ws://127.0.0.1:{port}", 3, kind=1, timeout_s=5)


def test_relay_connection_receives_live_event(relay_url: str) -> None:
    key = generate_key()
    event = sign_event(key, kind=1, content="live event")
    with open_relay(relay_url, timeout_s=5) as subscriber, open_relay(relay_url, timeout_s=5) as publisher:
        stored = subscriber.subscribe([{"authors": [event["pubkey"]]}], subscription_id="live")
        accepted, _ = publisher.publish(event)
        received = subscriber.next_event("live")

    assert stored == []
    assert accepted is True
    assert received["id"] == event["id"]


def test_relay_connection_next_event_times_out(relay_url: str) -> None:
    with open_relay(relay_url, timeout_s=5) as relay:
        relay.subscribe([{"authors": [generate_key().public_key_xonly.format().hex()]}], subscription_id="quiet")

        with pytest.raises(ProbeTimeoutError, match="timed out after 0.3 s waiting for an event on subscription quiet"):
            relay.next_event("quiet", timeout_s=0.3)


def test_relay_connection_duplicate_event_is_accepted(relay_url: str) -> None:
    event = sign_event(generate_key(), kind=1, content="sent twice")
    with open_relay(relay_url, timeout_s=5) as relay:
        first = relay.publish(event)
        second = relay.publish(event)

    assert first[0] is True
    assert second[0] is True
    assert second[1].startswith("duplicate:")


def test_relay_connection_unparsable_request_names_notice(relay_url: str) -> None:
    with open_relay(relay_url, timeout_s=1) as relay:
        with pytest.raises(ProtocolError, match="the relay sent NOTICE 'could not parse command'"):
            relay.subscribe(["not-a-filter"], subscription_id="broken")  # type: ignore[list-item]
