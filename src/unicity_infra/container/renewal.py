"""Certificate renewal while the container runs: ``certbot renew`` on a schedule, then a graceful nginx reload.

The first check comes ``SSL_RENEW_FIRST_CHECK_S`` after start, later ones every
``SSL_RENEW_INTERVAL_S`` plus up to 30 minutes of random jitter, so containers started
together do not renew together. A certificate is renewed by the same rule as at start:
``SSL_CERT_RENEW_DAYS`` or fewer days left. nginx re-reads it on SIGHUP; its old
workers finish the connections they hold, so open websockets survive.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from unicity_infra.container.config import SupervisorConfig
from unicity_infra.container.errors import ReloadError, SupervisorError
from unicity_infra.container.nginx import NginxSite, install_config, render_tls_config
from unicity_infra.container.tls import (
    AcmeSource,
    CertificateState,
    certificate_fingerprint,
    read_certificate_state,
    renew_acme_certificate,
    renewal_reason,
)

__all__ = [
    "RENEW_JITTER_S",
    "CertificateRenewer",
    "served_certificate_der",
    "leaf_certificate_der",
    "reload_nginx_certificate",
]

logger = logging.getLogger(__name__)

RENEW_JITTER_S = 1800.0
_RELOAD_WAIT_S = 10.0


class CertificateRenewer:
    """Checks the certificate on a schedule in a thread and renews it when it is due.

    ACME returns the CA to use at the time of each renewal; BEFORE_REQUEST runs just
    before the CA is asked; APPLY installs a renewed certificate. A failed round is
    logged and tried again at the next check.
    """

    def __init__(
        self,
        config: SupervisorConfig,
        *,
        acme: Callable[[], AcmeSource],
        apply: Callable[[CertificateState], None],
        before_request: Callable[[], None] | None = None,
        jitter_s: float = RENEW_JITTER_S,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if config.domain is None:
            raise ValueError("renewal needs SSL_DOMAIN")
        self.config = config
        self.acme = acme
        self.apply = apply
        self.before_request = before_request
        self.jitter_s = jitter_s
        self.renewals = 0
        self.failures = 0
        self._uniform = uniform
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="certificate-renewal", daemon=True)

    def start(self) -> None:
        logger.info(
            "certificate renewal scheduled domain=%s first_check_in=%gs interval=%gs",
            self.config.domain, self.config.renew_first_check_s, self.config.renew_interval_s,
        )
        self._thread.start()

    def stop(self, *, timeout_s: float = 1.0) -> None:
        """Stop the schedule; a renewal in flight is not interrupted, but the wait for it is bounded."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def next_delay_s(self) -> float:
        """Return the wait before the next regular check: the interval plus random jitter."""
        return self.config.renew_interval_s + self._uniform(0.0, self.jitter_s)

    def check(self) -> CertificateState | None:
        """Renew the certificate if it is due and install it; return the new certificate, or None.

        Raises SupervisorError subclasses: CertificateError, ReloadError, or the
        error BEFORE_REQUEST raises.
        """
        config = self.config
        assert config.domain is not None
        current = read_certificate_state(config.domain, config.cert_root, openssl=config.openssl_binary)
        reason = renewal_reason(current, names=config.server_names, renew_days=config.cert_renew_days, test_mode=False)
        if reason is None and current is not None:
            logger.info("certificate still valid domain=%s days_remaining=%d", config.domain, current.days_remaining)
            return None

        logger.info("certificate due for renewal domain=%s reason=%s", config.domain, reason)
        if self.before_request is not None:
            self.before_request()
        cert_file = current.cert_file if current is not None else config.cert_root / "live" / config.domain / "fullchain.pem"
        before = certificate_fingerprint(cert_file)
        renewed = renew_acme_certificate(config, self.acme())
        if certificate_fingerprint(renewed.cert_file) == before:
            logger.warning("certbot renew succeeded but left the certificate unchanged domain=%s", config.domain)
            return None

        logger.info(
            "certificate renewed domain=%s expires=%s", config.domain, renewed.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        self.apply(renewed)
        self.renewals += 1
        return renewed

    def _loop(self) -> None:
        delay_s = self.config.renew_first_check_s
        while not self._stop.wait(delay_s):
            try:
                self.check()
            except SupervisorError as exc:
                self.failures += 1
                logger.error("certificate renewal failed failures=%d: %s", self.failures, exc)
            except Exception:  # the schedule must survive a bug in one round
                self.failures += 1
                logger.exception("certificate renewal failed unexpectedly failures=%d", self.failures)
            delay_s = self.next_delay_s()
            logger.debug("next certificate check in %.0f s", delay_s)


def leaf_certificate_der(cert_file: Path) -> bytes:
    """Return the first certificate of a PEM chain file in DER form; raises ValueError without one."""
    text = cert_file.read_text(encoding="ascii")
    end_marker = "-----END CERTIFICATE-----"
    end = text.find(end_marker)
    if end < 0:
        raise ValueError(f"{cert_file} contains no PEM certificate")
    return ssl.PEM_cert_to_DER_cert(text[: end + len(end_marker)] + "\n")


def served_certificate_der(host: str, port: int, server_name: str, *, timeout_s: float = 2.0) -> bytes:
    """Return the DER certificate a new TLS connection to HOST:PORT with SNI SERVER_NAME is given.

    Nothing is verified: the caller compares the bytes. Raises OSError or ssl.SSLError.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout_s) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    if der is None:  # pragma: no cover - a completed handshake always carries the server certificate
        raise ssl.SSLError("the server sent no certificate")
    return der


def reload_nginx_certificate(
    config: SupervisorConfig,
    site: NginxSite,
    certificate: CertificateState,
    send_reload: Callable[[], bool],
    *,
    timeout_s: float = _RELOAD_WAIT_S,
) -> None:
    """Re-render and check the TLS configuration, reload nginx, and wait until new connections get CERTIFICATE.

    SEND_RELOAD sends nginx its SIGHUP and returns False when nginx is not running.
    Raises ReloadError when nginx rejects the configuration, is not running, or keeps
    serving the old certificate for TIMEOUT_S.
    """
    install_config(config.nginx_binary, site, render_tls_config(site, certificate))
    if not send_reload():
        raise ReloadError(str(site.conf_file), "nginx is not running, so it could not be reloaded")

    expected = leaf_certificate_der(certificate.cert_file)
    host = site.listen_address or "127.0.0.1"
    deadline = time.monotonic() + timeout_s
    last = "no attempt yet"
    while time.monotonic() < deadline:
        try:
            if served_certificate_der(host, site.https_port, certificate.domain) == expected:
                logger.info("nginx serves the renewed certificate domain=%s port=%d", certificate.domain, site.https_port)
                return
            last = "nginx still serves the previous certificate"
        except (OSError, ssl.SSLError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise ReloadError(str(site.conf_file), f"new connections did not get the renewed certificate within {timeout_s:g} s: {last}")
