"""Serve the genesis trust base at ``/.well-known/trust-base.json`` on a loopback port.

nginx proxies that path here. The file is read on every request, so a new
genesis is served at once. The ETag is the SHA-256 of the bytes served,
because nginx's own ETag (modification time and size) changes when the same
file is written again and may stay equal for a different file.

Run as ``python3 -m unicity_infra.container.trust_base_server --file PATH --port PORT``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "TRUST_BASE_PATH",
    "TrustBaseResponse",
    "trust_base_etag",
    "is_etag_match",
    "build_trust_base_response",
    "make_server",
    "main",
]

logger = logging.getLogger(__name__)

TRUST_BASE_PATH = "/.well-known/trust-base.json"
# A trust base lists the root nodes and their signatures. Even a large root
# committee stays far below this size, so a bigger file is not a trust base.
MAX_TRUST_BASE_BYTES = 1024 * 1024

# Every response carries these: wallets in browsers fetch the trust base from
# other origins, and a cache must revalidate so a new genesis is seen at once.
_COMMON_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class TrustBaseResponse:
    """Status, headers and body of one response for the trust-base path."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def trust_base_etag(data: bytes) -> str:
    """Return the strong ETag of DATA: its SHA-256 in hex, quoted as RFC 9110 section 8.8.3 requires."""
    return '"' + hashlib.sha256(data).hexdigest() + '"'


def is_etag_match(if_none_match: str | None, etag: str) -> bool:
    """Tell whether an If-None-Match header value matches ETAG.

    The comparison is weak (RFC 9110 section 13.1.2), so ``W/"x"`` matches ``"x"``.

    >>> is_etag_match('W/"a", "b"', '"b"')
    True
    """
    if not if_none_match:
        return False
    candidates = [item.strip() for item in if_none_match.split(",")]
    return "*" in candidates or etag in (candidate.removeprefix("W/") for candidate in candidates)


def build_trust_base_response(path: Path, *, if_none_match: str | None = None) -> TrustBaseResponse:
    """Read PATH and return the response to ``GET /.well-known/trust-base.json``.

    200 with the file, 304 when IF_NONE_MATCH matches its ETag, 404 with a JSON
    reason while the file does not exist, and 503 while it is unreadable or not
    JSON (the genesis steps may be writing it).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        reason = f"no trust base yet: {path} does not exist; the aggregator's genesis steps create it"
        return _json_error(404, reason)
    except OSError as exc:
        return _json_error(503, f"the trust base {path} cannot be read: {exc.strerror or exc}")

    if len(data) > MAX_TRUST_BASE_BYTES:
        return _json_error(503, f"{path} has {len(data)} bytes, more than a trust base can have")
    try:
        json.loads(data)
    except ValueError:
        return _json_error(503, f"{path} is not valid JSON yet; retry once the genesis steps have finished")

    etag = trust_base_etag(data)
    headers = {**_COMMON_HEADERS, "ETag": etag}
    if is_etag_match(if_none_match, etag):
        return TrustBaseResponse(304, headers)
    headers["Content-Type"] = "application/json"
    return TrustBaseResponse(200, headers, data)


def _json_error(status: int, reason: str) -> TrustBaseResponse:
    body = json.dumps({"error": reason}).encode() + b"\n"
    headers = {**_COMMON_HEADERS, "Content-Type": "application/json"}
    if status == 503:
        headers["Retry-After"] = "5"
    return TrustBaseResponse(status, headers, body)


def make_server(trust_base_file: Path, port: int, *, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Bind the trust-base server to HOST:PORT (0 picks a free port); raises OSError when it cannot bind."""
    server = ThreadingHTTPServer((host, port), _make_handler(trust_base_file))
    server.daemon_threads = True
    return server


def _make_handler(trust_base_file: Path) -> type[BaseHTTPRequestHandler]:
    class TrustBaseHandler(BaseHTTPRequestHandler):
        server_version = "unicity-trust-base"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
            self._answer(include_body=True)

        def do_HEAD(self) -> None:  # noqa: N802 - name fixed by http.server
            self._answer(include_body=False)

        def do_OPTIONS(self) -> None:  # noqa: N802 - name fixed by http.server
            # A CORS preflight; a plain GET needs none, but a wallet that sends
            # If-None-Match from a browser triggers one.
            self._send(TrustBaseResponse(204, {
                **_COMMON_HEADERS,
                "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": "If-None-Match",
                "Access-Control-Max-Age": "600",
            }), include_body=False)

        def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
            self._send(_method_not_allowed(), include_body=True)

        do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815 - names fixed by http.server

        def _answer(self, *, include_body: bool) -> None:
            if self.path.split("?", 1)[0] != TRUST_BASE_PATH:
                self._send(_json_error(404, f"not found; this server serves only {TRUST_BASE_PATH}"), include_body)
                return
            response = build_trust_base_response(trust_base_file, if_none_match=self.headers.get("If-None-Match"))
            self._send(response, include_body=include_body)

        def _send(self, response: TrustBaseResponse, include_body: bool) -> None:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.status != 304:
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if include_body and response.body:
                self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by http.server
            logger.debug("request from %s: " + format, self.client_address[0], *args)

    return TrustBaseHandler


def _method_not_allowed() -> TrustBaseResponse:
    response = _json_error(405, f"only GET and HEAD are allowed on {TRUST_BASE_PATH}")
    response.headers["Allow"] = "GET, HEAD, OPTIONS"
    return response


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then return 0; returns 1 when the port cannot be bound."""
    parser = argparse.ArgumentParser(prog="python3 -m unicity_infra.container.trust_base_server")
    parser.add_argument("--file", type=Path, required=True, help="the genesis trust-base.json")
    parser.add_argument("--port", type=int, required=True, help="loopback port to listen on")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s trust_base_server: %(message)s")

    try:
        server = make_server(options.file, options.port)
    except OSError as exc:
        logger.error("cannot listen on 127.0.0.1:%d: %s", options.port, exc.strerror or exc)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("serving %s from %s on 127.0.0.1:%d", TRUST_BASE_PATH, options.file, server.server_address[1])
    try:
        server.serve_forever()
    except SystemExit as exc:
        logger.info("stopping")
        return int(exc.code or 0)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
