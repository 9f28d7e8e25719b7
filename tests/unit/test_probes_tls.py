"""Certificate expiry classification, SAN matching and leaf parsing, without any network."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from unicity_infra.probes.report import Status
from unicity_infra.probes.tls import (
    classify_expiry,
    is_name_in_san,
    parse_leaf_certificate,
)


@pytest.mark.parametrize(
    ("expires_in_days", "expected"),
    [
        (90, Status.OK),
        (15, Status.OK),
        (14.01, Status.OK),
        (14, Status.WARN),
        (7, Status.WARN),
        (1, Status.WARN),
        (0.5, Status.WARN),
        (0, Status.FAIL),
        (-3, Status.FAIL),
    ],
)
def test_classify_expiry_thresholds(expires_in_days: float, expected: Status) -> None:
    assert classify_expiry(expires_in_days) is expected


@pytest.mark.parametrize(
    ("server_name", "dns_names", "expected"),
    [
        ("relay.test", ("relay.test",), True),
        ("RELAY.test", ("relay.TEST",), True),
        ("relay.test.", ("relay.test",), True),
        ("relay.dev.test", ("*.dev.test",), True),
        ("a.relay.dev.test", ("*.dev.test",), False),
        ("dev.test", ("*.dev.test",), False),
        ("faucet.test", ("relay.test", "aggregator.test"), False),
        ("relay.test", (), False),
    ],
)
def test_is_name_in_san_dns(server_name: str, dns_names: tuple[str, ...], expected: bool) -> None:
    assert is_name_in_san(server_name, dns_names=dns_names, ip_addresses=()) is expected


@pytest.mark.parametrize(
    ("server_name", "ip_addresses", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1",), True),
        ("::1", ("::1",), True),
        ("127.0.0.2", ("127.0.0.1",), False),
        ("127.0.0.1", (), False),
    ],
)
def test_is_name_in_san_ip(server_name: str, ip_addresses: tuple[str, ...], expected: bool) -> None:
    # An IP address never matches a DNS entry, even one that spells the same text.
    assert is_name_in_san(server_name, dns_names=(server_name,), ip_addresses=ip_addresses) is expected


def _self_signed_der(*, with_san: bool) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2026, 4, 1, tzinfo=datetime.UTC))
    )
    if with_san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("relay.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_parse_leaf_certificate_reads_san_and_dates() -> None:
    leaf = parse_leaf_certificate(_self_signed_der(with_san=True))

    assert leaf.dns_names == ("relay.test",)
    assert leaf.ip_addresses == ("127.0.0.1",)
    assert leaf.subject == "CN=relay.test"
    assert leaf.not_after == datetime.datetime(2026, 4, 1, tzinfo=datetime.UTC)


def test_parse_leaf_certificate_without_san() -> None:
    leaf = parse_leaf_certificate(_self_signed_der(with_san=False))

    assert leaf.dns_names == ()
    assert leaf.ip_addresses == ()
