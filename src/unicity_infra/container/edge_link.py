"""This container's side of the edge: its two registration phases, repairs, deregistration and advertised CA.

Phase 1 registers the domain and its aliases for plain HTTP (``https_port`` null) as soon as
nginx serves port 80, so that the CA's HTTP-01 validation can reach the container. Phase 2
adds the TLS port once nginx serves the certificate. ``EdgeLink`` remembers the current
phase, so a heartbeat can put back exactly that registration after the edge lost it.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unicity_infra.container.config import SupervisorConfig
from unicity_infra.container.registration import (
    RegistrationError,
    Transport,
    backends_url,
    register,
    unregister,
    urllib_transport,
)

__all__ = [
    "EdgeAdvertisement",
    "EdgeLink",
    "edge_api_url",
    "read_api_key",
]

logger = logging.getLogger(__name__)

_REPAIR_DEADLINE_S = 10.0
_QUERY_TIMEOUT_S = 5.0


def edge_api_url(host: str, port: int) -> str:
    """Return the registration API's base URL, e.g. ``http://haproxy:8404``."""
    return f"http://{host}:{port}"


def read_api_key(path: Path | None, *, api_url: str) -> str | None:
    """Return the key stored in PATH without surrounding whitespace, or None without a path.

    Raises RegistrationError (exit code 13) when the file cannot be read or is empty;
    the message names the file, never its content.
    """
    if path is None:
        return None
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistrationError(
            f"cannot read the edge API key file {path} (HAPROXY_API_KEY_FILE): {exc}; mount the key file there",
            url=api_url, domain="-",
        ) from None
    if not key:
        raise RegistrationError(
            f"the edge API key file {path} (HAPROXY_API_KEY_FILE) is empty; write the edge's key into it",
            url=api_url, domain="-",
        )
    return key


@dataclass(frozen=True)
class EdgeAdvertisement:
    """The ``GET /v1/edge`` document: the ACME directory and the PEM text of its CA files."""

    acme_directory: str | None
    acme_ca_pem: str | None
    ca_bundle_pem: str | None


class EdgeLink:
    """Registers this container's names with the edge and keeps them there until it leaves.

    ``register`` and ``repair`` may run in different threads; a lock keeps them apart.
    """

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str | None,
        container: str,
        names: Sequence[str],
        http_port: int,
        extra_ports: list[dict[str, object]] | None = None,
        register_deadline_s: float = 300.0,
        transport: Transport = urllib_transport,
    ) -> None:
        if not names:
            raise ValueError("an edge link needs at least one domain name")
        self.api_url = api_url
        self.container = container
        self.names = tuple(names)
        self.http_port = http_port
        self.extra_ports = extra_ports
        self.register_deadline_s = register_deadline_s
        self._api_key = api_key
        self._transport = transport
        self._lock = threading.Lock()
        self._https_port: int | None = None
        self._registered = False
        self._attempted = False
        self._leaving = False
        self._foreign_owners: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: SupervisorConfig) -> EdgeLink | None:
        """Build the link from HAPROXY_* settings; None without HAPROXY_HOST or without a domain.

        Raises RegistrationError when the API key file cannot be read.
        """
        if config.haproxy_host is None:
            return None
        if config.domain is None:
            logger.warning("HAPROXY_HOST is set but SSL_DOMAIN is empty, so nothing is registered with the edge")
            return None
        api_url = edge_api_url(config.haproxy_host, config.haproxy_api_port)
        extra_ports = [{"listen": port.listen, "target": port.target, "mode": port.mode} for port in config.extra_ports]
        return cls(
            api_url=api_url,
            api_key=read_api_key(config.haproxy_api_key_file, api_url=api_url),
            # The edge reaches the container by this name; Docker sets the host name to the container's.
            container=config.container_name or socket.gethostname(),
            names=config.server_names,
            http_port=config.http_listen_port,
            extra_ports=extra_ports or None,
        )

    @property
    def https_port(self) -> int | None:
        """The ``https_port`` of the current phase: None until TLS is served."""
        return self._https_port

    @property
    def is_registered(self) -> bool:
        return self._registered

    def register(self, https_port: int | None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Register every name with HTTPS_PORT (None for phase 1) and make it the current phase.

        Retries until ``register_deadline_s``, waiting between attempts with SLEEP, which
        may raise to abandon the retries. Raises RegistrationError (exit code 13).
        """
        with self._lock:
            # Set first: when an alias fails, the names registered before it must still be removed on exit.
            self._attempted = True
            register(
                self.api_url,
                domain=self.names[0],
                aliases=self.names[1:],
                container=self.container,
                http_port=self.http_port,
                https_port=https_port,
                extra_ports=self.extra_ports,
                api_key=self._api_key,
                deadline_s=self.register_deadline_s,
                transport=self._transport,
                sleep=sleep,
            )
            self._https_port = https_port
            self._registered = True

    def registration_of(self, name: str, *, timeout_s: float = _QUERY_TIMEOUT_S) -> dict[str, Any] | None:
        """Return the edge's registration of NAME as a JSON object, or None when it has none.

        Raises RegistrationError when the edge cannot be asked or gives an unexpected reply.
        """
        url = backends_url(self.api_url, name)
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            reply = self._transport("GET", url, None, headers, timeout_s)
        except OSError as exc:
            raise RegistrationError(f"asking {url} for the registration of {name} failed: {exc}", url=url, domain=name) from exc
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise RegistrationError(
                f"asking {url} for the registration of {name} returned HTTP {reply.status}",
                url=url, domain=name, status=reply.status, reply=reply.body[:300],
            )
        try:
            document = json.loads(reply.body)
        except json.JSONDecodeError:
            document = None
        # A 200 reply with another body still means the name is registered.
        return document if isinstance(document, dict) else {}

    def repair(self) -> list[str]:
        """Register again every name the edge lost or keeps with another phase's ports; return those names.

        A name registered to another container is left alone and reported once. Does
        nothing before the first registration or once the link is leaving. Raises
        RegistrationError when the edge cannot be asked or rejects the registration.
        """
        repaired: list[str] = []
        with self._lock:
            if not self._registered or self._leaving:
                return repaired
            for name in self.names:
                current = self.registration_of(name)
                if current is not None and not self._is_ours(current):
                    self._report_foreign_owner(name, str(current.get("container")))
                    continue
                self._foreign_owners.pop(name, None)
                if current is not None and self._matches_phase(current):
                    continue
                register(
                    self.api_url,
                    domain=name,
                    container=self.container,
                    http_port=self.http_port,
                    https_port=self._https_port,
                    extra_ports=self.extra_ports,
                    api_key=self._api_key,
                    deadline_s=_REPAIR_DEADLINE_S,
                    transport=self._transport,
                )
                repaired.append(name)
        return repaired

    def leave(self, *, deadline_s: float = 3.0) -> bool:
        """Delete this container's registrations, giving up after DEADLINE_S; return whether all were removed.

        Runs in a helper thread, so a hung edge cannot hold the caller longer than the
        deadline. Names now registered to another container are left alone. Failures are
        logged, not raised.
        """
        self._leaving = True
        if not self._attempted:
            return True
        outcome: list[bool] = []
        worker = threading.Thread(target=self._leave_all, args=(deadline_s, outcome), name="edge-leave", daemon=True)
        started = time.monotonic()
        worker.start()
        worker.join(deadline_s)
        if worker.is_alive():
            logger.warning("unregistering from the edge %s did not finish within %.1f s; stopping anyway", self.api_url, deadline_s)
            return False
        logger.debug("left the edge in %.2f s", time.monotonic() - started)
        return bool(outcome and outcome[0])

    def fetch_advertisement(self, *, timeout_s: float = _QUERY_TIMEOUT_S) -> EdgeAdvertisement | None:
        """Return what ``GET /v1/edge`` advertises, or None when the edge does not serve it (any 4xx).

        Raises OSError when the request gets no reply, and ValueError for a 5xx or a reply that is not a JSON object.
        """
        url = self.api_url.rstrip("/") + "/v1/edge"
        reply = self._transport("GET", url, None, {"Accept": "application/json"}, timeout_s)
        if 400 <= reply.status < 500:
            logger.debug("the edge does not advertise a CA: GET %s returned HTTP %d", url, reply.status)
            return None
        if reply.status != 200:
            raise ValueError(f"GET {url} returned HTTP {reply.status}")
        try:
            document = json.loads(reply.body)
        except json.JSONDecodeError as exc:
            raise ValueError(f"GET {url} returned invalid JSON ({exc.msg})") from None
        if not isinstance(document, dict):
            raise ValueError(f"GET {url} returned JSON that is not an object")
        return EdgeAdvertisement(
            acme_directory=_text_or_none(document.get("acme_directory")),
            acme_ca_pem=_text_or_none(document.get("acme_ca_pem")),
            ca_bundle_pem=_text_or_none(document.get("ca_bundle_pem")),
        )

    # -- internals ---------------------------------------------------------------

    def _is_ours(self, registration: dict[str, Any]) -> bool:
        owner = registration.get("container")
        return owner is None or str(owner).lower() == self.container.lower()

    def _matches_phase(self, registration: dict[str, Any]) -> bool:
        if "https_port" not in registration:
            return True
        return registration.get("https_port") == self._https_port and registration.get("http_port", self.http_port) == self.http_port

    def _report_foreign_owner(self, name: str, owner: str) -> None:
        if self._foreign_owners.get(name) == owner:
            return
        self._foreign_owners[name] = owner
        logger.warning(
            "domain %s is now registered to container %s on the edge, not to %s; leaving that registration alone",
            name, owner, self.container,
        )

    def _leave_all(self, deadline_s: float, outcome: list[bool]) -> None:
        deadline = time.monotonic() + deadline_s
        removed_all = True
        for name in self.names:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                removed_all = False
                break
            try:
                current = self.registration_of(name, timeout_s=min(remaining, 2.0))
            except RegistrationError as exc:
                logger.warning("not unregistering %s: %s", name, exc)
                removed_all = False
                continue
            if current is None:
                continue
            if not self._is_ours(current):
                logger.info("not unregistering %s: it is registered to container %s", name, current.get("container"))
                continue
            try:
                unregister(
                    self.api_url, domain=name, api_key=self._api_key,
                    deadline_s=max(deadline - time.monotonic(), 0.5), transport=self._transport,
                )
            except RegistrationError:
                removed_all = False  # unregister() has logged the failure
        outcome.append(removed_all)


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
