"""The supervisor's status server: ``/_ssl/health`` and a plan's public documents as JSON on 127.0.0.1.

nginx proxies ``/_ssl/health`` here on both its ports, and a plan's public
documents (such as the faucet's discovery document) at the paths the plan's
nginx locations name. The container's healthcheck reads it directly.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from unicity_infra.container.errors import SupervisorError
from unicity_infra.container.supervisor import RUNNING, ProcessStatus
from unicity_infra.container.tls import CertificateState

__all__ = ["HEALTH_PATH", "DocumentRoute", "build_health_document", "is_tcp_reachable", "StatusServer"]

logger = logging.getLogger(__name__)

HEALTH_PATH = "/_ssl/health"
# A document served besides the health document: its provider and the extra response headers.
DocumentRoute = tuple[Callable[[], dict[str, Any]], Mapping[str, str]]


def build_health_document(
    *,
    boot_id: str,
    domain: str | None,
    tls_active: bool,
    certificate: CertificateState | None,
    service: ProcessStatus | None,
    upstream_port: int | None,
    app_reachable: bool | None,
    now: datetime,
) -> dict[str, Any]:
    """Build the ``/_ssl/health`` document; ``status`` is "ok" only while the service runs.

    BOOT_ID is random per supervisor start; it lets the supervisor recognise its
    own status server behind nginx rather than another process bound to the port.
    A service without a port (UPSTREAM_PORT None) reports null for both app fields.
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
        "app_upstream": f"127.0.0.1:{upstream_port}" if upstream_port is not None else None,
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
    """Serves the document from DOCUMENT_PROVIDER at ``/_ssl/health``, and ROUTES, in a background thread."""

    def __init__(
        self,
        port: int,
        document_provider: Callable[[], dict[str, Any]],
        *,
        host: str = "127.0.0.1",
        routes: Mapping[str, DocumentRoute] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.document_provider = document_provider
        self.routes: dict[str, DocumentRoute] = {HEALTH_PATH: (document_provider, {"Cache-Control": "no-store"})}
        self.routes.update(routes or {})
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; raises SupervisorError when the port cannot be bound."""
        handler = _make_handler(self.routes)
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
        logger.info("status server listening on http://%s:%d paths=%s", self.host, self.port, ",".join(self.routes))

    def stop(self) -> None:
        """Stop serving and close the socket; a second call does nothing."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None


def _make_handler(routes: Mapping[str, DocumentRoute]) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        server_version = "unicity-supervisor"

        def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
            path = self.path.split("?", 1)[0]
            route = routes.get(path)
            if route is None:
                self._send_json(404, {"error": f"not found; the status server serves only {', '.join(routes)}"})
                return
            document_provider, headers = route
            try:
                document = document_provider()
            except Exception:  # a broken provider must not take the status server down
                logger.exception("building the document %s failed", path)
                self._send_json(500, {"status": "error", "error": f"building the document {path} failed"})
                return
            self._send_json(200, document, headers)

        def _send_json(self, status: int, document: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {"Cache-Control": "no-store"}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by http.server
            logger.debug("status request from %s: " + format, self.client_address[0], *args)

    return HealthHandler
