"""Certification request encoding and signing, inclusion proof decoding, and the stand-in's view of both."""

from __future__ import annotations

import hashlib

import cbor2
import coincurve
import pytest
from coincurve.ecdsa import cdata_to_der, deserialize_recoverable, recoverable_convert

from tests.fixtures import aggregator_standin
from unicity_infra.probes.certification import (
    CERTIFICATION_DATA_TAG,
    CERTIFICATION_REQUEST_TAG,
    INCLUSION_PROOF_TAG,
    PREDICATE_TAG,
    CertificationRequest,
    InclusionProof,
    InclusionProofError,
    build_certification_request,
    compute_signing_digest,
    compute_state_id,
    create_probe_request,
    decode_inclusion_proof_response,
)

SOURCE_STATE_HASH = hashlib.sha256(b"source state").digest()
TRANSACTION_HASH = hashlib.sha256(b"transaction").digest()


@pytest.fixture(scope="module")
def private_key() -> coincurve.PrivateKey:
    return coincurve.PrivateKey(hashlib.sha256(b"unicity-infra test key").digest())


@pytest.fixture(scope="module")
def request_(private_key: coincurve.PrivateKey) -> CertificationRequest:
    return build_certification_request(
        private_key, source_state_hash=SOURCE_STATE_HASH, transaction_hash=TRANSACTION_HASH
    )


def test_build_certification_request_cbor2_round_trip(
    request_: CertificationRequest, private_key: coincurve.PrivateKey
) -> None:
    public_key = private_key.public_key.format(compressed=True)

    decoded = cbor2.loads(request_.encoded)

    assert decoded.tag == CERTIFICATION_REQUEST_TAG
    version, state_id, data, aggregate_request_count = decoded.value
    assert (version, state_id, aggregate_request_count) == (1, request_.state_id, 1)
    assert data.tag == CERTIFICATION_DATA_TAG
    data_version, predicate, source_state_hash, transaction_hash, witness = data.value
    assert data_version == 1
    assert predicate.tag == PREDICATE_TAG
    assert list(predicate.value) == [1, b"\x01", public_key]
    assert (source_state_hash, transaction_hash, witness) == (SOURCE_STATE_HASH, TRANSACTION_HASH, request_.witness)
    assert cbor2.dumps(decoded, canonical=True) == request_.encoded


def test_build_certification_request_wire_prefix(request_: CertificationRequest) -> None:
    # Tag 39030 in two bytes (0xd9 0x98 0x76), an array of four, version 1, a 32-byte string.
    assert request_.encoded[:7] == bytes.fromhex("d99876840158") + b"\x20"
    assert request_.params == request_.encoded.hex()


def test_compute_state_id_layout(private_key: coincurve.PrivateKey) -> None:
    public_key = private_key.public_key.format(compressed=True)
    # CBOR written out by hand: array(2), tag 39032 [1, h'01', h'<33-byte key>'], h'<32-byte hash>'.
    encoded = (
        b"\x82"
        + bytes.fromhex("d99878" "83" "01" "4101" "5821")
        + public_key
        + bytes.fromhex("5820")
        + SOURCE_STATE_HASH
    )

    assert compute_state_id(public_key, SOURCE_STATE_HASH) == hashlib.sha256(encoded).digest()


def test_compute_signing_digest_layout() -> None:
    encoded = b"\x82\x58\x20" + SOURCE_STATE_HASH + b"\x58\x20" + TRANSACTION_HASH

    assert compute_signing_digest(SOURCE_STATE_HASH, TRANSACTION_HASH) == hashlib.sha256(encoded).digest()


def test_build_certification_request_signature_verifies(
    request_: CertificationRequest, private_key: coincurve.PrivateKey
) -> None:
    digest = compute_signing_digest(SOURCE_STATE_HASH, TRANSACTION_HASH)
    der_signature = cdata_to_der(recoverable_convert(deserialize_recoverable(request_.witness)))

    assert len(request_.witness) == 65
    assert request_.witness[64] in (0, 1)
    assert private_key.public_key.verify(der_signature, digest, hasher=None)


def test_build_certification_request_recovers_public_key(request_: CertificationRequest) -> None:
    digest = compute_signing_digest(SOURCE_STATE_HASH, TRANSACTION_HASH)

    recovered = coincurve.PublicKey.from_signature_and_message(request_.witness, digest, hasher=None)

    assert recovered.format(compressed=True) == request_.public_key


def test_build_certification_request_other_digest_fails(request_: CertificationRequest) -> None:
    other_digest = compute_signing_digest(TRANSACTION_HASH, SOURCE_STATE_HASH)
    der_signature = cdata_to_der(recoverable_convert(deserialize_recoverable(request_.witness)))

    assert not coincurve.PublicKey(request_.public_key).verify(der_signature, other_digest, hasher=None)


@pytest.mark.parametrize(
    ("source_state_hash", "transaction_hash", "name"),
    [(bytes(31), bytes(32), "source_state_hash"), (bytes(32), bytes(34), "transaction_hash")],
)
def test_build_certification_request_rejects_hash_length(
    private_key: coincurve.PrivateKey, source_state_hash: bytes, transaction_hash: bytes, name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        build_certification_request(private_key, source_state_hash=source_state_hash, transaction_hash=transaction_hash)


def test_create_probe_request_new_state_each_time() -> None:
    first, second = create_probe_request(), create_probe_request()

    assert first.state_id != second.state_id
    assert first.public_key != second.public_key


def _proof_result(block_number: object, proof: object) -> str:
    return cbor2.dumps([block_number, proof]).hex()


def _inclusion_proof(request: CertificationRequest, unicity_certificate: object) -> str:
    data = cbor2.loads(request.encoded).value[2]
    return _proof_result(7, cbor2.CBORTag(INCLUSION_PROOF_TAG, [1, data, b"\x01\x02", unicity_certificate]))


def test_decode_inclusion_proof_response_inclusion(request_: CertificationRequest) -> None:
    unicity_certificate = cbor2.CBORTag(1007, [1, b"input record", b"signatures"])

    proof = decode_inclusion_proof_response(_inclusion_proof(request_, unicity_certificate))

    assert proof.block_number == 7
    assert proof.is_inclusion
    assert proof.is_for(request_)
    assert proof.certificate_bytes == b"\x01\x02"
    assert proof.unicity_certificate_size == len(cbor2.dumps(unicity_certificate))


def test_decode_inclusion_proof_response_non_inclusion() -> None:
    result = _proof_result(9, cbor2.CBORTag(INCLUSION_PROOF_TAG, [1, None, b"\x01", b"certificate"]))

    proof = decode_inclusion_proof_response(result)

    assert not proof.is_inclusion
    assert proof.block_number == 9


def test_inclusion_proof_is_for_other_request(request_: CertificationRequest) -> None:
    proof = decode_inclusion_proof_response(_inclusion_proof(request_, b"certificate"))

    assert not proof.is_for(create_probe_request())


@pytest.mark.parametrize("unicity_certificate", [None, b"", [], cbor2.CBORTag(1007, [])], ids=["null", "bytes", "array", "tag"])
def test_inclusion_proof_empty_unicity_certificate(unicity_certificate: object) -> None:
    proof = InclusionProof(
        block_number=1, version=1, certification_data=None, certificate_bytes=b"", unicity_certificate=unicity_certificate
    )

    assert proof.unicity_certificate_size == 0


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"blockNumber": 1}, "expected a JSON string"),
        ("zz", "not hex-encoded CBOR"),
        ("ff", "not hex-encoded CBOR"),
        (cbor2.dumps({"a": 1}).hex(), "expected the array [blockNumber, inclusionProof]"),
        (_proof_result("7", cbor2.CBORTag(INCLUSION_PROOF_TAG, [1, None, b"", b"x"])), "blockNumber is str"),
        (_proof_result(7, [1, None, b"", b"x"]), "not tag 39033"),
        (_proof_result(7, cbor2.CBORTag(39030, [1, None, b"", b"x"])), "tag 39030, not tag 39033"),
        (_proof_result(7, cbor2.CBORTag(INCLUSION_PROOF_TAG, [1, None, b""])), "an array of 3"),
        (_proof_result(7, cbor2.CBORTag(INCLUSION_PROOF_TAG, [1, None, "text", b"x"])), "certificateBytes is str"),
    ],
    ids=["object", "not hex", "truncated", "map", "string block", "untagged", "wrong tag", "three fields", "text cert"],
)
def test_decode_inclusion_proof_response_rejects(result: object, message: str) -> None:
    with pytest.raises(InclusionProofError) as raised:
        decode_inclusion_proof_response(result)

    assert message in str(raised.value)


# The stand-in decodes requests with its own small CBOR codec; these cases keep it and cbor2 in step.


def test_standin_accepts_request(request_: CertificationRequest) -> None:
    status, state_id, certification_data = aggregator_standin.check_certification_request(request_.encoded)

    assert status == "SUCCESS"
    assert state_id == request_.state_id
    assert certification_data == cbor2.dumps(cbor2.loads(request_.encoded).value[2])


def test_standin_rejects_wrong_state_id(private_key: coincurve.PrivateKey) -> None:
    request = build_certification_request(
        private_key, source_state_hash=SOURCE_STATE_HASH, transaction_hash=TRANSACTION_HASH
    )
    fields = list(cbor2.loads(request.encoded).value)
    fields[1] = bytes(32)
    tampered = cbor2.CBORTag(CERTIFICATION_REQUEST_TAG, fields)

    status, _, _ = aggregator_standin.check_certification_request(cbor2.dumps(tampered))

    assert status == "STATE_ID_MISMATCH"


def test_standin_rejects_short_witness(request_: CertificationRequest) -> None:
    request_fields = list(cbor2.loads(request_.encoded).value)
    data_fields = list(request_fields[2].value)
    data_fields[4] = data_fields[4][:64]
    request_fields[2] = cbor2.CBORTag(CERTIFICATION_DATA_TAG, data_fields)
    tampered = cbor2.CBORTag(CERTIFICATION_REQUEST_TAG, request_fields)

    status, _, _ = aggregator_standin.check_certification_request(cbor2.dumps(tampered))

    assert status == "INVALID_SIGNATURE_FORMAT"


@pytest.mark.parametrize(
    "value",
    [0, 23, 24, 255, 256, 65535, 65536, 2**32, b"", b"\x00" * 300, "text", [1, [2, b"x"]], None, True, False],
)
def test_standin_encode_cbor_matches_cbor2(value: object) -> None:
    assert aggregator_standin.encode_cbor(value) == cbor2.dumps(value)


def test_standin_proof_decodes(request_: CertificationRequest) -> None:
    proof = aggregator_standin.Tag(
        INCLUSION_PROOF_TAG, [1, aggregator_standin.Raw(cbor2.dumps(cbor2.loads(request_.encoded).value[2])), b"c", b"uc"]
    )

    decoded = decode_inclusion_proof_response(aggregator_standin.encode_cbor([3, proof]).hex())

    assert decoded.block_number == 3
    assert decoded.is_for(request_)
    assert decoded.unicity_certificate == b"uc"
