"""Unit tests of the container's side of the edge (container/edge_link.py) over a scripted transport."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from unicity_infra.container.config import load_config
from unicity_infra.container.edge_link import EdgeAdvertisement, EdgeLink, read_api_key
from unicity_infra.container.registration import RegistrationError, Reply

API = "http://edge.test:8404"
DOMAIN = "relay.example.org"
ALIAS = "nostr.example.org"


@dataclass
class FakeEdge:
    """A handler standing in for the edge API: keeps registrations in a dict and records every request."""

    backends: dict[str, dict[str, object]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    advertisement: Reply | None = None
    delay_s: float = 0.0

    def __call__(self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout_s: float) -> Reply:
        path = url.removeprefix(API)
        self.requests.append((method, path))
        if self.delay_s:
            time.sleep(self.delay_s)
        if path == "/v1/edge":
            return self.advertisement or Reply(404, "{}")
        if method == "POST":
            document = json.loads(body or b"{}")
            self.backends[document["domain"]] = document
            return Reply(201, json.dumps(document))
        domain = path.removeprefix("/v1/backends/")
        if method == "GET":
            found = self.backends.get(domain)
            return Reply(200, json.dumps(found)) if found else Reply(404, '{"error": "not found"}')
        if method == "DELETE":
            return Reply(204, "") if self.backends.pop(domain, None) else Reply(404, "{}")
        return Reply(405, "{}")


def make_link(edge: Callable[..., Reply], *, names: tuple[str, ...] = (DOMAIN, ALIAS)) -> EdgeLink:
    return EdgeLink(api_url=API, api_key="secret", container="relay-1", names=names, http_port=80, transport=edge)


def test_register_phases_update_every_name() -> None:
    edge = FakeEdge()
    link = make_link(edge)

    link.register(https_port=None)
    phase_1 = {name: entry["https_port"] for name, entry in edge.backends.items()}
    link.register(https_port=443)

    assert phase_1 == {DOMAIN: None, ALIAS: None}
    assert {name: entry["https_port"] for name, entry in edge.backends.items()} == {DOMAIN: 443, ALIAS: 443}
    assert link.https_port == 443


def test_repair_registers_lost_names_with_current_phase() -> None:
    edge = FakeEdge()
    link = make_link(edge)
    link.register(https_port=443)
    edge.backends.clear()

    repaired = link.repair()

    assert repaired == [DOMAIN, ALIAS]
    assert edge.backends[DOMAIN]["https_port"] == 443
    assert edge.backends[ALIAS]["container"] == "relay-1"


def test_repair_updates_registration_of_older_phase() -> None:
    edge = FakeEdge()
    link = make_link(edge, names=(DOMAIN,))
    link.register(https_port=443)
    edge.backends[DOMAIN]["https_port"] = None

    assert link.repair() == [DOMAIN]
    assert edge.backends[DOMAIN]["https_port"] == 443


def test_repair_leaves_current_registrations_alone() -> None:
    edge = FakeEdge()
    link = make_link(edge)
    link.register(https_port=443)
    edge.requests.clear()

    assert link.repair() == []
    assert [method for method, _ in edge.requests] == ["GET", "GET"]


def test_repair_leaves_foreign_owner_alone(caplog: pytest.LogCaptureFixture) -> None:
    edge = FakeEdge()
    link = make_link(edge, names=(DOMAIN,))
    link.register(https_port=443)
    edge.backends[DOMAIN]["container"] = "relay-2"

    first = link.repair()
    second = link.repair()

    assert first == second == []
    assert edge.backends[DOMAIN]["container"] == "relay-2"
    assert caplog.text.count("now registered to container relay-2") == 1


def test_repair_before_registration_does_nothing() -> None:
    edge = FakeEdge()

    assert make_link(edge).repair() == []
    assert edge.requests == []


def test_repair_edge_down_raises() -> None:
    def refused(*_: object) -> Reply:
        raise ConnectionRefusedError("connection refused")

    edge = FakeEdge()
    link = make_link(edge)
    link.register(https_port=None)
    link._transport = refused  # the edge goes away after the registration

    with pytest.raises(RegistrationError, match="connection refused"):
        link.repair()


def test_leave_removes_only_own_registrations() -> None:
    edge = FakeEdge()
    link = make_link(edge)
    link.register(https_port=443)
    edge.backends[ALIAS]["container"] = "relay-2"

    removed_all = link.leave(deadline_s=3.0)

    assert removed_all is True
    assert DOMAIN not in edge.backends
    assert edge.backends[ALIAS]["container"] == "relay-2"
    assert link.repair() == []


def test_leave_is_bounded_by_deadline() -> None:
    edge = FakeEdge()
    link = make_link(edge)
    link.register(https_port=443)
    edge.delay_s = 5.0

    started = time.monotonic()
    removed_all = link.leave(deadline_s=0.5)

    assert removed_all is False
    assert time.monotonic() - started < 1.5


def test_leave_without_registration_sends_nothing() -> None:
    edge = FakeEdge()

    assert make_link(edge).leave() is True
    assert edge.requests == []


def test_fetch_advertisement_reads_edge_document() -> None:
    document = {"acme_directory": "https://haproxy:14000/dir", "acme_ca_pem": "PEM", "ca_bundle_pem": "", "ca_bundle_url": None}
    edge = FakeEdge(advertisement=Reply(200, json.dumps(document)))

    advertisement = make_link(edge).fetch_advertisement()

    assert advertisement == EdgeAdvertisement(acme_directory="https://haproxy:14000/dir", acme_ca_pem="PEM", ca_bundle_pem=None)


@pytest.mark.parametrize("status", [401, 404, 405])
def test_fetch_advertisement_client_error_means_none(status: int) -> None:
    edge = FakeEdge(advertisement=Reply(status, "{}"))

    assert make_link(edge).fetch_advertisement() is None


@pytest.mark.parametrize(("reply", "message"), [(Reply(502, ""), "HTTP 502"), (Reply(200, "<html>"), "invalid JSON")])
def test_fetch_advertisement_bad_reply_raises(reply: Reply, message: str) -> None:
    edge = FakeEdge(advertisement=reply)

    with pytest.raises(ValueError, match=message):
        make_link(edge).fetch_advertisement()


def test_from_config_needs_host_and_domain(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k\n")
    environ = {"SSL_DOMAIN": DOMAIN, "HAPROXY_HOST": "haproxy", "HAPROXY_API_KEY_FILE": str(key_file),
               "UNICITY_CONTAINER_NAME": "relay-1", "EXTRA_PORTS": '[{"listen": 50001, "target": 50001, "mode": "tcp"}]'}

    link = EdgeLink.from_config(load_config(environ))

    assert EdgeLink.from_config(load_config({"SSL_DOMAIN": DOMAIN})) is None
    assert EdgeLink.from_config(load_config({"HAPROXY_HOST": "haproxy"})) is None
    assert link is not None
    assert link.api_url == "http://haproxy:8404"
    assert link.container == "relay-1"
    assert link.extra_ports == [{"listen": 50001, "target": 50001, "mode": "tcp"}]


@pytest.mark.parametrize(("content", "message"), [(None, "cannot read the edge API key file"), ("  \n", "is empty")])
def test_read_api_key_unusable_file(tmp_path: Path, content: str | None, message: str) -> None:
    key_file = tmp_path / "key"
    if content is not None:
        key_file.write_text(content)

    with pytest.raises(RegistrationError, match=message) as caught:
        read_api_key(key_file, api_url=API)

    assert caught.value.exit_code == 13


def test_register_and_repair_do_not_overlap() -> None:
    edge = FakeEdge(delay_s=0.05)
    link = make_link(edge, names=(DOMAIN,))
    link.register(https_port=None)
    edge.backends.clear()

    phase_2 = threading.Thread(target=link.register, kwargs={"https_port": 443})
    phase_2.start()
    link.repair()
    phase_2.join()

    assert edge.backends[DOMAIN]["https_port"] == 443
