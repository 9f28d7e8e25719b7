"""Unit tests of certificate parsing and renewal decisions (container/tls.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from unicity_infra.container.tls import (
    CertificateState,
    certificate_paths,
    parse_x509_text,
    render_openssl_request_config,
    renewal_reason,
)

OPENSSL_OUTPUT = """\
notAfter=Mar  4 20:09:24 2027 GMT
subject=CN=relay.example.org
issuer=CN=relay.example.org
X509v3 Subject Alternative Name: 
    DNS:relay.example.org, DNS:nostr.example.org
"""


def state(*, days: int, names: tuple[str, ...] = ("relay.example.org",), self_signed: bool = False) -> CertificateState:
    return CertificateState(
        domain="relay.example.org",
        cert_file=Path("/c"),
        key_file=Path("/k"),
        not_after=datetime(2027, 1, 1, tzinfo=timezone.utc),
        days_remaining=days,
        names=names,
        self_signed=self_signed,
    )


def test_parse_x509_text_self_signed() -> None:
    not_after, names, self_signed = parse_x509_text(OPENSSL_OUTPUT)

    assert not_after == datetime(2027, 3, 4, 20, 9, 24, tzinfo=timezone.utc)
    assert names == ("relay.example.org", "nostr.example.org")
    assert self_signed is True


def test_parse_x509_text_ca_issued_without_san() -> None:
    text = "notAfter=Dec 31 23:59:59 2026 GMT\nsubject=CN=relay.example.org\nissuer=CN=Pebble Intermediate CA 1a2b\n"

    not_after, names, self_signed = parse_x509_text(text)

    assert not_after == datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert names == ()
    assert self_signed is False


def test_parse_x509_text_missing_expiry() -> None:
    with pytest.raises(ValueError, match="no notAfter line"):
        parse_x509_text("subject=CN=x\n")


def test_certificate_paths_certbot_layout() -> None:
    cert_file, key_file = certificate_paths(Path("/etc/letsencrypt"), "relay.example.org")

    assert cert_file == Path("/etc/letsencrypt/live/relay.example.org/fullchain.pem")
    assert key_file == Path("/etc/letsencrypt/live/relay.example.org/privkey.pem")


def test_days_remaining_at_rounds_down() -> None:
    certificate = state(days=0)

    assert certificate.days_remaining_at(datetime(2026, 12, 1, 0, 0, 1, tzinfo=timezone.utc)) == 30
    assert certificate.days_remaining_at(datetime(2027, 1, 2, tzinfo=timezone.utc)) == -1


@pytest.mark.parametrize(
    ("certificate", "names", "test_mode", "expected"),
    [
        (None, ("relay.example.org",), True, "no certificate yet"),
        (state(days=30), ("relay.example.org",), True, "30 days left, renewal threshold is 30 days"),
        (state(days=5), ("relay.example.org",), False, "5 days left, renewal threshold is 30 days"),
        (state(days=89), ("relay.example.org", "nostr.example.org"), True, "certificate does not name nostr.example.org"),
        (state(days=89, self_signed=True), ("relay.example.org",), False, "certificate is self-signed but SSL_TEST_MODE is off"),
        (state(days=31), ("relay.example.org",), True, None),
        (state(days=89, self_signed=True), ("relay.example.org",), True, None),
    ],
)
def test_renewal_reason(
    certificate: CertificateState | None, names: tuple[str, ...], test_mode: bool, expected: str | None
) -> None:
    assert renewal_reason(certificate, names=names, renew_days=30, test_mode=test_mode) == expected


def test_render_openssl_request_config_names() -> None:
    config = render_openssl_request_config(("relay.example.org", "nostr.example.org"))

    assert "CN = relay.example.org\n" in config
    assert "subjectAltName = DNS:relay.example.org, DNS:nostr.example.org\n" in config
    assert "basicConstraints = critical, CA:FALSE\n" in config
    assert "extendedKeyUsage = serverAuth\n" in config
