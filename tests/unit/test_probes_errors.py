"""mapping_errors: every library error a probe can meet becomes one ProbeError with a useful message."""

from __future__ import annotations

import errno
import socket
import ssl

import httpx
import pytest
import websockets.exceptions
from websockets.datastructures import Headers
from websockets.frames import Close
from websockets.http11 import Response

from unicity_infra.probes.errors import (
    ConnectFailedError,
    ProbeError,
    ProbeTimeoutError,
    ProtocolError,
    TLSHandshakeError,
    TLSVerifyError,
    format_address,
    mapping_errors,
)

ADDRESS = "127.0.0.1:7443"


def _mapped(exc: BaseException) -> ProbeError:
    with pytest.raises(ProbeError) as raised:
        with mapping_errors(step="the NIP-11 document", address=ADDRESS, timeout_s=2.5):
            raise exc
    assert raised.value.__cause__ is exc
    return raised.value


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


def test_mapping_errors_connection_refused() -> None:
    error = _mapped(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))

    assert isinstance(error, ConnectFailedError)
    assert str(error).startswith(f"connection refused to {ADDRESS}; check that the service is running")


def test_mapping_errors_httpx_wrapped_refusal() -> None:
    error = _mapped(_chained(httpx.ConnectError("[Errno 111] Connection refused"), ConnectionRefusedError(111, "x")))

    assert isinstance(error, ConnectFailedError)
    assert error.reason == "connection refused"


def test_mapping_errors_name_resolution() -> None:
    error = _mapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))

    assert isinstance(error, ConnectFailedError)
    assert "name resolution failed (Name or service not known)" in str(error)


def test_mapping_errors_unreachable_host() -> None:
    error = _mapped(OSError(errno.EHOSTUNREACH, "No route to host"))

    assert isinstance(error, ConnectFailedError)
    assert str(error) == f"connecting to {ADDRESS} failed: No route to host"


@pytest.mark.parametrize("exc", [TimeoutError("timed out"), TimeoutError(), httpx.ReadTimeout("read timed out")])
def test_mapping_errors_timeout(exc: BaseException) -> None:
    error = _mapped(exc)

    assert isinstance(error, ProbeTimeoutError)
    assert str(error) == f"timed out after 2.5 s waiting for the NIP-11 document from {ADDRESS}"


@pytest.mark.parametrize(
    ("code", "message", "hint"),
    [
        (20, "unable to get local issuer certificate", "trust the issuing CA with --ca-file"),
        (10, "certificate has expired", "renew it"),
        (62, "Hostname mismatch, certificate is not valid for 'faucet.test'.", "does not name this host"),
    ],
)
def test_mapping_errors_verify_failure_hint(code: int, message: str, hint: str) -> None:
    error = _mapped(_verify_error(code, message))

    assert isinstance(error, TLSVerifyError)
    assert error.verify_code == code
    assert str(error).startswith(f"TLS verify failed at {ADDRESS}: {message.rstrip('.')};")
    assert hint in str(error)


def test_mapping_errors_verify_failure_inside_httpx() -> None:
    inner = _verify_error(20, "unable to get local issuer certificate")

    error = _mapped(_chained(httpx.ConnectError("verify failed"), inner))

    assert isinstance(error, TLSVerifyError)


def test_mapping_errors_handshake_failure() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    exc.reason = "WRONG_VERSION_NUMBER"

    error = _mapped(exc)

    assert isinstance(error, TLSHandshakeError)
    assert f"TLS handshake with {ADDRESS} failed: wrong version number;" in str(error)


def test_mapping_errors_connection_reset() -> None:
    error = _mapped(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))

    assert isinstance(error, ProtocolError)
    assert "connection lost while waiting for the NIP-11 document: Connection reset by peer" in str(error)


def test_mapping_errors_websocket_status() -> None:
    error = _mapped(websockets.exceptions.InvalidStatus(Response(404, "Not Found", Headers())))

    assert isinstance(error, ProtocolError)
    assert "websocket upgrade rejected with HTTP 404" in str(error)


def test_mapping_errors_websocket_closed() -> None:
    exc = websockets.exceptions.ConnectionClosedError(Close(1011, "internal error"), None)

    error = _mapped(exc)

    assert isinstance(error, ProtocolError)
    assert "connection closed by the server while waiting for the NIP-11 document" in str(error)
    assert "internal error" in str(error)


def test_mapping_errors_keeps_probe_errors() -> None:
    original = ProtocolError(ADDRESS, "already mapped")

    with pytest.raises(ProtocolError) as raised:
        with mapping_errors(step="x", address=ADDRESS, timeout_s=1):
            raise original

    assert raised.value is original


def test_mapping_errors_passes_other_exceptions() -> None:
    with pytest.raises(KeyError):
        with mapping_errors(step="x", address=ADDRESS, timeout_s=1):
            raise KeyError("bug")


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [("127.0.0.1", 7777, "127.0.0.1:7777"), ("::1", 443, "[::1]:443"), ("relay.test", 443, "relay.test:443")],
)
def test_format_address(host: str, port: int, expected: str) -> None:
    assert format_address(host, port) == expected
