"""The wallet's view of a stack: the four URLs its Settings dialog takes, each checked as the wallet uses it.

The aggregator must return its block height for ``get_block_height``, the
relay must end a subscription with ``EOSE``, the faucet must publish its
discovery document and the trust base must load. Every step reuses the single-service probes; this
module only decides which URL is checked where, and in what order.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from unicity_infra.errors import SettingsError
from unicity_infra.probes.errors import ProbeError
from unicity_infra.probes.faucet import DM_KIND, discovery_url_of, probe_discovery
from unicity_infra.probes.http import parse_endpoint
from unicity_infra.probes.jsonrpc import JsonRpcClient
from unicity_infra.probes.nostr import open_relay
from unicity_infra.probes.report import Check, Report, Status
from unicity_infra.probes.tls import probe_tcp, probe_tls
from unicity_infra.probes.trust_base import (
    TrustBaseError,
    parse_trust_base,
    trust_base_sha256,
)

__all__ = [
    "ROLES",
    "WalletEndpoints",
    "check_wallet_url",
    "merge_endpoints",
    "probe_wallet",
    "probe_wallet_aggregator",
    "probe_wallet_faucet",
    "probe_wallet_relay",
    "probe_wallet_trust_base",
]

logger = logging.getLogger(__name__)

# In the order the Settings dialog lists them, and the order they are probed.
ROLES = ("aggregator", "relay", "faucet", "trust base")
_FLAGS = {"aggregator": "--aggregator-url", "relay": "--relay-url", "faucet": "--faucet-url",
          "trust base": "--trust-base-url"}
_DECIMAL = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class WalletEndpoints:
    """The four URLs, by role, and how to reach each of them.

    ``connect`` maps a role to the ``HOST:PORT`` its TCP connections go to
    instead of the URL's host, for example the local edge's published HTTPS
    port. The URL's host stays the TLS server name and the Host header.
    ``missing`` gives, by role, the reason a URL is absent.
    """

    urls: dict[str, str] = field(default_factory=dict)
    connect: dict[str, tuple[str, int]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    ca_file: Path | None = None
    expected_network_id: int | None = None


def check_wallet_url(role: str, url: str) -> str:
    """Return URL if its scheme suits ROLE: ws or wss for the relay, http or https for the others.

    Raises :class:`SettingsError` naming the flag of ROLE.
    """
    option = _FLAGS[role]
    parts = urllib.parse.urlsplit(url)
    schemes = ("ws", "wss") if role == "relay" else ("http", "https")
    if parts.scheme.lower() not in schemes or not parts.hostname:
        example = {"aggregator": "https://aggregator.example.org", "relay": "wss://relay.example.org",
                   "faucet": "https://faucet.example.org",
                   "trust base": "https://aggregator.example.org/.well-known/trust-base.json"}[role]
        raise SettingsError(option, url, f"expected a {' or '.join(s + '://' for s in schemes)} URL such as {example}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise SettingsError(option, url, f"the port is invalid ({exc})") from exc
    return url


def merge_endpoints(
    *,
    recorded: dict[str, str | None],
    overrides: dict[str, str | None],
    recorded_from: str,
    edge_connect: tuple[str, int] | None = None,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    recorded_network_id: int | None = None,
) -> WalletEndpoints:
    """Merge the URLs a stack recorded with the URLs given as flags; a flag wins for its role only.

    EDGE_CONNECT, the local edge's published HTTPS address, is used for every
    URL whose host is one the stack recorded, so a flag naming another server
    is not sent to the edge. CONNECT, given by the user, applies to every URL.
    RECORDED_NETWORK_ID is expected of the trust base only when its URL is the
    recorded one. RECORDED_FROM names the source in the reasons for missing URLs.
    """
    urls: dict[str, str] = {}
    missing: dict[str, str] = {}
    for role in ROLES:
        url = overrides.get(role) or recorded.get(role)
        if url:
            urls[role] = url
        else:
            missing[role] = f"no {role} URL: {recorded_from}, and {_FLAGS[role]} was not given"

    recorded_hosts = {urllib.parse.urlsplit(url).hostname for url in recorded.values() if url}
    connects: dict[str, tuple[str, int]] = {}
    for role, url in urls.items():
        if connect is not None:
            connects[role] = connect
        elif edge_connect is not None and urllib.parse.urlsplit(url).hostname in recorded_hosts:
            connects[role] = edge_connect

    trust_base_is_recorded = "trust base" in urls and urls["trust base"] == recorded.get("trust base")
    return WalletEndpoints(
        urls=urls,
        connect=connects,
        missing=missing,
        ca_file=ca_file,
        expected_network_id=recorded_network_id if trust_base_is_recorded else None,
    )


def probe_wallet(endpoints: WalletEndpoints, *, timeout_s: float = 10.0) -> list[Report]:
    """Check the four endpoints in the order of :data:`ROLES` and return one report per role.

    A role without a URL gets a report with one warning that gives the reason,
    so a stack started without its faucet is reported, not failed.
    """
    probes = {
        "aggregator": probe_wallet_aggregator,
        "relay": probe_wallet_relay,
        "faucet": probe_wallet_faucet,
        "trust base": probe_wallet_trust_base,
    }
    reports: list[Report] = []
    for role in ROLES:
        url = endpoints.urls.get(role)
        if url is None:
            reason = endpoints.missing.get(role, f"no {role} URL given")
            reports.append(Report(target=f"{role}: -", checks=(Check("URL", Status.WARN, f"not checked: {reason}"),)))
            continue
        options: dict[str, object] = {"connect": endpoints.connect.get(role), "ca_file": endpoints.ca_file,
                                      "timeout_s": timeout_s}
        if role == "trust base":
            options["expected_network_id"] = endpoints.expected_network_id
        reports.append(probes[role](url, **options))  # type: ignore[operator]
    return reports


def probe_wallet_aggregator(
    url: str, *, connect: tuple[str, int] | None = None, ca_file: Path | None = None, timeout_s: float = 10.0
) -> Report:
    """Check TCP, TLS for https, and one JSON-RPC ``get_block_height`` call, as a wallet's first request."""
    check_wallet_url("aggregator", url)
    target, checks, usable = _open_checks("aggregator", url, connect=connect, ca_file=ca_file, timeout_s=timeout_s)
    if usable:
        checks.append(_block_height_check(url, connect=connect, ca_file=ca_file, timeout_s=timeout_s))
    return _finish(target, checks)


def probe_wallet_relay(
    url: str, *, connect: tuple[str, int] | None = None, ca_file: Path | None = None, timeout_s: float = 10.0
) -> Report:
    """Check TCP, TLS for wss, the websocket upgrade and a subscription that the relay ends with ``EOSE``.

    The subscription requests DMs to a random key, like a wallet's
    subscription to its own key, so it publishes nothing and matches nothing.
    """
    check_wallet_url("relay", url)
    target, checks, usable = _open_checks("relay", url, connect=connect, ca_file=ca_file, timeout_s=timeout_s)
    if not usable:
        return _finish(target, checks)

    started = time.monotonic()
    try:
        relay = open_relay(url, connect=connect, ca_file=ca_file, timeout_s=timeout_s)
    except ProbeError as exc:
        checks.append(Check("websocket open", Status.FAIL, str(exc), _since(started)))
        return _finish(target, checks)
    checks.append(Check("websocket open", Status.OK, f"connected to {url}{relay.endpoint.via}", _since(started)))

    started = time.monotonic()
    subscription = f"wallet-probe-{secrets.token_hex(4)}"
    with relay:
        try:
            stored = relay.subscribe([{"kinds": [DM_KIND], "#p": [secrets.token_hex(32)], "limit": 1}],
                                     subscription_id=subscription)
        except ProbeError as exc:
            checks.append(Check("subscription", Status.FAIL, str(exc), _since(started)))
            return _finish(target, checks)
        detail = f"REQ {subscription} ended with EOSE after {len(stored)} stored event(s)"
        checks.append(Check("subscription", Status.OK, detail, _since(started)))
        try:
            relay.unsubscribe(subscription)
        except ProbeError as exc:
            logger.debug("closing subscription %s failed: %s", subscription, exc)
    return _finish(target, checks)


def probe_wallet_faucet(
    url: str, *, connect: tuple[str, int] | None = None, ca_file: Path | None = None, timeout_s: float = 10.0
) -> Report:
    """Check TCP, TLS for https and the discovery document: status ``running`` with a chain pubkey.

    URL is the faucet's base URL or the discovery document's own URL.
    """
    check_wallet_url("faucet", url)
    document_url = discovery_url_of(url)
    target, checks, usable = _open_checks("faucet", document_url, connect=connect, ca_file=ca_file,
                                          timeout_s=timeout_s)
    if usable:
        discovery, _ = probe_discovery(document_url, connect=connect, ca_file=ca_file, timeout_s=timeout_s)
        checks.append(discovery)
    return _finish(target, checks)


def probe_wallet_trust_base(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    expected_network_id: int | None = None,
    timeout_s: float = 10.0,
) -> Report:
    """Check TCP, TLS for https, then fetch URL and validate the trust base in it.

    With EXPECTED_NETWORK_ID, the running genesis's network, a trust base of
    another network fails: the wallet would reject every proof of the stack.
    """
    check_wallet_url("trust base", url)
    target, checks, usable = _open_checks("trust base", url, connect=connect, ca_file=ca_file, timeout_s=timeout_s)
    if not usable:
        return _finish(target, checks)

    started = time.monotonic()
    try:
        with JsonRpcClient(url, connect=connect, ca_file=ca_file, timeout_s=timeout_s) as client:
            response = client.get(url)
    except ProbeError as exc:
        checks.append(Check("trust base", Status.FAIL, str(exc), _since(started)))
        return _finish(target, checks)
    if response.status_code != 200:
        detail = f"GET {url} returned HTTP {response.status_code}: {_excerpt(response.text)}; is this the trust-base URL?"
        checks.append(Check("trust base", Status.FAIL, detail, _since(started)))
        return _finish(target, checks)
    try:
        trust_base = parse_trust_base(response.content)
    except TrustBaseError as exc:
        checks.append(Check("trust base", Status.FAIL, f"{url} does not load: {exc}", _since(started)))
        return _finish(target, checks)

    detail = (
        f"networkId {trust_base.network_id}, epoch {trust_base.epoch}, {len(trust_base.root_nodes)} root node(s), "
        f"quorum {trust_base.quorum_threshold}, sha256 {trust_base_sha256(response.content)}"
    )
    checks.append(Check("trust base", Status.OK, detail, _since(started)))
    if expected_network_id is not None:
        checks.append(_network_check(trust_base.network_id, expected_network_id))
    return _finish(target, checks)


def _open_checks(
    role: str, url: str, *, connect: tuple[str, int] | None, ca_file: Path | None, timeout_s: float
) -> tuple[str, list[Check], bool]:
    """Return the report's target, the TCP and TLS checks, and whether the connection is usable.

    Any failed TLS check makes it unusable: a wallet's TLS stack rejects an
    untrusted chain, a wrong name or an expired certificate alike.
    """
    endpoint = parse_endpoint(url, connect=connect)
    target = f"{role}: {url}{endpoint.via}"
    checks = [probe_tcp(endpoint.connect_host, endpoint.connect_port, timeout_s=timeout_s)]
    if checks[-1].status is Status.FAIL or not endpoint.is_tls:
        return target, checks, checks[-1].status is not Status.FAIL

    checks.extend(probe_tls(endpoint.connect_host, endpoint.connect_port, server_name=endpoint.host,
                            ca_file=ca_file, timeout_s=timeout_s))
    return target, checks, all(check.status is not Status.FAIL for check in checks)


def _block_height_check(url: str, *, connect: tuple[str, int] | None, ca_file: Path | None, timeout_s: float) -> Check:
    started = time.monotonic()
    try:
        with JsonRpcClient(url, connect=connect, ca_file=ca_file, timeout_s=timeout_s) as client:
            result = client.call("get_block_height", {})
    except ProbeError as exc:
        return Check("get_block_height", Status.FAIL, str(exc), _since(started))

    number = result.get("blockNumber") if isinstance(result, dict) else None
    if not isinstance(number, str) or not _DECIMAL.match(number):
        detail = f"get_block_height returned {_excerpt(repr(result))}, expected a decimal blockNumber string"
        return Check("get_block_height", Status.FAIL, detail, _since(started))
    return Check("get_block_height", Status.OK, f"block height {number}", _since(started))


def _network_check(network_id: int, expected: int) -> Check:
    if network_id == expected:
        return Check("network id", Status.OK, f"networkId {network_id} is the running genesis's network")
    detail = (
        f"networkId {network_id}, but the running genesis is network {expected}; the wallet would reject every "
        f"proof of this stack. Point it at this stack's trust base"
    )
    return Check("network id", Status.FAIL, detail)


def _finish(target: str, checks: list[Check]) -> Report:
    report = Report(target=target, checks=tuple(checks))
    logger.info("probed %s as a wallet: %d failed, %d warning(s)", target, report.failed, report.warnings)
    return report


def _excerpt(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
