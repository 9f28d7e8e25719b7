"""Unit tests of the renewal schedule (container/renewal.py); certbot and nginx runs are component tests."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from unicity_infra.container.config import load_config
from unicity_infra.container.reachability import DomainUnreachableError
from unicity_infra.container.renewal import CertificateRenewer, leaf_certificate_der
from unicity_infra.container.tls import AcmeSource


def renewer_for(tmp_path: Path, before_request, **environ: str) -> CertificateRenewer:  # noqa: ANN001
    config = load_config({"SSL_DOMAIN": "relay.example.org", "SSL_CERT_ROOT": str(tmp_path / "le"), **environ})
    return CertificateRenewer(
        config,
        acme=lambda: AcmeSource(None),
        apply=lambda certificate: None,
        before_request=before_request,
        uniform=lambda low, high: high,
    )


def test_next_delay_adds_jitter_to_interval(tmp_path: Path) -> None:
    renewer = renewer_for(tmp_path, None, SSL_RENEW_INTERVAL_S="43200")

    assert renewer.next_delay_s() == 43200 + 1800


def test_failed_round_is_counted_and_schedule_continues(tmp_path: Path) -> None:
    calls: list[float] = []

    def unreachable() -> None:
        calls.append(time.monotonic())
        raise DomainUnreachableError("relay.example.org", None, "looking it up failed")

    renewer = renewer_for(tmp_path, unreachable, SSL_RENEW_FIRST_CHECK_S="0.05", SSL_RENEW_INTERVAL_S="0.05")
    renewer.jitter_s = 0.0
    renewer._uniform = lambda low, high: 0.0
    renewer.start()
    time.sleep(0.5)
    renewer.stop()

    assert renewer.failures >= 2
    assert renewer.renewals == 0
    assert len(calls) == renewer.failures


def test_renewer_needs_domain() -> None:
    with pytest.raises(ValueError, match="SSL_DOMAIN"):
        CertificateRenewer(load_config({}), acme=lambda: AcmeSource(None), apply=lambda certificate: None)


def test_leaf_certificate_der_without_certificate(tmp_path: Path) -> None:
    pem = tmp_path / "fullchain.pem"
    pem.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")

    with pytest.raises(ValueError, match="contains no PEM certificate"):
        leaf_certificate_der(pem)
