"""The signed ``certification_request`` a wallet sends to aggregator-go, and the inclusion proof it gets back.

Wire format as aggregator-go's ``pkg/api`` defines it (CBOR tags 39030 to 39033,
registered in unicitynetwork/unicity-ids ``cbor-tags.json``). This module only
builds and decodes, and ``aggregator.py`` sends.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

import cbor2
import coincurve

from unicity_infra.probes.errors import ProbeError

__all__ = [
    "CERTIFICATION_REQUEST_TAG",
    "CERTIFICATION_DATA_TAG",
    "PREDICATE_TAG",
    "INCLUSION_PROOF_TAG",
    "InclusionProofError",
    "CertificationRequest",
    "InclusionProof",
    "encode_pay_to_public_key_predicate",
    "compute_state_id",
    "compute_signing_digest",
    "build_certification_request",
    "create_probe_request",
    "decode_inclusion_proof_response",
]

logger = logging.getLogger(__name__)

# NOTE: tags, field order and hashing follow aggregator-go pkg/api (cbor_tags.go,
# certification_request.go, state_id.go) as read on main; not yet run against a real aggregator.
CERTIFICATION_REQUEST_TAG = 39030
CERTIFICATION_DATA_TAG = 39031
PREDICATE_TAG = 39032
INCLUSION_PROOF_TAG = 39033

CERTIFICATION_REQUEST_VERSION = 1
# Version 1 has five fields, and version 2 adds a timeout before the witness.
CERTIFICATION_DATA_VERSION = 1
# The standard pay-to-public-key predicate: engine 1, code h'01', params = the compressed key.
PAY_TO_PUBLIC_KEY_ENGINE = 1
PAY_TO_PUBLIC_KEY_CODE = b"\x01"
HASH_LENGTH = 32
WITNESS_LENGTH = 65


class InclusionProofError(ProbeError):
    """A ``get_inclusion_proof.v2`` result does not decode as the documented CBOR."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid get_inclusion_proof.v2 result: {reason}")


@dataclass(frozen=True)
class CertificationRequest:
    """A signed certification request and its CBOR encoding."""

    state_id: bytes
    public_key: bytes
    source_state_hash: bytes
    transaction_hash: bytes
    witness: bytes
    encoded: bytes

    @property
    def params(self) -> str:
        """The ``certification_request`` params: the hex of the CBOR, sent as one JSON string."""
        return self.encoded.hex()


@dataclass(frozen=True)
class InclusionProof:
    """A decoded ``get_inclusion_proof.v2`` result: ``[blockNumber, #39033([version, data, cert, UC])]``."""

    block_number: int
    version: int
    certification_data: object
    certificate_bytes: bytes
    unicity_certificate: object

    @property
    def is_inclusion(self) -> bool:
        """Tell whether this proves inclusion, because a non-inclusion proof carries null certification data."""
        return self.certification_data is not None

    @property
    def unicity_certificate_size(self) -> int:
        """Size of the unicity certificate in encoded CBOR bytes, or 0 when it is null or empty."""
        certificate = self.unicity_certificate
        if isinstance(certificate, cbor2.CBORTag):
            certificate = certificate.value
        if certificate is None or (isinstance(certificate, (bytes, str, list, tuple, dict)) and not certificate):
            return 0
        return len(cbor2.dumps(self.unicity_certificate))

    def is_for(self, request: CertificationRequest) -> bool:
        """Tell whether the proven certification data carries REQUEST's hashes and witness."""
        data = self.certification_data
        if isinstance(data, cbor2.CBORTag) and data.tag == CERTIFICATION_DATA_TAG:
            data = data.value
        if not isinstance(data, (list, tuple)) or len(data) < 5:
            return False
        # Versions 1 and 2 share the positions of the two hashes, and the witness is last in both.
        return (data[2], data[3], data[-1]) == (request.source_state_hash, request.transaction_hash, request.witness)


def encode_pay_to_public_key_predicate(public_key: bytes) -> cbor2.CBORTag:
    """Return the owner predicate that only the holder of PUBLIC_KEY (33 bytes, compressed) can unlock."""
    return cbor2.CBORTag(PREDICATE_TAG, [PAY_TO_PUBLIC_KEY_ENGINE, PAY_TO_PUBLIC_KEY_CODE, public_key])


def compute_state_id(public_key: bytes, source_state_hash: bytes) -> bytes:
    """Return the 32-byte state ID: SHA-256 of the CBOR array ``[ownerPredicate, sourceStateHash]``."""
    encoded = cbor2.dumps([encode_pay_to_public_key_predicate(public_key), source_state_hash])
    return hashlib.sha256(encoded).digest()


def compute_signing_digest(source_state_hash: bytes, transaction_hash: bytes) -> bytes:
    """Return the digest the witness signs: SHA-256 of the CBOR array ``[sourceStateHash, transactionHash]``."""
    return hashlib.sha256(cbor2.dumps([source_state_hash, transaction_hash])).digest()


def build_certification_request(
    private_key: coincurve.PrivateKey,
    *,
    source_state_hash: bytes,
    transaction_hash: bytes,
    aggregate_request_count: int = 1,
) -> CertificationRequest:
    """Build and sign the request that certifies TRANSACTION_HASH as spending SOURCE_STATE_HASH.

    Both hashes are raw 32-byte SHA-256 values. The witness is a recoverable
    secp256k1 signature of the digest itself (not hashed again), as R ‖ S ‖ V
    with V the recovery ID 0 or 1. Raises ValueError for a hash of another length.
    """
    for name, value in (("source_state_hash", source_state_hash), ("transaction_hash", transaction_hash)):
        if len(value) != HASH_LENGTH:
            raise ValueError(f"{name} must be {HASH_LENGTH} bytes, got {len(value)}")

    public_key = private_key.public_key.format(compressed=True)
    state_id = compute_state_id(public_key, source_state_hash)
    witness = private_key.sign_recoverable(compute_signing_digest(source_state_hash, transaction_hash), hasher=None)

    certification_data = cbor2.CBORTag(
        CERTIFICATION_DATA_TAG,
        [
            CERTIFICATION_DATA_VERSION,
            encode_pay_to_public_key_predicate(public_key),
            source_state_hash,
            transaction_hash,
            witness,
        ],
    )
    request = cbor2.CBORTag(
        CERTIFICATION_REQUEST_TAG,
        [CERTIFICATION_REQUEST_VERSION, state_id, certification_data, aggregate_request_count],
    )
    return CertificationRequest(
        state_id=state_id,
        public_key=public_key,
        source_state_hash=source_state_hash,
        transaction_hash=transaction_hash,
        witness=witness,
        encoded=cbor2.dumps(request, canonical=True),
    )


def create_probe_request() -> CertificationRequest:
    """Build a request from a fresh key and random hashes, so each probe certifies a new state."""
    return build_certification_request(
        coincurve.PrivateKey(),
        source_state_hash=secrets.token_bytes(HASH_LENGTH),
        transaction_hash=secrets.token_bytes(HASH_LENGTH),
    )


def decode_inclusion_proof_response(result: object) -> InclusionProof:
    """Decode RESULT, the JSON string of hex CBOR that ``get_inclusion_proof.v2`` returns.

    Raises :class:`InclusionProofError` naming the first part that does not match.
    """
    if not isinstance(result, str):
        raise InclusionProofError(f"expected a JSON string of hex CBOR, got {type(result).__name__}")
    try:
        decoded = cbor2.loads(bytes.fromhex(result.removeprefix("0x")))
    except (ValueError, cbor2.CBORDecodeError) as exc:
        # cbor2 6 no longer derives CBORDecodeError from ValueError.
        raise InclusionProofError(f"not hex-encoded CBOR ({exc}): {result[:80]!r}") from exc

    if not isinstance(decoded, (list, tuple)) or len(decoded) != 2:
        raise InclusionProofError(f"expected the array [blockNumber, inclusionProof], got {_describe(decoded)}")
    block_number, proof = decoded
    if not isinstance(block_number, int):
        raise InclusionProofError(f"blockNumber is {_describe(block_number)}, not an unsigned integer")
    if not isinstance(proof, cbor2.CBORTag) or proof.tag != INCLUSION_PROOF_TAG:
        raise InclusionProofError(f"the inclusion proof is {_describe(proof)}, not tag {INCLUSION_PROOF_TAG}")
    fields = proof.value
    if not isinstance(fields, (list, tuple)) or len(fields) != 4:
        raise InclusionProofError(
            f"expected [version, certificationData, certificateBytes, unicityCertificate], got {_describe(fields)}"
        )

    version, certification_data, certificate_bytes, unicity_certificate = fields
    if not isinstance(certificate_bytes, bytes):
        raise InclusionProofError(f"certificateBytes is {_describe(certificate_bytes)}, not a byte string")
    return InclusionProof(
        block_number=block_number,
        version=version,
        certification_data=certification_data,
        certificate_bytes=certificate_bytes,
        unicity_certificate=unicity_certificate,
    )


def _describe(value: object) -> str:
    if isinstance(value, cbor2.CBORTag):
        return f"tag {value.tag}"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)}"
    return type(value).__name__
