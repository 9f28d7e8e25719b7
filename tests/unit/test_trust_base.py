"""Trust base parsing, shape validation and bootstrap-address derivation."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import coincurve
import pytest

from unicity_infra.errors import SettingsError
from unicity_infra.probes.trust_base import (
    TrustBaseError,
    bootstrap_addresses,
    decode_trust_base_document,
    parse_trust_base,
    trust_base_sha256,
    validate_trust_base,
)

NODE_IDS = ("16Uiu2HAkw1NodeA", "16Uiu2HAkw2NodeB", "16Uiu2HAkw3NodeC")


def make_trust_base(node_count: int = 3) -> dict[str, object]:
    """Build a trust base with real compressed secp256k1 keys and 65-byte recoverable signatures."""
    keys = [coincurve.PrivateKey() for _ in range(node_count)]
    node_ids = NODE_IDS[:node_count]
    digest = bytes(32)
    return {
        "version": 1,
        "networkId": 3,
        "epoch": 1,
        "epochStartRound": 1,
        "rootNodes": [
            {"nodeId": node_id, "sigKey": "0x" + key.public_key.format(compressed=True).hex(), "stake": 1}
            for node_id, key in zip(node_ids, keys)
        ],
        "quorumThreshold": node_count * 2 // 3 + 1,
        "stateHash": "",
        "changeRecordHash": "",
        "previousEntryHash": "",
        "signatures": {
            node_id: "0x" + key.sign_recoverable(digest, hasher=None).hex() for node_id, key in zip(node_ids, keys)
        },
    }


VALID = make_trust_base()


def _set(path: tuple[object, ...], value: object) -> Callable[[dict[str, object]], None]:
    def change(document: dict[str, object]) -> None:
        target: object = document
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]

    return change


def _delete(key: str) -> Callable[[dict[str, object]], None]:
    def change(document: dict[str, object]) -> None:
        del document[key]

    return change


def _swap_first_nodes(document: dict[str, object]) -> None:
    nodes = document["rootNodes"]
    nodes[0], nodes[1] = nodes[1], nodes[0]  # type: ignore[index]


def _duplicate_first_node(document: dict[str, object]) -> None:
    nodes = document["rootNodes"]
    nodes[1] = copy.deepcopy(nodes[0])  # type: ignore[index]


def _add_unknown_signer(document: dict[str, object]) -> None:
    document["signatures"]["16Uiu2HAkwStranger"] = "0x" + "ab" * 65  # type: ignore[index]


INVALID_CASES = [
    ("version 2", _set(("version",), 2), "version"),
    ("version as string", _set(("version",), "1"), "version"),
    ("version missing", _delete("version"), "version"),
    ("networkId string", _set(("networkId",), "3"), "networkId"),
    ("networkId boolean", _set(("networkId",), True), "networkId"),
    ("epoch negative", _set(("epoch",), -1), "epoch"),
    ("epochStartRound float", _set(("epochStartRound",), 1.5), "epochStartRound"),
    ("rootNodes empty", _set(("rootNodes",), []), "rootNodes"),
    ("rootNodes missing", _delete("rootNodes"), "rootNodes"),
    ("node not an object", _set(("rootNodes", 0), "node"), "rootNodes[0]"),
    ("nodeId with slash", _set(("rootNodes", 0, "nodeId"), "16Uiu2/evil"), "rootNodes[0].nodeId"),
    ("sigKey without 0x", _set(("rootNodes", 1, "sigKey"), "02" + "ab" * 32), "rootNodes[1].sigKey"),
    ("sigKey uncompressed", _set(("rootNodes", 1, "sigKey"), "0x04" + "ab" * 64), "rootNodes[1].sigKey"),
    ("sigKey short", _set(("rootNodes", 1, "sigKey"), "0x02" + "ab" * 31), "rootNodes[1].sigKey"),
    ("sigKey off the curve", _set(("rootNodes", 2, "sigKey"), "0x02" + "00" * 32), "rootNodes[2].sigKey"),
    ("stake 2", _set(("rootNodes", 0, "stake"), 2), "rootNodes[0].stake"),
    ("rootNodes unsorted", _swap_first_nodes, "rootNodes"),
    ("nodeId duplicated", _duplicate_first_node, "rootNodes"),
    ("quorum below two thirds", _set(("quorumThreshold",), 2), "quorumThreshold"),
    ("quorum above total", _set(("quorumThreshold",), 4), "quorumThreshold"),
    ("quorum zero", _set(("quorumThreshold",), 0), "quorumThreshold"),
    ("signatures missing", _delete("signatures"), "signatures"),
    ("signatures a list", _set(("signatures",), []), "signatures"),
    ("signature of unknown node", _add_unknown_signer, "signatures[16Uiu2HAkwStranger]"),
    ("signature short", _set(("signatures", NODE_IDS[0]), "0x" + "ab" * 64), f"signatures[{NODE_IDS[0]}]"),
    ("stateHash not hex", _set(("stateHash",), "xyz"), "stateHash"),
]


def test_validate_trust_base_valid_document() -> None:
    assert validate_trust_base(VALID) == []


def test_validate_trust_base_accepts_empty_signatures() -> None:
    # An unsigned genesis trust base carries an empty map.
    document = copy.deepcopy(VALID)
    document["signatures"] = {}

    assert validate_trust_base(document) == []


def test_validate_trust_base_accepts_epoch_zero() -> None:
    document = copy.deepcopy(VALID)
    document["epoch"] = 0
    document["epochStartRound"] = 0

    assert validate_trust_base(document) == []


@pytest.mark.parametrize(("change", "field"), [case[1:] for case in INVALID_CASES], ids=[case[0] for case in INVALID_CASES])
def test_validate_trust_base_names_invalid_field(change: Callable[[dict[str, object]], None], field: str) -> None:
    document = copy.deepcopy(VALID)
    change(document)

    problems = validate_trust_base(document)

    assert problems, "the change should make the document invalid"
    assert any(problem.startswith(f"{field}: ") for problem in problems), problems


def test_validate_trust_base_lists_every_problem() -> None:
    document = copy.deepcopy(VALID)
    document["version"] = 2
    document["epoch"] = "one"
    document["rootNodes"][0]["stake"] = 5  # type: ignore[index]

    problems = validate_trust_base(document)

    assert [problem.split(":")[0] for problem in problems] == ["version", "epoch", "rootNodes[0].stake"]


def test_validate_trust_base_quorum_range_message() -> None:
    document = copy.deepcopy(VALID)
    document["quorumThreshold"] = 2

    assert validate_trust_base(document) == [
        "quorumThreshold: 2 is outside 3..3, the range from 2/3 of the total stake 3 plus one to all of it"
    ]


def test_validate_trust_base_rejects_non_object() -> None:
    assert validate_trust_base(["not", "an", "object"]) == ["document: expected a JSON object at the top level, got an array"]


def test_parse_trust_base_valid_document() -> None:
    trust_base = parse_trust_base(json.dumps(VALID))

    assert trust_base.network_id == 3
    assert trust_base.epoch == 1
    assert [node.node_id for node in trust_base.root_nodes] == list(NODE_IDS)
    assert trust_base.total_stake == 3
    assert trust_base.quorum_threshold == 3
    assert dict(trust_base.signatures) == VALID["signatures"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[1, 2]", "got an array"),
        ('"trust base"', "got a string"),
        ("null", "got null"),
    ],
)
def test_parse_trust_base_rejects_document(text: str, message: str) -> None:
    with pytest.raises(TrustBaseError) as raised:
        parse_trust_base(text)

    assert raised.value.field == "document"
    assert message in str(raised.value)


def test_parse_trust_base_lists_all_problems() -> None:
    document = copy.deepcopy(VALID)
    document["networkId"] = None
    document["quorumThreshold"] = 9

    with pytest.raises(TrustBaseError) as raised:
        parse_trust_base(json.dumps(document))

    assert raised.value.field == "networkId"
    assert len(raised.value.problems) == 2
    assert "and 1 more: quorumThreshold" in str(raised.value)


def test_decode_trust_base_document_accepts_bytes() -> None:
    assert decode_trust_base_document(json.dumps(VALID).encode()) == VALID


EXPECTED_ADDRESSES = ",".join(f"/dns4/bft-root/tcp/8000/p2p/{node_id}" for node_id in NODE_IDS)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(VALID, indent=2),
        json.dumps(VALID, separators=(",", ":")),
        json.dumps(dict(reversed(list(VALID.items())))),
        json.dumps(
            {**VALID, "rootNodes": [dict(reversed(list(node.items()))) for node in VALID["rootNodes"]]}  # type: ignore[union-attr]
        ),
        "\n\n   " + json.dumps(VALID, indent="\t").replace(": ", " :   ") + "\r\n\t ",
    ],
    ids=["pretty", "compact", "keys reordered", "node keys reordered", "extra whitespace"],
)
def test_bootstrap_addresses_independent_of_formatting(text: str) -> None:
    assert bootstrap_addresses(text) == EXPECTED_ADDRESSES


def test_bootstrap_addresses_host_and_port() -> None:
    single = make_trust_base(node_count=1)

    addresses = bootstrap_addresses(json.dumps(single), host="root.bft.test", port=18000)

    assert addresses == f"/dns4/root.bft.test/tcp/18000/p2p/{NODE_IDS[0]}"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"rootNodes": []}, "rootNodes"),
        ({"nodes": VALID["rootNodes"]}, "rootNodes"),
        ({"rootNodes": [{"nodeId": "16Uiu2HA,/ip4/1.2.3.4"}]}, "rootNodes[0].nodeId"),
        ({"rootNodes": [{"id": "16Uiu2HAkw1NodeA"}]}, "rootNodes[0].nodeId"),
    ],
    ids=["empty", "missing", "comma and slash in nodeId", "no nodeId"],
)
def test_bootstrap_addresses_rejects_document(document: dict[str, object], field: str) -> None:
    with pytest.raises(TrustBaseError) as raised:
        bootstrap_addresses(json.dumps(document))

    assert raised.value.field == field


@pytest.mark.parametrize(("host", "port"), [("bft_root", 8000), ("bft-root/x", 8000), ("bft-root", 0), ("bft-root", 70000)])
def test_bootstrap_addresses_rejects_host_or_port(host: str, port: int) -> None:
    with pytest.raises(SettingsError):
        bootstrap_addresses(json.dumps(VALID), host=host, port=port)


def test_trust_base_sha256_known_value() -> None:
    assert trust_base_sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
