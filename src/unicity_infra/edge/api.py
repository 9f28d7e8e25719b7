"""The registration API (``/v1/backends``) and the service that applies each change to haproxy.

``EdgeService`` owns the registrations: every change is rendered, checked with ``haproxy -c``,
saved and reloaded, one at a time. ``EdgeRequestHandler`` maps HTTP requests onto it.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from unicity_infra.edge.errors import (
    BodyTooLargeError,
    ConfigRejectedError,
    EdgeError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    UnauthorizedError,
)
from unicity_infra.edge.haproxy_config import Backend, HAProxyProcess, check_config, parse_backend
from unicity_infra.edge.state import (
    STANDARD_EDGE_PORTS,
    load_state,
    plan_registration,
    plan_removal,
    save_state,
    write_file_atomically,
)

__all__ = [
    "MAX_BODY_BYTES",
    "EdgeInfo",
    "EdgeService",
    "EdgeHTTPServer",
    "EdgeRequestHandler",
    "make_server",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

Renderer = Callable[[Sequence[Backend]], str]


@dataclass(frozen=True)
class EdgeInfo:
    """Certificate sources advertised by ``GET /v1/edge``.

    ``acme_directory`` is the ACME CA services should use, ``acme_ca_file`` the CA
    that verifies that directory's own HTTPS, and ``ca_bundle_path`` the roots that
    sign the certificates it issues. The two files are sent inline as PEM text,
    read at each request because a restarted CA adds a root.
    """

    acme_directory: str | None = None
    ca_bundle_url: str | None = None
    ca_bundle_path: str | None = None
    acme_ca_file: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "acme_directory": self.acme_directory,
            "ca_bundle_url": self.ca_bundle_url,
            "ca_bundle_path": self.ca_bundle_path,
            "ca_bundle_pem": _read_pem(self.ca_bundle_path),
            "acme_ca_pem": _read_pem(self.acme_ca_file),
        }


def _read_pem(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("cannot read advertised CA file path=%s error=%s", path, exc)
        return None


class EdgeService:
    """Registrations plus the haproxy that serves them; changes are serialized by one lock."""

    def __init__(
        self,
        *,
        state_path: Path,
        config_path: Path,
        haproxy: HAProxyProcess,
        render: Renderer,
        reserved_ports: Collection[int] = STANDARD_EDGE_PORTS,
        haproxy_bin: str = "haproxy",
        info: EdgeInfo | None = None,
    ) -> None:
        self.state_path = state_path
        self.config_path = config_path
        self.haproxy = haproxy
        self.info = info or EdgeInfo()
        self._render = render
        self._reserved_ports = frozenset(reserved_ports) | STANDARD_EDGE_PORTS
        self._haproxy_bin = haproxy_bin
        self._lock = threading.Lock()
        self._backends: dict[str, Backend] = {}

    def start(self) -> None:
        """Load the saved registrations, write and check their configuration, start haproxy.

        Raises StateFileError for an unreadable state file, ConfigRejectedError when haproxy
        rejects the configuration of the saved registrations, HAProxyError when it does not start.
        """
        with self._lock:
            self._backends = load_state(self.state_path)
            self._write_checked_config(self._backends)
            self.haproxy.start()
        logger.info("edge started with %d registrations from %s", len(self._backends), self.state_path)

    def stop(self) -> None:
        self.haproxy.stop()

    def list_backends(self) -> list[Backend]:
        with self._lock:
            return sorted(self._backends.values(), key=lambda backend: backend.domain)

    def get_backend(self, domain: str) -> Backend:
        with self._lock:
            backend = self._backends.get(domain.lower())
        if backend is None:
            raise NotFoundError(f"no backend is registered for domain {domain!r}")
        return backend

    def register(self, payload: object) -> tuple[Backend, bool]:
        """Add or update a registration from a request body; return it and whether it is new.

        Re-posting an identical registration changes nothing and does not reload haproxy.
        """
        backend = parse_backend(payload)

        with self._lock:
            planned, created = plan_registration(self._backends, backend, reserved_ports=self._reserved_ports)
            if not created and self._backends[backend.domain] == backend:
                logger.debug("registration unchanged domain=%s", backend.domain)
                return backend, False
            elapsed_s = self._apply(planned)

        logger.info(
            "%s backend domain=%s container=%s http_port=%d https_port=%s extra_ports=%s reload_s=%.2f",
            "registered" if created else "updated",
            backend.domain,
            backend.container,
            backend.http_port,
            backend.https_port,
            [port.to_json() for port in backend.extra_ports],
            elapsed_s,
        )
        return backend, created

    def unregister(self, domain: str) -> Backend:
        """Remove a registration and reload; raise NotFoundError if the domain has none."""
        with self._lock:
            planned, removed = plan_removal(self._backends, domain.lower())
            elapsed_s = self._apply(planned)

        logger.info("unregistered backend domain=%s container=%s reload_s=%.2f", removed.domain, removed.container, elapsed_s)
        return removed

    def health(self) -> tuple[bool, dict[str, object]]:
        running = self.haproxy.is_running()
        with self._lock:
            count = len(self._backends)
        report: dict[str, object] = {
            "status": "ok" if running else "degraded",
            "backends": count,
            "haproxy": {
                "running": running,
                "master_pid": self.haproxy.master_pid,
                "reloads": self.haproxy.reloads,
                "restarts": self.haproxy.restarts,
            },
        }
        return running, report

    # -- internals; the callers hold self._lock --

    def _apply(self, planned: dict[str, Backend]) -> float:
        """Switch haproxy to ``planned``; on any failure the old file, state and routes stay."""
        started = time.monotonic()
        previous_config = self._read_config()

        self._write_checked_config(planned)
        try:
            save_state(self.state_path, planned)
            self.haproxy.reload()
        except BaseException:
            self._restore(previous_config)
            raise

        self._backends = planned
        return time.monotonic() - started

    def _restore(self, previous_config: str) -> None:
        try:
            write_file_atomically(self.config_path, previous_config)
            save_state(self.state_path, self._backends)
        except OSError as exc:
            logger.error("restoring %s and %s after a failed change failed: %s", self.config_path, self.state_path, exc)

    def _read_config(self) -> str:
        try:
            return self.config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self._render([])

    def _write_checked_config(self, backends: dict[str, Backend]) -> None:
        try:
            text = self._render(sorted(backends.values(), key=lambda backend: backend.domain))
        except ValueError as exc:
            raise ConfigRejectedError("render", [str(exc)]) from exc

        candidate = self.config_path.with_name(self.config_path.name + ".candidate")
        candidate.parent.mkdir(parents=True, exist_ok=True)
        candidate.write_text(text, encoding="utf-8")
        try:
            check_config(candidate, haproxy_bin=self._haproxy_bin)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        os.replace(candidate, self.config_path)


class EdgeHTTPServer(ThreadingHTTPServer):
    """The API's HTTP server: one thread per request, carrying the service and the API key."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: EdgeService, api_key: str | None) -> None:
        self.service = service
        self.api_key = api_key
        super().__init__(address, EdgeRequestHandler)


class EdgeRequestHandler(BaseHTTPRequestHandler):
    """Routes ``/v1/health``, ``/v1/edge`` and ``/v1/backends[/<domain>]``; replies are JSON."""

    server: EdgeHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "unicity-edge/1"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def _handle(self, method: str) -> None:
        try:
            self._route(method)
        except EdgeError as exc:
            logger.log(
                _log_level(exc.status),
                "%s %s from %s failed with HTTP %d: %s",
                method, self.path, self.client_address[0], exc.status, exc,
            )
            # The body may be unread (a 401 is decided from the headers), so this connection cannot carry another request.
            self.close_connection = True
            self._send_json(exc.status, exc.to_json(), extra_headers=_error_headers(exc))
        except Exception:
            logger.exception("%s %s failed unexpectedly", method, self.path)
            self.close_connection = True
            self._send_json(500, {"error": "internal error in the edge API; see its log"})

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        service = self.server.service

        if path == "/v1/health":
            self._require_method(method, ("GET",))
            healthy, report = service.health()
            self._send_json(200 if healthy else 503, report)
            return
        if path == "/v1/edge":
            self._require_method(method, ("GET",))
            self._send_json(200, service.info.to_json())
            return

        if path in ("/v1/backends", "/v1/backends/"):
            self._require_auth()
            self._require_method(method, ("GET", "POST"))
            if method == "GET":
                self._send_json(200, {"backends": [backend.to_json() for backend in service.list_backends()]})
                return
            backend, created = service.register(self._read_json_body())
            self._send_json(201 if created else 200, backend.to_json())
            return

        if path.startswith("/v1/backends/"):
            domain = unquote(path[len("/v1/backends/"):]).rstrip("/")
            if not domain or "/" in domain:
                raise NotFoundError(f"no such endpoint: {path}")
            self._require_auth()
            self._require_method(method, ("GET", "DELETE"))
            if method == "GET":
                self._send_json(200, service.get_backend(domain).to_json())
                return
            service.unregister(domain)
            self._send_empty(204)
            return

        raise NotFoundError(f"no such endpoint: {path}; the API serves /v1/backends, /v1/health and /v1/edge")

    def _require_method(self, method: str, allowed: tuple[str, ...]) -> None:
        if method not in allowed:
            raise MethodNotAllowedError(method, allowed)

    def _require_auth(self) -> None:
        key = self.server.api_key
        if key is None:
            return
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        # compare_digest takes time independent of where the strings differ.
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise UnauthorizedError(
                "missing or wrong API key; send 'Authorization: Bearer <key>' with the key from the edge's API key file"
            )

    def _read_json_body(self) -> object:
        if self.headers.get("Transfer-Encoding"):
            raise InvalidRequestError("chunked request bodies are not supported; send the body with Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise InvalidRequestError("invalid Content-Length header; send the body's size in bytes") from None
        if length > MAX_BODY_BYTES:
            raise BodyTooLargeError(f"request body of {length} bytes exceeds the limit of {MAX_BODY_BYTES} bytes")

        body = self.rfile.read(length) if length > 0 else b""
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidRequestError(f"request body is not valid JSON ({exc}); send a JSON object") from None

    def _send_json(self, status: int, document: object, *, extra_headers: dict[str, str] | None = None) -> None:
        body = (json.dumps(document) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _log_level(status: int) -> int:
    if status >= 500:
        return logging.ERROR
    if status == 422:
        return logging.WARNING
    return logging.INFO


def _error_headers(exc: EdgeError) -> dict[str, str]:
    if isinstance(exc, UnauthorizedError):
        return {"WWW-Authenticate": 'Bearer realm="unicity-edge"'}
    if isinstance(exc, MethodNotAllowedError):
        return {"Allow": ", ".join(exc.allowed)}
    return {}


def make_server(service: EdgeService, *, host: str, port: int, api_key: str | None) -> EdgeHTTPServer:
    """Bind the API on ``host:port``; ``api_key`` None leaves it open to anyone who can reach it."""
    return EdgeHTTPServer((host, port), service, api_key)
