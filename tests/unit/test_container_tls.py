"""Unit tests of certificate parsing and renewal decisions (container/tls.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from unicity_infra.container.config import SupervisorConfig, load_config
from unicity_infra.container.tls import (
    AcmeSource,
    CertificateState,
    acme_source,
    certbot_command,
    certbot_renew_command,
    certificate_fingerprint,
    certificate_paths,
    parse_x509_text,
    render_openssl_request_config,
    renewal_reason,
    set_aside_unmanaged_certificate,
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


def acme_config(**environ: str) -> SupervisorConfig:
    return load_config({"SSL_DOMAIN": "relay.example.org", **environ})


def test_certbot_command_webroot_and_names() -> None:
    config = acme_config(SSL_DOMAIN_ALIASES="nostr.example.org")

    command = certbot_command(config, work_dir=Path("/run/w"), logs_dir=Path("/run/l"))

    assert command[:2] == ["/usr/bin/certbot", "certonly"]
    assert "--non-interactive" in command
    assert command[command.index("--webroot-path") + 1] == "/var/www/acme-challenge"
    assert command[command.index("--config-dir") + 1] == "/etc/letsencrypt"
    assert command[command.index("--cert-name") + 1] == "relay.example.org"
    assert [command[index + 1] for index, arg in enumerate(command) if arg == "-d"] == ["relay.example.org", "nostr.example.org"]
    assert "--register-unsafely-without-email" in command
    assert "--staging" not in command
    assert "--server" not in command


def test_certbot_command_email_staging() -> None:
    command = certbot_command(
        acme_config(SSL_ADMIN_EMAIL="ops@example.org", SSL_STAGING="true"), work_dir=Path("/w"), logs_dir=Path("/l")
    )

    assert command[command.index("--email") + 1] == "ops@example.org"
    assert "--register-unsafely-without-email" not in command
    assert "--staging" in command


def test_certbot_command_acme_server_wins_over_staging() -> None:
    command = certbot_command(
        acme_config(ACME_SERVER="https://pebble:14000/dir", SSL_STAGING="true"), work_dir=Path("/w"), logs_dir=Path("/l")
    )

    assert command[command.index("--server") + 1] == "https://pebble:14000/dir"
    assert "--staging" not in command


def test_set_aside_unmanaged_certificate_moves_test_mode_files(tmp_path: Path) -> None:
    live = tmp_path / "live" / "relay.example.org"
    live.mkdir(parents=True)
    (live / "fullchain.pem").write_text("self-signed")

    moved_to = set_aside_unmanaged_certificate(tmp_path, "relay.example.org", now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))

    assert moved_to == tmp_path / "replaced" / "relay.example.org-20260102T030405Z"
    assert (moved_to / "live" / "fullchain.pem").read_text() == "self-signed"
    assert not live.exists()


def test_set_aside_unmanaged_certificate_keeps_certbot_lineage(tmp_path: Path) -> None:
    live = tmp_path / "live" / "relay.example.org"
    live.mkdir(parents=True)
    (tmp_path / "renewal").mkdir()
    (tmp_path / "renewal" / "relay.example.org.conf").write_text("[renewalparams]\n")

    assert set_aside_unmanaged_certificate(tmp_path, "relay.example.org") is None
    assert live.exists()


def test_acme_source_precedence() -> None:
    edge_ca = Path("/run/unicity/acme/edge-acme-ca.pem")
    advertised = {"advertised_directory": "https://haproxy:14000/dir", "advertised_ca_bundle": edge_ca}

    from_env = acme_source(acme_config(ACME_SERVER="https://ca.example/dir", ACME_CA_BUNDLE="/ca.pem"), **advertised)
    from_edge = acme_source(acme_config(SSL_STAGING="true"), **advertised)
    edge_with_own_bundle = acme_source(acme_config(ACME_CA_BUNDLE="/ca.pem"), **advertised)
    default = acme_source(acme_config())
    staging = acme_source(acme_config(SSL_STAGING="true"))

    assert from_env == AcmeSource("https://ca.example/dir", Path("/ca.pem"), origin="ACME_SERVER")
    assert from_edge == AcmeSource("https://haproxy:14000/dir", edge_ca, origin="edge")
    assert edge_with_own_bundle.ca_bundle == Path("/ca.pem")
    assert default == AcmeSource(None)
    assert staging == AcmeSource(None, staging=True)


def test_acme_source_describe() -> None:
    assert AcmeSource(None).describe() == "Let's Encrypt (https://acme-v02.api.letsencrypt.org/directory)"
    assert AcmeSource(None, staging=True).describe().startswith("Let's Encrypt staging (https://acme-staging-v02.")
    assert AcmeSource("https://h:14000/dir", origin="edge").describe() == "https://h:14000/dir (advertised by the edge)"
    assert AcmeSource("https://ca/dir", origin="ACME_SERVER").describe() == "https://ca/dir (set by ACME_SERVER)"


def test_certbot_command_with_edge_source() -> None:
    source = AcmeSource("https://haproxy:14000/dir", Path("/ca.pem"), origin="edge")

    command = certbot_command(acme_config(SSL_STAGING="true"), work_dir=Path("/w"), logs_dir=Path("/l"), acme=source)

    assert command[command.index("--server") + 1] == "https://haproxy:14000/dir"
    assert "--staging" not in command


def test_certbot_renew_command_only_this_lineage() -> None:
    source = AcmeSource("https://haproxy:14000/dir", origin="edge")

    command = certbot_renew_command(
        acme_config(SSL_DOMAIN_ALIASES="nostr.example.org"), source, work_dir=Path("/w"), logs_dir=Path("/l")
    )

    assert command[:2] == ["/usr/bin/certbot", "renew"]
    assert command[command.index("--cert-name") + 1] == "relay.example.org"
    assert command[command.index("--server") + 1] == "https://haproxy:14000/dir"
    assert command[command.index("--webroot-path") + 1] == "/var/www/acme-challenge"
    assert command[command.index("--config-dir") + 1] == "/etc/letsencrypt"
    assert "--no-random-sleep-on-renew" in command
    assert "--force-renewal" in command
    assert "-d" not in command


def test_certbot_renew_command_staging() -> None:
    command = certbot_renew_command(acme_config(), AcmeSource(None, staging=True), work_dir=Path("/w"), logs_dir=Path("/l"))

    assert "--staging" in command
    assert "--server" not in command


def test_certificate_fingerprint_follows_content(tmp_path: Path) -> None:
    cert_file = tmp_path / "fullchain.pem"
    cert_file.write_text("first")
    first = certificate_fingerprint(cert_file)
    cert_file.write_text("second")

    assert certificate_fingerprint(tmp_path / "missing.pem") is None
    assert first is not None
    assert certificate_fingerprint(cert_file) != first
