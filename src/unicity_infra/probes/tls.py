"""Transport checks: TCP connect, TLS handshake with SNI, certificate chain, name and expiry.

Also builds the SSL contexts and TCP sockets that the HTTP and Nostr probes use,
so every probe trusts the same CA file and reports connection errors the same way.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from unicity_infra.probes.errors import (
    CAFileError,
    ProbeError,
    TLSVerifyError,
    format_address,
    mapping_errors,
)
from unicity_infra.probes.report import Check, Status

__all__ = [
    "EXPIRY_WARN_DAYS",
    "LeafCertificate",
    "create_ssl_context",
    "open_tcp_connection",
    "probe_tcp",
    "probe_tls",
    "parse_leaf_certificate",
    "classify_expiry",
    "is_name_in_san",
]

logger = logging.getLogger(__name__)

# A certificate that expires within this many days is reported as a warning, so
# there is time to renew it before clients reject it.
EXPIRY_WARN_DAYS = 14


@dataclass(frozen=True)
class LeafCertificate:
    """The facts the probes report about a server's leaf certificate."""

    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime


@dataclass(frozen=True)
class _Handshake:
    version: str
    cipher: str
    leaf_der: bytes


def create_ssl_context(*, ca_file: Path | None, insecure: bool, check_hostname: bool = True) -> ssl.SSLContext:
    """Create a client context that trusts CA_FILE, or the system store when it is None.

    CA_FILE may contain a CA or the server's own self-signed certificate. Partial
    chains are accepted, so any certificate in the file counts as a trust anchor.
    With INSECURE nothing is verified. Raises :class:`CAFileError` when CA_FILE
    cannot be loaded.
    """
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    if ca_file is None:
        context = ssl.create_default_context()
    else:
        try:
            context = ssl.create_default_context(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise CAFileError(ca_file, _describe_load_error(exc)) from exc

    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = check_hostname
    return context


def open_tcp_connection(host: str, port: int, *, timeout_s: float) -> socket.socket:
    """Open a TCP connection to HOST:PORT; raises :class:`ProbeError` naming the address on failure."""
    address = format_address(host, port)
    with mapping_errors(step="the TCP connection", address=address, timeout_s=timeout_s):
        return socket.create_connection((host, port), timeout=timeout_s)


def probe_tcp(host: str, port: int, *, timeout_s: float = 10.0) -> Check:
    """Check that HOST:PORT accepts a TCP connection."""
    started = time.monotonic()
    try:
        connection = open_tcp_connection(host, port, timeout_s=timeout_s)
    except ProbeError as exc:
        return Check("TCP connect", Status.FAIL, str(exc), _since(started))

    connection.close()
    return Check("TCP connect", Status.OK, f"connected to {format_address(host, port)}", _since(started))


def probe_tls(
    host: str,
    port: int,
    *,
    server_name: str,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> list[Check]:
    """Check the TLS endpoint at HOST:PORT as a client requesting SERVER_NAME would.

    Returns the checks ``TLS handshake``, ``certificate chain``, ``certificate
    name`` and ``certificate expiry``; only the first when no handshake succeeds.
    A chain that does not verify is a failure, or a warning with INSECURE.
    """
    address = format_address(host, port)
    started = time.monotonic()
    try:
        handshake, verify_error = _handshake_with_fallback(
            host, port, server_name=server_name, ca_file=ca_file, timeout_s=timeout_s
        )
    except ProbeError as exc:
        return [Check("TLS handshake", Status.FAIL, str(exc), _since(started))]
    handshake_check = Check(
        "TLS handshake",
        Status.OK,
        f"{handshake.version} {handshake.cipher} with {address}, SNI {server_name}",
        _since(started),
    )

    leaf = parse_leaf_certificate(handshake.leaf_der)
    return [
        handshake_check,
        _chain_check(leaf, verify_error, ca_file=ca_file, insecure=insecure),
        _name_check(leaf, server_name),
        _expiry_check(leaf, now=datetime.datetime.now(datetime.UTC)),
    ]


def parse_leaf_certificate(der: bytes) -> LeafCertificate:
    """Parse the DER certificate a server sent into the facts the checks need."""
    certificate = x509.load_der_x509_certificate(der)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        ip_addresses = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns_names, ip_addresses = (), ()

    return LeafCertificate(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def classify_expiry(expires_in_days: float) -> Status:
    """Classify the time left: more than 14 days is ok, less is a warning, none left fails."""
    if expires_in_days <= 0:
        return Status.FAIL
    if expires_in_days <= EXPIRY_WARN_DAYS:
        return Status.WARN
    return Status.OK


def is_name_in_san(server_name: str, *, dns_names: tuple[str, ...], ip_addresses: tuple[str, ...]) -> bool:
    """Tell whether SERVER_NAME matches a SAN entry, with RFC 6125 wildcards in the left-most label only.

    ``is_name_in_san("relay.example.org", dns_names=("*.example.org",), ip_addresses=())`` is True;
    a wildcard never matches two labels or the bare parent domain.
    """
    try:
        address = ipaddress.ip_address(server_name)
    except ValueError:
        address = None
    if address is not None:
        return str(address) in ip_addresses

    name = server_name.rstrip(".").lower()
    for pattern in (entry.rstrip(".").lower() for entry in dns_names):
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name:
            first_label, parent = name.split(".", 1)
            if first_label and parent == pattern[2:]:
                return True
    return False


def _handshake_with_fallback(
    host: str, port: int, *, server_name: str, ca_file: Path | None, timeout_s: float
) -> tuple[_Handshake, TLSVerifyError | None]:
    # The verifying handshake is the one a wallet makes. When its chain does not
    # verify, a second, non-verifying handshake still fetches the leaf, so the
    # name and expiry checks can report why (an expired certificate, a wrong name).
    # Names are checked separately, so the first handshake does not check them.
    verifying = create_ssl_context(ca_file=ca_file, insecure=False, check_hostname=False)
    try:
        return _handshake(host, port, server_name=server_name, context=verifying, timeout_s=timeout_s), None
    except TLSVerifyError as exc:
        logger.debug("chain did not verify at %s: %s; fetching the leaf without verification", host, exc)
        verify_error = exc

    trusting = create_ssl_context(ca_file=None, insecure=True)
    return _handshake(host, port, server_name=server_name, context=trusting, timeout_s=timeout_s), verify_error


def _handshake(host: str, port: int, *, server_name: str, context: ssl.SSLContext, timeout_s: float) -> _Handshake:
    address = format_address(host, port)
    connection = open_tcp_connection(host, port, timeout_s=timeout_s)
    with (
        connection,
        mapping_errors(step="the TLS handshake", address=address, timeout_s=timeout_s),
        context.wrap_socket(connection, server_hostname=server_name) as tls,
    ):
        leaf_der = tls.getpeercert(binary_form=True)
        version = tls.version() or "unknown version"
        cipher = tls.cipher()
        cipher_name = cipher[0] if cipher is not None else "unknown cipher"

    if not leaf_der:
        raise TLSVerifyError(address, "the server sent no certificate")
    return _Handshake(version=version, cipher=cipher_name, leaf_der=leaf_der)


def _chain_check(
    leaf: LeafCertificate, verify_error: TLSVerifyError | None, *, ca_file: Path | None, insecure: bool
) -> Check:
    trust_store = f"CA file {str(ca_file)!r}" if ca_file is not None else "the system trust store"
    if verify_error is None:
        return Check("certificate chain", Status.OK, f"verified against {trust_store}; issuer {leaf.issuer}")

    if insecure:
        detail = f"not verified against {trust_store}: {verify_error.reason}; accepted because of --insecure"
        return Check("certificate chain", Status.WARN, detail)
    detail = f"TLS verify failed against {trust_store}: {verify_error.reason}; {verify_error.hint}"
    return Check("certificate chain", Status.FAIL, detail)


def _name_check(leaf: LeafCertificate, server_name: str) -> Check:
    entries = [f"DNS:{name}" for name in leaf.dns_names] + [f"IP:{ip}" for ip in leaf.ip_addresses]
    if not entries:
        return Check(
            "certificate name",
            Status.FAIL,
            f"certificate has no subjectAltName, so no client accepts it for {server_name}; subject {leaf.subject}",
        )
    listed = ", ".join(entries)

    if is_name_in_san(server_name, dns_names=leaf.dns_names, ip_addresses=leaf.ip_addresses):
        return Check("certificate name", Status.OK, f"SAN matches {server_name} ({listed})")
    return Check(
        "certificate name",
        Status.FAIL,
        f"SAN does not contain {server_name}; the certificate lists {listed}",
    )


def _expiry_check(leaf: LeafCertificate, *, now: datetime.datetime) -> Check:
    if now < leaf.not_before:
        return Check(
            "certificate expiry",
            Status.FAIL,
            f"certificate is not valid before {leaf.not_before:%Y-%m-%d %H:%M} UTC; check the server's clock",
        )

    expires_in_days = (leaf.not_after - now).total_seconds() / 86400
    status = classify_expiry(expires_in_days)
    expiry_date = f"{leaf.not_after:%Y-%m-%d %H:%M} UTC"
    if status is Status.FAIL:
        detail = f"certificate expired {-expires_in_days:.1f} days ago, on {expiry_date}; renew it"
    elif status is Status.WARN:
        detail = f"certificate expires in {expires_in_days:.1f} days, on {expiry_date}; renew it soon"
    else:
        detail = f"certificate expires in {expires_in_days:.0f} days, on {expiry_date}"
    return Check("certificate expiry", status, detail)


def _describe_load_error(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
    return exc.strerror or str(exc)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
