"""The check of one faucet as a wallet finds it: its discovery document, then its relay.

A wallet reads ``/.well-known/faucet.json`` over HTTPS, takes the faucet's
chain pubkey from it and sends an encrypted DM to that key through a relay.
This probe does the same up to the relay's ``OK``, without asking for tokens.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from unicity_infra.errors import SettingsError
from unicity_infra.probes.errors import ProbeError, ProtocolError, mapping_errors
from unicity_infra.probes.http import parse_endpoint
from unicity_infra.probes.nostr import generate_key, open_relay, sign_event
from unicity_infra.probes.report import Check, Report, Status
from unicity_infra.probes.tls import create_ssl_context, probe_tcp, probe_tls

__all__ = [
    "DISCOVERY_PATH",
    "DM_KIND",
    "discovery_url_of",
    "fetch_discovery",
    "check_discovery_document",
    "probe_discovery",
    "probe_faucet_dm",
    "probe_faucet",
]

logger = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/faucet.json"
# NIP-04 encrypted direct message, which every relay the faucet uses must accept.
DM_KIND = 4
# NIP-40: relays may drop the probe's message after this many seconds.
_PROBE_DM_LIFETIME_S = 300
_COMPRESSED_PUBKEY = re.compile(r"^0[23][0-9a-f]{64}$")


def discovery_url_of(url: str) -> str:
    """Return the discovery document's URL for a faucet base URL, or URL itself when it names the document.

    >>> discovery_url_of("https://faucet.example.org")
    'https://faucet.example.org/.well-known/faucet.json'
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SettingsError("faucet URL", url, "use an http:// or https:// URL such as https://faucet.example.org")
    if parts.path.endswith(".json"):
        return url
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + DISCOVERY_PATH, "", ""))


def fetch_discovery(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> tuple[dict[str, Any], httpx.Headers]:
    """GET the discovery document at URL and return it with the response headers.

    Raises :class:`ProbeError` when the request fails or the response is not a
    200 with a JSON object.
    """
    endpoint = parse_endpoint(url, connect=connect)
    request_url = httpx.URL(url)
    headers = {"Accept": "application/json"}
    extensions: dict[str, Any] = {}
    if connect is not None:
        # Connect to the override, but keep the URL's host for the Host header, SNI and certificate check.
        headers["Host"] = request_url.netloc.decode("ascii")
        extensions["sni_hostname"] = request_url.raw_host.decode("ascii")
        request_url = request_url.copy_with(host=endpoint.connect_host, port=endpoint.connect_port)

    context = create_ssl_context(ca_file=ca_file, insecure=insecure)
    with (
        mapping_errors(step="the discovery document", address=endpoint.address, timeout_s=timeout_s),
        httpx.Client(verify=context, timeout=timeout_s, trust_env=False) as client,
    ):
        response = client.get(request_url, headers=headers, extensions=extensions)

    if response.status_code != 200:
        raise ProtocolError(endpoint.address, f"GET {url} returned HTTP {response.status_code}; is this a faucet's URL?")
    try:
        document = json.loads(response.content)
    except ValueError as exc:
        raise ProtocolError(endpoint.address, f"the discovery document is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ProtocolError(endpoint.address, f"the discovery document is JSON but not an object: {response.text[:80]!r}")
    return document, response.headers


def check_discovery_document(document: dict[str, Any]) -> tuple[Status, str]:
    """Judge a discovery document: FAIL unless running with a compressed chain pubkey and a matching address."""
    status = document.get("status")
    pubkey = document.get("chain_pubkey")
    if status != "running":
        restarts = document.get("restart_count")
        exit_code = document.get("last_exit_code")
        return Status.FAIL, f"status is {status!r} (restart_count={restarts}, last_exit_code={exit_code}), not 'running'"
    if not isinstance(pubkey, str) or not _COMPRESSED_PUBKEY.match(pubkey):
        return Status.FAIL, f"chain_pubkey {pubkey!r} is not a 66-hex compressed secp256k1 key (02 or 03 prefix)"
    if document.get("direct_address") != f"DIRECT://{pubkey}":
        return Status.FAIL, f"direct_address {document.get('direct_address')!r} does not match chain_pubkey {pubkey}"

    nametag = document.get("nametag")
    summary = f"running, chain_pubkey {pubkey}, nametag {nametag or '-'}, network {document.get('network')}"
    if not nametag:
        return Status.WARN, f"{summary}; no verified nametag, so wallets must use the direct address"
    return Status.OK, summary


def probe_discovery(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> tuple[Check, dict[str, Any] | None]:
    """Check the discovery document at URL; returns the check and the document when it was read."""
    started = time.monotonic()
    try:
        document, headers = fetch_discovery(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s)
    except ProbeError as exc:
        return Check("discovery", Status.FAIL, str(exc), _since(started)), None

    status, detail = check_discovery_document(document)
    if status is Status.OK and headers.get("access-control-allow-origin") != "*":
        status, detail = Status.WARN, f"{detail}; no 'Access-Control-Allow-Origin: *', so web wallets cannot read it"
    return Check("discovery", status, detail, _since(started)), document


def probe_faucet_dm(
    relay_url: str,
    chain_pubkey: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> Check:
    """Check that the relay at RELAY_URL accepts a DM-kind event addressed to the faucet's key.

    The event carries a ``p`` tag with the key's x coordinate, as a wallet's
    request does, and a NIP-40 expiration. Its content is plain text, not an
    ACP command, so a faucet that receives it has no request to act on.
    """
    started = time.monotonic()
    expiration = int(time.time()) + _PROBE_DM_LIFETIME_S
    event = sign_event(
        generate_key(),
        kind=DM_KIND,
        content=f"unicity-infra probe {secrets.token_hex(8)}: reachability check, not a request",
        tags=[["p", chain_pubkey[2:]], ["expiration", str(expiration)]],
    )
    try:
        with open_relay(relay_url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s) as relay:
            accepted, message = relay.publish(event)
    except ProbeError as exc:
        return Check("relay DM", Status.FAIL, str(exc), _since(started))

    if not accepted:
        detail = f"relay {relay_url} rejected a kind-{DM_KIND} event to the faucet: {message!r}; check its kind policy"
        return Check("relay DM", Status.FAIL, detail, _since(started))
    return Check("relay DM", Status.OK, f"relay {relay_url} accepted a kind-{DM_KIND} event to {chain_pubkey[:16]}…",
                 _since(started))


def probe_faucet(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    relay_url: str | None = None,
    relay_connect: tuple[str, int] | None = None,
    relay_ca_file: Path | None = None,
    timeout_s: float = 10.0,
) -> Report:
    """Check the faucet at URL (its base URL or its discovery URL) and return one report.

    TCP, then TLS for https, then the discovery document; with RELAY_URL, also
    a DM to the announced pubkey through that relay. The run stops after a
    failed TCP connect or TLS handshake. Raises SettingsError for a URL that is
    not http(s).
    """
    target_url = discovery_url_of(url)
    endpoint = parse_endpoint(target_url, connect=connect)
    target = f"{target_url}{endpoint.via}"

    checks: list[Check] = [probe_tcp(endpoint.connect_host, endpoint.connect_port, timeout_s=timeout_s)]
    if checks[-1].status is Status.FAIL:
        return _finish(target, checks)
    if endpoint.is_tls:
        tls_checks = probe_tls(
            endpoint.connect_host, endpoint.connect_port, server_name=endpoint.host,
            ca_file=ca_file, insecure=insecure, timeout_s=timeout_s,
        )
        checks.extend(tls_checks)
        if tls_checks[0].status is Status.FAIL:
            return _finish(target, checks)

    discovery, document = probe_discovery(target_url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s)
    checks.append(discovery)
    if relay_url is not None:
        if discovery.status is Status.FAIL or document is None:
            checks.append(Check("relay DM", Status.FAIL, "skipped: the discovery document names no running faucet"))
        else:
            checks.append(probe_faucet_dm(
                relay_url, document["chain_pubkey"], connect=relay_connect,
                ca_file=relay_ca_file if relay_ca_file is not None else ca_file, insecure=insecure, timeout_s=timeout_s,
            ))
    return _finish(target, checks)


def _finish(target: str, checks: list[Check]) -> Report:
    report = Report(target=target, checks=tuple(checks))
    logger.info("probed faucet %s: %d failed, %d warning(s)", target, report.failed, report.warnings)
    return report


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
