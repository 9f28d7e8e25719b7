"""The full check of one Nostr relay endpoint, in the order a wallet meets it.

TCP connect, then TLS (``wss://`` only), NIP-11 and the websocket round trip.
Each step's own module does the work, and this one only runs them in order.
"""

from __future__ import annotations

import logging
from pathlib import Path

from unicity_infra.errors import SettingsError
from unicity_infra.probes.http import parse_endpoint, probe_nip11
from unicity_infra.probes.nostr import probe_websocket_roundtrip
from unicity_infra.probes.report import Check, Report, Status
from unicity_infra.probes.tls import probe_tcp, probe_tls

__all__ = ["probe_relay"]

logger = logging.getLogger(__name__)


def probe_relay(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> Report:
    """Check the relay at URL (``ws://`` or ``wss://``) and return one report for it.

    CONNECT sends every connection to that host and port instead of the URL's,
    keeping the URL's host name for SNI, Host and the certificate. The run stops
    after a failed TCP connect or TLS handshake, since every later step needs
    them. Raises :class:`SettingsError` for a URL that is not ``ws``/``wss``.
    """
    endpoint = parse_endpoint(url, connect=connect)
    if not url.lower().startswith(("ws://", "wss://")):
        raise SettingsError("relay URL", url, "use a ws:// or wss:// URL")
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

    checks.append(probe_nip11(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s))
    checks.extend(
        probe_websocket_roundtrip(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s)
    )
    return _finish(target, checks)


def _finish(target: str, checks: list[Check]) -> Report:
    report = Report(target=target, checks=tuple(checks))
    logger.info("probed relay %s: %d failed, %d warning(s)", target, report.failed, report.warnings)
    return report
