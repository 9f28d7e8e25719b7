"""The full check of one aggregator-go endpoint, in the order a wallet depends on it.

TCP connect, TLS (``https://`` only), ``/health``, block height advancing, the
served trust base and, with ``deep``, a signed certification request that must
come back with an inclusion proof carrying a unicity certificate.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from unicity_infra.errors import SettingsError
from unicity_infra.probes.certification import (
    CertificationRequest,
    InclusionProof,
    create_probe_request,
    decode_inclusion_proof_response,
)
from unicity_infra.probes.errors import ProbeError, ProtocolError, format_address
from unicity_infra.probes.jsonrpc import JsonRpcClient
from unicity_infra.probes.report import Check, Report, Status
from unicity_infra.probes.tls import probe_tcp, probe_tls
from unicity_infra.probes.trust_base import (
    TrustBaseError,
    decode_trust_base_document,
    trust_base_sha256,
    validate_trust_base,
)

__all__ = [
    "AggregatorEndpoint",
    "parse_aggregator_url",
    "probe_aggregator",
    "check_health",
    "check_block_height",
    "check_trust_base",
    "check_certification",
]

logger = logging.getLogger(__name__)

TRUST_BASE_PATH = "/.well-known/trust-base.json"
POLL_INTERVAL_S = 1.0
# Maximum number of response body characters quoted in a check's detail.
_BODY_EXCERPT_CHARS = 400
_DEFAULT_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True)
class AggregatorEndpoint:
    """The URLs probed on one aggregator and where their TCP connections go."""

    url: str
    host: str
    port: int
    is_tls: bool
    connect_host: str
    connect_port: int
    health_url: str
    trust_base_url: str

    @property
    def via(self) -> str:
        """A message suffix naming the ``--connect`` override, empty without one."""
        if (self.connect_host, self.connect_port) == (self.host, self.port):
            return ""
        return f" via {format_address(self.connect_host, self.connect_port)}"


def parse_aggregator_url(url: str, *, connect: tuple[str, int] | None = None) -> AggregatorEndpoint:
    """Split an http or https aggregator URL into the endpoints the probe uses.

    JSON-RPC goes to URL itself and ``/health`` sits under its path (a gateway
    may serve the aggregator under ``/rpc``). The trust base is a well-known URI
    and therefore always at the root of the origin (RFC 8615). Raises
    :class:`SettingsError` for another scheme or a URL without a host.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT or not parts.hostname:
        raise SettingsError("aggregator URL", url, "use an http:// or https:// URL with a host name")
    try:
        port = parts.port or _DEFAULT_PORT[scheme]
    except ValueError as exc:
        raise SettingsError("aggregator URL", url, f"the port is invalid ({exc})") from exc

    base = url if url.endswith("/") else url + "/"
    connect_host, connect_port = connect if connect is not None else (parts.hostname, port)
    return AggregatorEndpoint(
        url=url,
        host=parts.hostname,
        port=port,
        is_tls=scheme == "https",
        connect_host=connect_host,
        connect_port=connect_port,
        health_url=urllib.parse.urljoin(base, "health"),
        trust_base_url=urllib.parse.urljoin(base, TRUST_BASE_PATH),
    )


def probe_aggregator(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    trust_base_file: Path | None = None,
    deep: bool = False,
    height_wait_s: float = 15.0,
    proof_wait_s: float = 45.0,
    timeout_s: float = 10.0,
) -> Report:
    """Check the aggregator at URL (``http://`` or ``https://``) and return one report for it.

    CONNECT sends every connection to that host and port, keeping the URL's
    host for SNI, Host and the certificate. TRUST_BASE_FILE must equal the
    served trust base byte for byte. DEEP submits a signed certification
    request and waits up to PROOF_WAIT_S for its proof. The block height must
    rise within HEIGHT_WAIT_S. The run stops after a failed TCP connect or TLS
    handshake. Raises :class:`SettingsError` for a URL that is not http(s).
    """
    endpoint = parse_aggregator_url(url, connect=connect)
    target = f"{url}{endpoint.via}"

    checks: list[Check] = [probe_tcp(endpoint.connect_host, endpoint.connect_port, timeout_s=timeout_s)]
    if checks[-1].status is Status.FAIL:
        return _finish(target, checks)

    if endpoint.is_tls:
        tls_checks = probe_tls(
            endpoint.connect_host,
            endpoint.connect_port,
            server_name=endpoint.host,
            ca_file=ca_file,
            insecure=insecure,
            timeout_s=timeout_s,
        )
        checks.extend(tls_checks)
        if tls_checks[0].status is Status.FAIL:
            return _finish(target, checks)

    started = time.monotonic()
    try:
        client = JsonRpcClient(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s)
    except ProbeError as exc:
        checks.append(Check("HTTP client", Status.FAIL, str(exc), _since(started)))
        return _finish(target, checks)

    with client:
        checks.append(check_health(client, endpoint.health_url))
        checks.append(check_block_height(client, wait_s=height_wait_s))
        checks.extend(check_trust_base(client, endpoint.trust_base_url, trust_base_file=trust_base_file))
        if deep:
            checks.append(check_certification(client, wait_s=proof_wait_s))
    return _finish(target, checks)


def check_health(client: JsonRpcClient, health_url: str) -> Check:
    """Check that ``GET /health`` returns 200 with ``status`` ok and ``details.database`` connected."""
    started = time.monotonic()
    try:
        response = client.get(health_url)
    except ProbeError as exc:
        return Check("health", Status.FAIL, str(exc), _since(started))

    body = _excerpt(response.text)
    try:
        document = json.loads(response.content)
    except ValueError:
        document = None
    if response.status_code != 200 or not isinstance(document, dict):
        detail = f"GET {health_url} returned HTTP {response.status_code}: {body}"
        return Check("health", Status.FAIL, detail, _since(started))

    status = document.get("status")
    details: dict[str, Any] = document["details"] if isinstance(document.get("details"), dict) else {}
    database = details.get("database")
    if status != "ok":
        return Check("health", Status.FAIL, f"status is {status!r}, expected 'ok': {body}", _since(started))
    if database != "connected":
        return Check("health", Status.FAIL, f"database is {database!r}, expected 'connected': {body}", _since(started))

    queue = f"commitment queue {details.get('commitment_queue', '?')} ({details.get('commitment_queue_status', '?')})"
    detail = f"status ok, role {document.get('role', '?')}, database connected, {queue}"
    return Check("health", Status.OK, detail, _since(started))


def check_block_height(client: JsonRpcClient, *, wait_s: float) -> Check:
    """Check that ``get_block_height`` rises within WAIT_S, polling once a second."""
    started = time.monotonic()
    try:
        first = _get_block_height(client)
    except ProbeError as exc:
        return Check("block height", Status.FAIL, str(exc), _since(started))

    deadline = started + wait_s
    while time.monotonic() < deadline:
        time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
        try:
            current = _get_block_height(client)
        except ProbeError as exc:
            return Check("block height", Status.FAIL, str(exc), _since(started))
        if current > first:
            detail = f"advanced from {first} to {current} in {time.monotonic() - started:.1f} s"
            return Check("block height", Status.OK, detail, _since(started))
        if current < first:
            detail = f"block height went back from {first} to {current}; is more than one aggregator behind this URL?"
            return Check("block height", Status.FAIL, detail, _since(started))

    detail = (
        f"block height did not advance: stuck at {first} for {wait_s:g} s; "
        f"check the BFT root node and the aggregator's logs for round or certification errors"
    )
    return Check("block height", Status.FAIL, detail, _since(started))


def check_trust_base(client: JsonRpcClient, trust_base_url: str, *, trust_base_file: Path | None) -> list[Check]:
    """Check the trust base served at TRUST_BASE_URL and, with TRUST_BASE_FILE, that it equals that file.

    A 404 is a warning without TRUST_BASE_FILE, because aggregator-go itself does
    not serve this URL; the TLS proxy in front of it does.
    """
    started = time.monotonic()
    try:
        response = client.get(trust_base_url)
    except ProbeError as exc:
        return [Check("trust base", Status.FAIL, str(exc), _since(started))]

    if response.status_code == 404 and trust_base_file is None:
        detail = (
            f"GET {trust_base_url} returned HTTP 404; aggregator-go serves no trust base itself, "
            f"so this is expected without the aggregator proxy in front"
        )
        return [Check("trust base", Status.WARN, detail, _since(started))]
    if response.status_code != 200:
        detail = f"GET {trust_base_url} returned HTTP {response.status_code}: {_excerpt(response.text)}"
        return [Check("trust base", Status.FAIL, detail, _since(started))]

    checks = [_validate_served_trust_base(response, started)]
    if trust_base_file is not None:
        checks.append(_compare_trust_base_file(response.content, trust_base_file))
    return checks


def check_certification(client: JsonRpcClient, *, wait_s: float) -> Check:
    """Submit a signed certification request, then poll ``get_inclusion_proof.v2`` for up to WAIT_S.

    Passes when an inclusion proof for the request arrives with a non-empty
    unicity certificate, the proof a wallet needs to finish a transfer.
    """
    started = time.monotonic()
    request = create_probe_request()
    state_id = request.state_id.hex()
    try:
        result = client.call("certification_request", request.params)
    except ProbeError as exc:
        return Check("certification", Status.FAIL, str(exc), _since(started))
    status = result.get("status") if isinstance(result, dict) else None
    if status != "SUCCESS":
        detail = f"certification_request for stateId {state_id} returned {json.dumps(result)[:200]}, expected status SUCCESS"
        return Check("certification", Status.FAIL, detail, _since(started))
    logger.debug("certification request accepted stateId=%s", state_id)

    last_answer = "no answer yet"
    deadline = started + wait_s
    while time.monotonic() < deadline:
        try:
            proof = decode_inclusion_proof_response(client.call("get_inclusion_proof.v2", {"stateId": state_id}))
        except ProbeError as exc:
            # Errors while the request waits for its round (not found, not ready) are retried.
            last_answer = str(exc)
        else:
            if proof.is_inclusion:
                return _judge_inclusion_proof(proof, request, started)
            last_answer = f"a non-inclusion proof at block {proof.block_number}"
        time.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))

    detail = (
        f"no inclusion proof for stateId {state_id} within {wait_s:g} s; last answer: {last_answer}. "
        f"Check that blocks are certified (BFT_ENABLED and the BFT root)"
    )
    return Check("certification", Status.FAIL, detail, _since(started))


def _judge_inclusion_proof(proof: InclusionProof, request: CertificationRequest, started: float) -> Check:
    state_id = request.state_id.hex()
    if not proof.is_for(request):
        detail = f"the inclusion proof for stateId {state_id} carries other certification data than was submitted"
        return Check("certification", Status.FAIL, detail, _since(started))
    if proof.unicity_certificate_size == 0:
        detail = (
            f"the inclusion proof for stateId {state_id} in block {proof.block_number} has no unicity certificate; "
            f"wallets reject such proofs. Is the aggregator running with BFT_ENABLED=false?"
        )
        return Check("certification", Status.FAIL, detail, _since(started))

    detail = (
        f"stateId {state_id} included in block {proof.block_number} with a "
        f"{proof.unicity_certificate_size}-byte unicity certificate after {time.monotonic() - started:.1f} s"
    )
    return Check("certification", Status.OK, detail, _since(started))


def _validate_served_trust_base(response: httpx.Response, started: float) -> Check:
    try:
        document = decode_trust_base_document(response.content)
    except TrustBaseError as exc:
        return Check("trust base", Status.FAIL, f"{exc}: {_excerpt(response.text)}", _since(started))

    problems = validate_trust_base(document)
    if problems:
        detail = f"the served trust base has {len(problems)} problem(s): " + "; ".join(problems)
        return Check("trust base", Status.FAIL, detail, _since(started))

    detail = (
        f"networkId {document['networkId']}, epoch {document['epoch']}, {len(document['rootNodes'])} root node(s), "
        f"quorum {document['quorumThreshold']}, sha256 {trust_base_sha256(response.content)}"
    )
    return Check("trust base", Status.OK, detail, _since(started))


def _compare_trust_base_file(served: bytes, trust_base_file: Path) -> Check:
    try:
        expected = trust_base_file.read_bytes()
    except OSError as exc:
        detail = f"cannot read {str(trust_base_file)!r}: {exc.strerror or exc}; pass the genesis trust-base.json"
        return Check("trust base file", Status.FAIL, detail)

    served_hash, expected_hash = trust_base_sha256(served), trust_base_sha256(expected)
    if served == expected:
        return Check("trust base file", Status.OK, f"served trust base equals {trust_base_file} (sha256 {served_hash})")
    detail = (
        f"served trust base differs from {trust_base_file}: served sha256 {served_hash} ({len(served)} bytes), "
        f"file sha256 {expected_hash} ({len(expected)} bytes); serve the file the aggregator was started with"
    )
    return Check("trust base file", Status.FAIL, detail)


def _get_block_height(client: JsonRpcClient) -> int:
    result = client.call("get_block_height", {})
    number = result.get("blockNumber") if isinstance(result, dict) else None
    if isinstance(number, str) and re.fullmatch(r"[0-9]+", number):
        return int(number)
    raise ProtocolError(
        client.address, f"get_block_height returned {json.dumps(result)[:200]}, expected a decimal blockNumber string"
    )


def _excerpt(text: str) -> str:
    text = text.strip()
    if len(text) <= _BODY_EXCERPT_CHARS:
        return text or "(empty body)"
    return text[:_BODY_EXCERPT_CHARS] + f"… ({len(text)} characters)"


def _finish(target: str, checks: list[Check]) -> Report:
    report = Report(target=target, checks=tuple(checks))
    logger.info("probed aggregator %s: %d failed, %d warning(s)", target, report.failed, report.warnings)
    return report


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
