"""Relay URLs and the NIP-11 check: the relay information document served over plain HTTP(S).

A ``connect`` override, like ``curl --connect-to``, sends the TCP connection to
another host and port while SNI, the Host header and certificate checks keep the
URL's host name. Transport checks live in ``tls.py``, the websocket in ``nostr.py``.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from unicity_infra.errors import SettingsError
from unicity_infra.probes.errors import (
    ProbeError,
    ProtocolError,
    format_address,
    mapping_errors,
)
from unicity_infra.probes.report import Check, Status
from unicity_infra.probes.tls import create_ssl_context

__all__ = [
    "NIP11_MEDIA_TYPE",
    "Endpoint",
    "parse_endpoint",
    "to_http_url",
    "fetch_nip11",
    "probe_nip11",
]

logger = logging.getLogger(__name__)

NIP11_MEDIA_TYPE = "application/nostr+json"

_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_DEFAULT_PORT = {"ws": 80, "http": 80, "wss": 443, "https": 443}


@dataclass(frozen=True)
class Endpoint:
    """A relay URL's host and port, and the address its TCP connection goes to."""

    url: str
    host: str
    port: int
    is_tls: bool
    connect_host: str
    connect_port: int

    @property
    def address(self) -> str:
        """The ``host:port`` connected to, for messages."""
        return format_address(self.connect_host, self.connect_port)

    @property
    def via(self) -> str:
        """A message suffix naming the override, empty without one."""
        if (self.connect_host, self.connect_port) == (self.host, self.port):
            return ""
        return f" via {self.address}"


def parse_endpoint(url: str, *, connect: tuple[str, int] | None = None) -> Endpoint:
    """Split a ws, wss, http or https URL into host and port, applying the CONNECT override.

    Raises :class:`SettingsError` for another scheme or a URL without a host.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _HTTP_SCHEME or not parts.hostname:
        raise SettingsError("relay URL", url, "use a ws://, wss://, http:// or https:// URL with a host name")
    try:
        port = parts.port or _DEFAULT_PORT[scheme]
    except ValueError as exc:
        raise SettingsError("relay URL", url, f"the port is invalid ({exc})") from exc

    connect_host, connect_port = connect if connect is not None else (parts.hostname, port)
    return Endpoint(
        url=url,
        host=parts.hostname,
        port=port,
        is_tls=scheme in ("wss", "https"),
        connect_host=connect_host,
        connect_port=connect_port,
    )


def to_http_url(url: str) -> str:
    """Turn a relay URL into the URL of its NIP-11 document: ``wss://relay.test/`` is ``https://relay.test/``."""
    parse_endpoint(url)
    scheme, rest = url.split(":", 1)
    return f"{_HTTP_SCHEME[scheme.lower()]}:{rest}"


def fetch_nip11(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Fetch the NIP-11 document of the relay at URL.

    Raises :class:`ProbeError` when the request fails or the response is not a
    JSON object with status 200.
    """
    endpoint = parse_endpoint(url, connect=connect)
    request_url = httpx.URL(to_http_url(url))
    headers = {"Accept": NIP11_MEDIA_TYPE}
    extensions: dict[str, Any] = {}
    if connect is not None:
        # Connect to the override, but send the URL's host in the Host header and
        # SNI. httpcore then also checks the certificate against that name.
        headers["Host"] = request_url.netloc.decode("ascii")
        extensions["sni_hostname"] = request_url.raw_host.decode("ascii")
        request_url = request_url.copy_with(host=endpoint.connect_host, port=endpoint.connect_port)

    # trust_env=False: a proxy from the environment would change what is probed.
    context = create_ssl_context(ca_file=ca_file, insecure=insecure)
    with (
        mapping_errors(step="the NIP-11 document", address=endpoint.address, timeout_s=timeout_s),
        httpx.Client(verify=context, timeout=timeout_s, trust_env=False) as client,
    ):
        response = client.get(request_url, headers=headers, extensions=extensions)
    logger.debug("NIP-11 GET %s%s status=%s", url, endpoint.via, response.status_code)

    return _parse_nip11_response(response, endpoint)


def probe_nip11(
    url: str,
    *,
    connect: tuple[str, int] | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    timeout_s: float = 10.0,
) -> Check:
    """Check that the relay at URL serves a NIP-11 document with ``name`` and ``supported_nips``.

    Missing one of the two is a warning, because NIP-11 makes every field
    optional. Missing both means the response is not from a relay, which fails.
    """
    started = time.monotonic()
    try:
        document = fetch_nip11(url, connect=connect, ca_file=ca_file, insecure=insecure, timeout_s=timeout_s)
    except ProbeError as exc:
        return Check("NIP-11", Status.FAIL, str(exc), _since(started))

    missing = [key for key in ("name", "supported_nips") if key not in document]
    summary = _summarize_nip11(document)
    if len(missing) == 2:
        detail = f"the JSON document has neither 'name' nor 'supported_nips', so it is not NIP-11 ({summary})"
        return Check("NIP-11", Status.FAIL, detail, _since(started))
    if missing:
        return Check("NIP-11", Status.WARN, f"{summary}; the document has no {missing[0]!r}", _since(started))
    return Check("NIP-11", Status.OK, summary, _since(started))


def _parse_nip11_response(response: httpx.Response, endpoint: Endpoint) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "no content type")
    if response.status_code != 200:
        raise ProtocolError(
            endpoint.address,
            f"GET {endpoint.url} with Accept: {NIP11_MEDIA_TYPE} returned HTTP {response.status_code} "
            f"({content_type}); is this the relay's URL?",
        )
    try:
        document = json.loads(response.content)
    except ValueError as exc:
        raise ProtocolError(
            endpoint.address,
            f"the NIP-11 response is not JSON ({content_type}, {len(response.content)} bytes): {exc}",
        ) from exc
    if not isinstance(document, dict):
        raise ProtocolError(endpoint.address, f"the NIP-11 response is JSON but not an object: {response.text[:80]!r}")
    return document


def _summarize_nip11(document: dict[str, Any]) -> str:
    fields = [f"{key}={document[key]!r}" for key in ("name", "software", "version") if key in document]
    if "supported_nips" in document:
        fields.append(f"supported_nips={document['supported_nips']}")
    return ", ".join(fields) or "an empty object"


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
