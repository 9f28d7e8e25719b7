"""The supervisor's status server: ``/_ssl/health`` as JSON on 127.0.0.1.

nginx proxies ``/_ssl/health`` here on both its ports; the container's
healthcheck reads it directly.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from unicity_infra.container.errors import SupervisorError
from unicity_infra.container.supervisor import RUNNING, ProcessStatus
from unicity_infra.container.tls import CertificateState

__all__ = ["HEALTH_PATH", "build_health_document", "is_tcp_reachable", "StatusServer"]

logger = logging.getLogger(__name__)

HEALTH_PATH = "/_ssl/health"


def build_health_document(
    *,
    boot_id: str,
    domain: str | None,
    tls_active: bool,
    certificate: CertificateState | None,
    service: ProcessStatus | None,
    upstream_port: int,
    app_reachable: bool,
    now: datetime,
) -> dict[str, Any]:
    """Build the ``/_ssl/health`` document; ``status`` is "ok" only while the service runs.

    BOOT_ID is random per supervisor start; it lets the supervisor recognise its
    own status server behind nginx rather than another process bound to the port.
    """
    cert_expires = None
    days_remaining = None
    if certificate is not None:
        cert_expires = certificate.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        days_remaining = certificate.days_remaining_at(now)

    return {
        "status": "ok" if service is not None and service.state == RUNNING else "degraded",
        "domain": domain,
        "tls": tls_active,
        "cert_expires": cert_expires,
        "days_remaining": days_remaining,
        "service": service.to_json() if service is not None else None,
        "app_upstream": f"127.0.0.1:{upstream_port}",
        "app_reachable": app_reachable,
        "boot_id": boot_id,
    }


def is_tcp_reachable(host: str, port: int, *, timeout_s: float = 1.0) -> bool:
    """Return whether a TCP connection to HOST:PORT opens within TIMEOUT_S."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class StatusServer:
    """Serves the document from DOCUMENT_PROVIDER at ``/_ssl/health`` in a background thread."""

    def __init__(self, port: int, document_provider: Callable[[], dict[str, Any]], *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.document_provider = document_provider
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; raises SupervisorError when the port cannot be bound."""
        handler = _make_handler(self.document_provider)
        try:
            self._server = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as exc:
            raise SupervisorError(
                f"status server could not listen on {self.host}:{self.port}: {exc.strerror}; "
                f"free the port or set UNICITY_STATUS_PORT"
            ) from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="status-server", daemon=True)
        self._thread.start()
        logger.info("status server listening on http://%s:%d%s", self.host, self.port, HEALTH_PATH)

    def stop(self) -> None:
        """Stop serving and close the socket; a second call does nothing."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None


def _make_handler(document_provider: Callable[[], dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        server_version = "unicity-supervisor"

        def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
            if self.path.split("?", 1)[0] != HEALTH_PATH:
                self._send_json(404, {"error": f"not found; the status server serves only {HEALTH_PATH}"})
                return
            try:
                document = document_provider()
            except Exception:  # a broken provider must not take the status server down
                logger.exception("building the health document failed")
                self._send_json(500, {"status": "error", "error": "building the health document failed"})
                return
            self._send_json(200, document)

        def _send_json(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by http.server
            logger.debug("status request from %s: " + format, self.client_address[0], *args)

    return HealthHandler
