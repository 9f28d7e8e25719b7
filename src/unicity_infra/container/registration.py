"""Client of the edge's registration API (``/v1/backends``), used inside containers and by the host.

Standard library only. ``register`` keeps trying until a deadline, because a container often
starts before the edge does; ``unregister`` and ``is_registered`` are single-purpose helpers.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from unicity_infra.container.errors import EXIT_REGISTRATION, SupervisorError

__all__ = [
    "EXIT_REGISTRATION_FAILED",
    "MAX_CONFLICT_DELETES",
    "RegistrationError",
    "Reply",
    "Transport",
    "urllib_transport",
    "backends_url",
    "register",
    "unregister",
    "is_registered",
]

logger = logging.getLogger(__name__)

# ssl-manager's ssl-setup exits with 13 when HAProxy registration fails; entrypoints keep that code.
EXIT_REGISTRATION_FAILED = EXIT_REGISTRATION
# A 409 means another container owns the domain: delete that registration and post again, this often.
MAX_CONFLICT_DELETES = 3
REQUEST_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 30.0
REPLY_EXCERPT_CHARS = 300
# Statuses worth retrying: the edge is starting, overloaded or behind a proxy that timed out.
_TRANSIENT_STATUSES = {408, 425, 429}


class RegistrationError(SupervisorError):
    """Registration with the edge failed; the message carries the URL, last status and reply."""

    exit_code = EXIT_REGISTRATION_FAILED

    def __init__(self, message: str, *, url: str, domain: str, status: int | None = None, reply: str = "") -> None:
        self.url = url
        self.domain = domain
        self.status = status
        self.reply = reply
        super().__init__(message)


@dataclass(frozen=True)
class Reply:
    """An HTTP reply of the edge: status code and body text."""

    status: int
    body: str


# (method, url, body or None, headers, timeout in seconds) -> Reply; raises OSError when no reply came.
Transport = Callable[[str, str, bytes | None, dict[str, str], float], Reply]

# The edge is reached directly on the container network, never through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urllib_transport(method: str, url: str, body: bytes | None, headers: dict[str, str], timeout_s: float) -> Reply:
    """Send one request with urllib and return its reply, error statuses included."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return Reply(response.status, response.read().decode("utf-8", errors="replace"))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read().decode("utf-8", errors="replace"))
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise reason if isinstance(reason, OSError) else ConnectionError(str(reason)) from exc
    except http.client.HTTPException as exc:
        raise ConnectionError(f"malformed HTTP reply ({type(exc).__name__}: {exc})") from exc


def backends_url(api_url: str, domain: str | None = None) -> str:
    """Return the backends URL under ``api_url``, e.g. ``http://haproxy:8404`` → ``http://haproxy:8404/v1/backends``.

    ``api_url`` may already end in ``/v1``.
    """
    base = api_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    url = f"{base}/backends"
    if domain is not None:
        url += "/" + urllib.parse.quote(domain, safe="")
    return url


def _headers(api_key: str | None, *, with_body: bool) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if with_body:
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > REPLY_EXCERPT_CHARS:
        return flat[:REPLY_EXCERPT_CHARS] + "…"
    return flat


def _unique_aliases(domain: str, aliases: Iterable[str]) -> list[str]:
    unique: list[str] = []
    for alias in aliases:
        name = alias.strip()
        if name and name != domain and name not in unique:
            unique.append(name)
    return unique


@dataclass
class _Clock:
    """The time functions of one call, replaceable in unit tests."""

    sleep: Callable[[float], None]
    now: Callable[[], float]


def register(
    api_url: str,
    *,
    domain: str,
    container: str,
    http_port: int = 80,
    https_port: int | None,
    extra_ports: list[dict[str, object]] | None,
    api_key: str | None,
    deadline_s: float = 300.0,
    aliases: Sequence[str] = (),
    transport: Transport = urllib_transport,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Register ``domain`` and each alias with the edge, all pointing at ``container``.

    Every alias gets the same payload under its own name. 200 and 201 mean done. A 409 (the
    domain belongs to another container) deletes that registration and posts again, at most
    three times. A 401 or another 4xx fails at once. Refused connections, timeouts and 5xx
    are retried with backoff 1, 2, 4 … 30 s until ``deadline_s`` after the call started.
    Raises RegistrationError (exit code 13) naming the URL, the last status and reply.
    """
    timer = _Clock(sleep=sleep, now=clock)
    deadline = timer.now() + deadline_s

    for name in [domain, *_unique_aliases(domain, aliases)]:
        payload = {
            "domain": name,
            "container": container,
            "http_port": http_port,
            "https_port": https_port,
            "extra_ports": extra_ports,
        }
        _register_one(api_url, payload, api_key=api_key, deadline=deadline, transport=transport, timer=timer)


def _register_one(
    api_url: str,
    payload: dict[str, object],
    *,
    api_key: str | None,
    deadline: float,
    transport: Transport,
    timer: _Clock,
) -> None:
    domain = str(payload["domain"])
    url = backends_url(api_url)
    body = json.dumps(payload).encode()
    started = timer.now()
    deletes = 0
    attempt = 0
    delay_s = 1.0
    last_status: int | None = None
    last_reply = ""

    while True:
        attempt += 1
        timeout_s = max(1.0, min(REQUEST_TIMEOUT_S, deadline - timer.now()))
        try:
            reply = transport("POST", url, body, _headers(api_key, with_body=True), timeout_s)
        except OSError as exc:
            last_status, last_reply = None, f"no reply ({type(exc).__name__}: {exc})"
        else:
            if reply.status in (200, 201):
                logger.info(
                    "registered backend domain=%s container=%s https_port=%s attempt=%d",
                    domain, payload["container"], payload["https_port"], attempt,
                )
                return
            if reply.status == 409:
                deletes += 1
                if deletes > MAX_CONFLICT_DELETES:
                    raise RegistrationError(
                        f"registering {domain} with {url} failed: the domain was still registered to another "
                        f"container after {MAX_CONFLICT_DELETES} deletions (HTTP 409: {_excerpt(reply.body)}); "
                        "another container keeps re-registering it, so stop that container or pick another domain",
                        url=url, domain=domain, status=409, reply=_excerpt(reply.body),
                    )
                logger.warning(
                    "domain %s is registered to another container; deleting that registration (%d/%d)",
                    domain, deletes, MAX_CONFLICT_DELETES,
                )
                _delete_for_conflict(api_url, domain, api_key=api_key, transport=transport)
                continue
            _raise_if_final(reply, url=url, domain=domain, api_key=api_key)
            last_status, last_reply = reply.status, reply.body

        now = timer.now()
        if now >= deadline:
            status_text = f"HTTP {last_status}" if last_status is not None else "no HTTP status"
            raise RegistrationError(
                f"registering {domain} with {url} failed after {now - started:.0f} s and {attempt} attempts; "
                f"last reply: {status_text}: {_excerpt(last_reply)}; check that the edge API runs and that "
                "this container reaches it",
                url=url, domain=domain, status=last_status, reply=_excerpt(last_reply),
            )
        wait_s = min(delay_s, deadline - now)
        logger.info(
            "registering %s failed (%s); retrying in %.0f s, attempt=%d",
            domain, f"HTTP {last_status}" if last_status is not None else _excerpt(last_reply), wait_s, attempt + 1,
        )
        timer.sleep(wait_s)
        delay_s = min(delay_s * 2, MAX_BACKOFF_S)


def _raise_if_final(reply: Reply, *, url: str, domain: str, api_key: str | None) -> None:
    """Raise for replies that a retry cannot change: 401 and the other 4xx."""
    excerpt = _excerpt(reply.body)
    if reply.status == 401:
        hint = "the edge requires an API key but none was given" if not api_key else "the edge rejected the API key"
        raise RegistrationError(
            f"registering {domain} with {url} failed: {hint} (HTTP 401: {excerpt}); "
            "pass the key from the edge's API key file",
            url=url, domain=domain, status=401, reply=excerpt,
        )
    if 400 <= reply.status < 500 and reply.status not in _TRANSIENT_STATUSES:
        raise RegistrationError(
            f"registering {domain} with {url} was rejected: HTTP {reply.status}: {excerpt}",
            url=url, domain=domain, status=reply.status, reply=excerpt,
        )


def _delete_for_conflict(api_url: str, domain: str, *, api_key: str | None, transport: Transport) -> None:
    url = backends_url(api_url, domain)
    try:
        reply = transport("DELETE", url, None, _headers(api_key, with_body=False), REQUEST_TIMEOUT_S)
    except OSError as exc:
        logger.warning("deleting the conflicting registration of %s failed: %s", domain, exc)
        return
    if reply.status not in (200, 204, 404):
        logger.warning("deleting the conflicting registration of %s returned HTTP %d: %s", domain, reply.status, _excerpt(reply.body))


def unregister(
    api_url: str,
    *,
    domain: str,
    api_key: str | None,
    aliases: Sequence[str] = (),
    deadline_s: float = 10.0,
    transport: Transport = urllib_transport,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Delete the registrations of ``domain`` and its aliases; 200, 204 and 404 all count as done.

    Every name is tried even when one fails; then the first failure is raised as RegistrationError.
    """
    timer = _Clock(sleep=sleep, now=clock)
    deadline = timer.now() + deadline_s
    failures: list[RegistrationError] = []

    for name in [domain, *_unique_aliases(domain, aliases)]:
        try:
            _unregister_one(api_url, name, api_key=api_key, deadline=deadline, transport=transport, timer=timer)
        except RegistrationError as exc:
            logger.error("%s", exc)
            failures.append(exc)

    if failures:
        raise failures[0]


def _unregister_one(
    api_url: str,
    domain: str,
    *,
    api_key: str | None,
    deadline: float,
    transport: Transport,
    timer: _Clock,
) -> None:
    url = backends_url(api_url, domain)
    delay_s = 1.0
    while True:
        timeout_s = max(1.0, min(REQUEST_TIMEOUT_S, deadline - timer.now()))
        try:
            reply = transport("DELETE", url, None, _headers(api_key, with_body=False), timeout_s)
        except OSError as exc:
            last_status, last_reply = None, f"no reply ({type(exc).__name__}: {exc})"
        else:
            if reply.status in (200, 204, 404):
                logger.info("unregistered backend domain=%s status=%d", domain, reply.status)
                return
            _raise_if_final(reply, url=url, domain=domain, api_key=api_key)
            last_status, last_reply = reply.status, reply.body

        now = timer.now()
        if now >= deadline:
            status_text = f"HTTP {last_status}" if last_status is not None else "no HTTP status"
            raise RegistrationError(
                f"unregistering {domain} at {url} failed; last reply: {status_text}: {_excerpt(last_reply)}",
                url=url, domain=domain, status=last_status, reply=_excerpt(last_reply),
            )
        timer.sleep(min(delay_s, deadline - now))
        delay_s = min(delay_s * 2, MAX_BACKOFF_S)


def is_registered(
    api_url: str,
    domain: str,
    api_key: str | None,
    *,
    transport: Transport = urllib_transport,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> bool:
    """Return whether the edge has a registration for ``domain``; raise RegistrationError if it cannot tell."""
    url = backends_url(api_url, domain)
    try:
        reply = transport("GET", url, None, _headers(api_key, with_body=False), timeout_s)
    except OSError as exc:
        raise RegistrationError(
            f"asking {url} whether {domain} is registered failed: {exc}; check that the edge API runs",
            url=url, domain=domain,
        ) from exc

    if reply.status == 200:
        return True
    if reply.status == 404:
        return False
    _raise_if_final(reply, url=url, domain=domain, api_key=api_key)
    raise RegistrationError(
        f"asking {url} whether {domain} is registered failed: HTTP {reply.status}: {_excerpt(reply.body)}",
        url=url, domain=domain, status=reply.status, reply=_excerpt(reply.body),
    )
