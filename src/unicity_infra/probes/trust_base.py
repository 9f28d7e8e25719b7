"""The BFT root trust base (``trust-base.json``): parse, validate its shape, derive bootstrap addresses.

The document is bft-go-base's ``RootTrustBaseV1`` in JSON. Only its shape is
checked here, so signatures are not verified cryptographically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import coincurve

from unicity_infra.errors import InfraError, SettingsError

__all__ = [
    "TrustBaseError",
    "RootNode",
    "TrustBase",
    "decode_trust_base_document",
    "validate_trust_base",
    "parse_trust_base",
    "bootstrap_addresses",
    "trust_base_sha256",
]

logger = logging.getLogger(__name__)

TRUST_BASE_VERSION = 1
# Compressed secp256k1 public key: 0x, then 02 or 03 and the 32-byte X coordinate.
_SIG_KEY = re.compile(r"^0x0[23][0-9a-fA-F]{64}$")
# 65-byte secp256k1 signature R || S || V.
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_HEX = re.compile(r"^(0x)?([0-9a-fA-F]{2})*$")
# libp2p peer IDs are base58btc or base32 multihashes: letters and digits only. Anything
# else would break the multiaddress /dns4/HOST/tcp/PORT/p2p/ID and the comma-joined list.
_NODE_ID = re.compile(r"^[A-Za-z0-9]+$")
_DNS_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_HASH_FIELDS = ("stateHash", "changeRecordHash", "previousEntryHash")


class TrustBaseError(InfraError):
    """A trust base document is not JSON, not an object, or has an invalid field."""

    def __init__(self, field: str, message: str, *, problems: tuple[str, ...] = ()) -> None:
        self.field = field
        self.message = message
        self.problems = problems or (f"{field}: {message}",)
        super().__init__(f"invalid trust base: {field}: {message}")


@dataclass(frozen=True)
class RootNode:
    """One root validator of the trust base."""

    node_id: str
    sig_key: str
    stake: int


@dataclass(frozen=True)
class TrustBase:
    """A trust base document whose fields passed :func:`validate_trust_base`."""

    version: int
    network_id: int
    epoch: int
    epoch_start_round: int
    root_nodes: tuple[RootNode, ...]
    quorum_threshold: int
    signatures: tuple[tuple[str, str], ...]

    @property
    def total_stake(self) -> int:
        return sum(node.stake for node in self.root_nodes)


def decode_trust_base_document(text: str | bytes) -> dict[str, Any]:
    """Decode TEXT as JSON and return the top-level object.

    Raises :class:`TrustBaseError` when TEXT is not JSON or its top level is not an object.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise TrustBaseError("document", f"not JSON ({exc}); pass the trust-base.json the BFT genesis wrote") from exc
    if not isinstance(document, dict):
        raise TrustBaseError("document", f"expected a JSON object at the top level, got {_json_type(document)}")
    return document


def validate_trust_base(doc: Any) -> list[str]:
    """Return the problems of the trust base DOC, each as ``field: what is wrong``, or [] when DOC is valid.

    Checks ``version`` (1), ``networkId``, ``epoch`` and ``epochStartRound``
    (integers of at least 0), ``rootNodes`` (non-empty, sorted by ``nodeId``,
    compressed secp256k1 ``sigKey``, ``stake`` 1), ``quorumThreshold`` (from
    ⌊2·Σstake/3⌋+1 to Σstake) and the shape of ``signatures``.
    """
    if not isinstance(doc, dict):
        return [f"document: expected a JSON object at the top level, got {_json_type(doc)}"]

    problems: list[str] = []
    if doc.get("version") != TRUST_BASE_VERSION or isinstance(doc.get("version"), bool):
        problems.append(f"version: expected {TRUST_BASE_VERSION}, got {_show(doc, 'version')}")
    for field in ("networkId", "epoch", "epochStartRound"):
        if not _is_count(doc.get(field)):
            problems.append(f"{field}: expected an integer of at least 0, got {_show(doc, field)}")

    node_problems, node_ids, total_stake = _validate_root_nodes(doc.get("rootNodes"))
    problems.extend(node_problems)
    problems.extend(_validate_quorum_threshold(doc, total_stake))
    problems.extend(_validate_signatures(doc, node_ids))
    for field in _HASH_FIELDS:
        value = doc.get(field)
        if value is not None and not (isinstance(value, str) and _HEX.match(value)):
            problems.append(f"{field}: expected a hex string (may be empty), got {_show(doc, field)}")
    return problems


def parse_trust_base(text: str | bytes) -> TrustBase:
    """Parse and validate the trust base in TEXT.

    Raises :class:`TrustBaseError` naming the first invalid field. Its
    ``problems`` attribute lists all of them.
    """
    document = decode_trust_base_document(text)
    problems = validate_trust_base(document)
    if problems:
        field, _, message = problems[0].partition(": ")
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})"
        raise TrustBaseError(field, message, problems=tuple(problems))

    root_nodes = tuple(
        RootNode(node_id=node["nodeId"], sig_key=node["sigKey"], stake=node["stake"]) for node in document["rootNodes"]
    )
    return TrustBase(
        version=document["version"],
        network_id=document["networkId"],
        epoch=document["epoch"],
        epoch_start_round=document["epochStartRound"],
        root_nodes=root_nodes,
        quorum_threshold=document["quorumThreshold"],
        signatures=tuple(sorted(document["signatures"].items())),
    )


def bootstrap_addresses(trust_base_text: str | bytes, *, host: str = "bft-root", port: int = 8000) -> str:
    """Derive the aggregator's ``BFT_BOOTSTRAP_ADDRESSES`` from the root nodes of a trust base.

    One ``/dns4/HOST/tcp/PORT/p2p/<nodeId>`` per root node, in document order,
    joined with commas. Only ``rootNodes[].nodeId`` must be valid. Raises
    :class:`TrustBaseError` for a document without usable node IDs and
    :class:`SettingsError` for an invalid HOST or PORT.
    """
    if not _DNS_NAME.match(host) or len(host) > 253:
        raise SettingsError("bootstrap host", host, "use a DNS name such as bft-root")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise SettingsError("bootstrap port", port, "use a TCP port from 1 to 65535")

    document = decode_trust_base_document(trust_base_text)
    nodes = document.get("rootNodes")
    if not isinstance(nodes, list) or not nodes:
        raise TrustBaseError("rootNodes", f"expected a non-empty list of root nodes, got {_show(document, 'rootNodes')}")
    node_ids: list[str] = []
    for index, node in enumerate(nodes):
        node_id = node.get("nodeId") if isinstance(node, dict) else None
        if not isinstance(node_id, str) or not _NODE_ID.match(node_id):
            raise TrustBaseError(f"rootNodes[{index}].nodeId", f"expected a libp2p peer ID, got {node_id!r}")
        node_ids.append(node_id)

    return ",".join(f"/dns4/{host}/tcp/{port}/p2p/{node_id}" for node_id in node_ids)


def trust_base_sha256(data: bytes) -> str:
    """Return the SHA-256 of DATA as 64 lowercase hex digits, for comparing trust base files."""
    return hashlib.sha256(data).hexdigest()


def _validate_root_nodes(nodes: object) -> tuple[list[str], set[str], int | None]:
    # Returns the problems, the valid node IDs and the total stake (None when unknown).
    if not isinstance(nodes, list) or not nodes:
        nodes_text = "nothing" if nodes is None else json.dumps(nodes)[:80]
        return [f"rootNodes: expected a non-empty list of root nodes, got {nodes_text}"], set(), None

    problems: list[str] = []
    node_ids: list[str] = []
    total_stake: int | None = 0
    for index, node in enumerate(nodes):
        prefix = f"rootNodes[{index}]"
        if not isinstance(node, dict):
            problems.append(f"{prefix}: expected an object with nodeId, sigKey and stake, got {_json_type(node)}")
            total_stake = None
            continue
        problems.extend(_validate_node(prefix, node))
        if isinstance(node.get("nodeId"), str) and node["nodeId"]:
            node_ids.append(node["nodeId"])
        # An invalid stake already has its own problem; the quorum range is then unknown.
        stake = node.get("stake")
        total_stake = total_stake + 1 if total_stake is not None and _is_valid_stake(stake) else None

    duplicates = sorted({node_id for node_id in node_ids if node_ids.count(node_id) > 1})
    if duplicates:
        problems.append(f"rootNodes: nodeId {duplicates[0]!r} appears more than once")
    if node_ids != sorted(node_ids):
        # bft-go-base finds a signer by binary search over rootNodes, so an
        # unsorted list makes valid signatures fail to verify.
        problems.append("rootNodes: not sorted by nodeId")
    return problems, set(node_ids), total_stake


def _validate_node(prefix: str, node: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    node_id = node.get("nodeId")
    if not isinstance(node_id, str) or not _NODE_ID.match(node_id):
        problems.append(f"{prefix}.nodeId: expected a libp2p peer ID (letters and digits), got {_show(node, 'nodeId')}")

    sig_key = node.get("sigKey")
    if not isinstance(sig_key, str) or not _SIG_KEY.match(sig_key):
        problems.append(
            f"{prefix}.sigKey: expected 0x and 66 hex digits starting 02 or 03 (a compressed secp256k1 key), "
            f"got {_show(node, 'sigKey')}"
        )
    elif not _is_curve_point(bytes.fromhex(sig_key[2:])):
        problems.append(f"{prefix}.sigKey: {sig_key} is not a point on the secp256k1 curve")

    if not _is_valid_stake(node.get("stake")):
        # bft-go-base rejects any other stake until staking is implemented.
        problems.append(f"{prefix}.stake: expected 1, got {_show(node, 'stake')}")
    return problems


def _validate_quorum_threshold(doc: dict[str, Any], total_stake: int | None) -> list[str]:
    threshold = doc.get("quorumThreshold")
    if not isinstance(threshold, int) or not _is_count(threshold) or threshold == 0:
        return [f"quorumThreshold: expected a positive integer, got {_show(doc, 'quorumThreshold')}"]
    if total_stake is None or total_stake == 0:
        return []

    minimum = total_stake * 2 // 3 + 1
    if not minimum <= threshold <= total_stake:
        problem = (
            f"quorumThreshold: {threshold} is outside {minimum}..{total_stake}, "
            f"the range from 2/3 of the total stake {total_stake} plus one to all of it"
        )
        return [problem]
    return []


def _validate_signatures(doc: dict[str, Any], node_ids: set[str]) -> list[str]:
    signatures = doc.get("signatures")
    if not isinstance(signatures, dict):
        return [f"signatures: expected an object mapping nodeId to signature, got {_show(doc, 'signatures')}"]

    # NOTE: the previous epoch's validators sign a later epoch, and they need not be in
    # rootNodes. This check fits the genesis trust base of a local stack.
    problems: list[str] = []
    for node_id, signature in signatures.items():
        if node_id not in node_ids:
            problems.append(f"signatures[{node_id}]: no root node has this nodeId")
        if not isinstance(signature, str) or not _SIGNATURE.match(signature):
            problems.append(
                f"signatures[{node_id}]: expected 0x and 130 hex digits (a 65-byte signature), "
                f"got {json.dumps(signature)[:80]}"
            )
    return problems


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_valid_stake(stake: object) -> bool:
    return stake == 1 and not isinstance(stake, bool)


def _is_curve_point(compressed_key: bytes) -> bool:
    try:
        coincurve.PublicKey(compressed_key)
    except ValueError:
        return False
    return True


def _show(container: dict[str, Any], key: str) -> str:
    if key not in container:
        return "nothing (the field is missing)"
    return json.dumps(container[key])[:80]


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)
