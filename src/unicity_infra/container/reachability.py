"""Check that each domain reaches this container over plain HTTP before the ACME CA is asked.

A random token is written into the ACME webroot, which nginx serves on port 80, and
fetched back through ``http://<domain>/``, the way the CA's HTTP-01 validation will
fetch its own token. A domain whose DNS points elsewhere fails here with exit code 10
instead of failing the CA's validation, which counts against its rate limits.
"""

from __future__ import annotations

import http.client
import logging
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from unicity_infra.container.errors import EXIT_DOMAIN_UNREACHABLE, SupervisorError

__all__ = [
    "TOKEN_PREFIX",
    "DomainUnreachableError",
    "resolve_address",
    "fetch_token",
    "check_domains_reach_us",
]

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "unicity-reachability-"
_BODY_LIMIT = 4096


class DomainUnreachableError(SupervisorError):
    """A domain does not resolve, or ``http://<domain>/`` is served by something other than this container."""

    exit_code = EXIT_DOMAIN_UNREACHABLE

    def __init__(self, domain: str, address: str | None, reason: str) -> None:
        self.domain = domain
        self.address = address
        self.reason = reason
        where = f"resolves to {address}" if address else "does not resolve"
        super().__init__(
            f"domain {domain} does not reach this container: it {where}, and {reason}; point {domain} "
            "(DNS or /etc/hosts) at the edge or at this container, and check that the edge routes it here"
        )


def resolve_address(name: str, static_hosts: Mapping[str, str]) -> str:
    """Return the first address NAME resolves to, from STATIC_HOSTS first; raises OSError when it does not resolve."""
    if name in static_hosts:
        return static_hosts[name]
    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    if not infos:  # pragma: no cover - getaddrinfo raises instead of returning nothing
        raise OSError(f"no address for {name}")
    return str(infos[0][4][0])


def fetch_token(address: str, port: int, host: str, path: str, *, timeout_s: float) -> tuple[int, bytes]:
    """GET PATH from ADDRESS:PORT with ``Host: HOST``; return the status and at most 4 KiB of body.

    Redirects are not followed, and no proxy from the environment is used.
    """
    connection = http.client.HTTPConnection(address, port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers={"Host": host, "Connection": "close", "User-Agent": "unicity-infra"})
        response = connection.getresponse()
        return response.status, response.read(_BODY_LIMIT)
    finally:
        connection.close()


def check_domains_reach_us(
    names: Sequence[str],
    *,
    webroot: Path,
    port: int = 80,
    static_hosts: Mapping[str, str] | None = None,
    attempts: int = 3,
    interval_s: float = 2.0,
    timeout_s: float = 5.0,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> None:
    """Fetch a fresh token through ``http://<name>:PORT/`` for every name in NAMES.

    Each name gets ATTEMPTS tries, INTERVAL_S apart, because a route the edge has
    just added may need a moment. The token file is removed afterwards. Raises
    DomainUnreachableError for the first name that fails; returns early when cancelled.
    """
    challenge_dir = webroot / ".well-known" / "acme-challenge"
    challenge_dir.mkdir(parents=True, exist_ok=True)
    token_name = TOKEN_PREFIX + secrets.token_hex(8)
    token = secrets.token_hex(16)
    token_file = challenge_dir / token_name
    token_file.write_text(token)
    token_file.chmod(0o644)
    path = f"/.well-known/acme-challenge/{token_name}"

    try:
        for name in names:
            _check_one(
                name, path, token.encode(), port=port, static_hosts=static_hosts or {},
                attempts=attempts, interval_s=interval_s, timeout_s=timeout_s, is_cancelled=is_cancelled,
            )
    finally:
        token_file.unlink(missing_ok=True)


def _check_one(
    name: str,
    path: str,
    token: bytes,
    *,
    port: int,
    static_hosts: Mapping[str, str],
    attempts: int,
    interval_s: float,
    timeout_s: float,
    is_cancelled: Callable[[], bool],
) -> None:
    url = f"http://{name}{'' if port == 80 else f':{port}'}{path}"
    address: str | None = None
    reason = "no attempt was made"

    for attempt in range(1, attempts + 1):
        if is_cancelled():
            return
        try:
            address = resolve_address(name, static_hosts)
        except OSError as exc:
            address, reason = None, f"looking it up failed ({exc})"
        else:
            try:
                status, body = fetch_token(address, port, name, path, timeout_s=timeout_s)
            except (OSError, http.client.HTTPException) as exc:
                reason = f"GET {url} failed ({type(exc).__name__}: {exc})"
            else:
                if status == 200 and body.strip() == token:
                    logger.info("domain reaches this container domain=%s address=%s attempt=%d", name, address, attempt)
                    return
                reason = f"GET {url} returned HTTP {status} without this container's token"
        logger.debug("reachability check failed domain=%s attempt=%d/%d: %s", name, attempt, attempts, reason)
        if attempt < attempts:
            time.sleep(interval_s)

    raise DomainUnreachableError(name, address, reason)
