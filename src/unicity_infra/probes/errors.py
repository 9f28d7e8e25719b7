"""Exception tree of the probes, and the one place where library errors are mapped to it.

ProbeError                    base: a step against an endpoint failed (an InfraError)
├── CAFileError               the CA file given for verification cannot be loaded
├── ConnectFailedError        the TCP connection was refused or the host is unreachable
├── TLSHandshakeError         the TLS handshake failed for a reason other than trust
├── TLSVerifyError            the certificate chain or name did not verify
├── ProbeTimeoutError         no response within the timeout
└── ProtocolError             the server responded, but not as HTTP, NIP-11 or NIP-01 require
    └── RelayRejectedError    the relay rejected an event with ``["OK", id, false, reason]``

Probe functions catch :class:`ProbeError` and turn its message into a failed check,
while library helpers such as ``publish_many`` let it propagate.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import websockets.exceptions

from unicity_infra.errors import InfraError

__all__ = [
    "ProbeError",
    "CAFileError",
    "ConnectFailedError",
    "TLSHandshakeError",
    "TLSVerifyError",
    "ProbeTimeoutError",
    "ProtocolError",
    "RelayRejectedError",
    "mapping_errors",
    "format_address",
]

logger = logging.getLogger(__name__)

_TRUST_HINT = "trust the issuing CA with --ca-file, or skip verification with --insecure"
# OpenSSL X509_V_ERR_* codes (openssl/x509_vfy.h) whose fix is not another trust anchor.
_VERIFY_HINTS = {
    9: "the certificate is not valid yet; check the server's clock",
    10: "the certificate has expired; renew it",
    62: "the certificate does not name this host; check the URL's host name or the certificate's SAN",
}


class ProbeError(InfraError):
    """A connection or protocol step against an endpoint failed."""


class CAFileError(ProbeError):
    """The CA file given for certificate verification cannot be loaded."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"cannot load CA file {str(path)!r}: {reason}; "
            f"pass a PEM file with the issuing CA or the server's self-signed certificate"
        )


class ConnectFailedError(ProbeError):
    """The TCP connection to the endpoint failed."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        if reason == "connection refused":
            message = (
                f"connection refused to {address}; "
                f"check that the service is running and listens on that port"
            )
        else:
            message = f"connecting to {address} failed: {reason}"
        super().__init__(message)


class TLSHandshakeError(ProbeError):
    """The TLS handshake failed for a reason other than certificate trust."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(
            f"TLS handshake with {address} failed: {reason}; "
            f"check that the port serves TLS and the server name routes to a backend"
        )


class TLSVerifyError(ProbeError):
    """The server's certificate chain or name did not verify."""

    def __init__(self, address: str, reason: str, *, verify_code: int | None = None) -> None:
        self.address = address
        self.reason = reason.rstrip(".")
        self.verify_code = verify_code
        self.hint = _VERIFY_HINTS.get(verify_code, _TRUST_HINT) if verify_code is not None else _TRUST_HINT
        super().__init__(f"TLS verify failed at {address}: {self.reason}; {self.hint}")


class ProbeTimeoutError(ProbeError):
    """The endpoint did not respond within the timeout."""

    def __init__(self, step: str, address: str, timeout_s: float) -> None:
        self.step = step
        self.address = address
        self.timeout_s = timeout_s
        super().__init__(f"timed out after {timeout_s:g} s waiting for {step} from {address}")


class ProtocolError(ProbeError):
    """The endpoint responded, but not as the protocol requires."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"{address}: {reason}")


class RelayRejectedError(ProtocolError):
    """The relay rejected an event with ``["OK", id, false, reason]``."""

    def __init__(self, address: str, event_id: str, relay_message: str) -> None:
        self.event_id = event_id
        self.relay_message = relay_message
        super().__init__(address, f"relay rejected event {event_id}: {relay_message!r}")


def format_address(host: str, port: int) -> str:
    """Format HOST and PORT for messages: ``format_address("::1", 443)`` is ``[::1]:443``."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@contextlib.contextmanager
def mapping_errors(*, step: str, address: str, timeout_s: float) -> Iterator[None]:
    """Raise the matching :class:`ProbeError` for any socket, ssl, httpx or websockets error.

    STEP names what was awaited (``"the NIP-11 document"``) and ADDRESS is the
    ``host:port`` actually connected to; both end up in the message. The original
    exception is chained. Exceptions of other types propagate unchanged.
    """
    try:
        yield
    except ProbeError:
        raise
    except (OSError, httpx.HTTPError, websockets.exceptions.WebSocketException) as exc:
        mapped = _map_exception(exc, step=step, address=address, timeout_s=timeout_s)
        logger.debug("mapped %s to %s: %s", type(exc).__name__, type(mapped).__name__, mapped)
        raise mapped from exc


def _map_exception(exc: BaseException, *, step: str, address: str, timeout_s: float) -> ProbeError:
    # httpx wraps socket and ssl errors twice (httpx → httpcore → OSError), so the
    # innermost exception is the one that names the real cause.
    root = _innermost_cause(exc)

    if isinstance(root, ssl.SSLCertVerificationError):
        return TLSVerifyError(address, root.verify_message or str(root), verify_code=root.verify_code)
    if isinstance(root, ssl.SSLError):
        return TLSHandshakeError(address, _describe_ssl_error(root))
    if isinstance(root, TimeoutError) or isinstance(exc, httpx.TimeoutException):
        return ProbeTimeoutError(step, address, timeout_s)
    if isinstance(root, ConnectionRefusedError):
        return ConnectFailedError(address, "connection refused")
    if isinstance(root, socket.gaierror):
        return ConnectFailedError(address, f"name resolution failed ({root.strerror})")
    if isinstance(root, ConnectionError):
        return ProtocolError(address, f"connection lost while waiting for {step}: {_describe_os_error(root)}")
    if isinstance(root, OSError):
        return ConnectFailedError(address, _describe_os_error(root))

    return _map_protocol_exception(exc, step=step, address=address)


def _map_protocol_exception(exc: BaseException, *, step: str, address: str) -> ProbeError:
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        status = exc.response.status_code
        return ProtocolError(address, f"websocket upgrade rejected with HTTP {status}; is this a relay URL?")
    if isinstance(exc, websockets.exceptions.ConnectionClosed):
        return ProtocolError(address, f"connection closed by the server while waiting for {step} ({exc})")
    cause = _innermost_cause(exc)
    because = f" ({cause})" if cause is not exc and str(cause) else ""
    if isinstance(exc, websockets.exceptions.InvalidHandshake):
        return ProtocolError(address, f"websocket handshake failed: {exc}{because}")
    return ProtocolError(address, f"{type(exc).__name__} while waiting for {step}: {exc}{because}")


def _innermost_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        following = current.__cause__ or current.__context__
        if following is None:
            break
        current = following
    return current


def _describe_ssl_error(exc: ssl.SSLError) -> str:
    # OpenSSL's reason code (e.g. TLSV1_ALERT_INTERNAL_ERROR) is shorter and more
    # searchable than the full message with its file and line number.
    if exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc)


def _describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
