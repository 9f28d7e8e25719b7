"""Service plan of the aggregator proxy image: nginx in front of aggregator-go, plus the trust base.

nginx proxies JSON-RPC and ``/health`` to ``AGGREGATOR_UPSTREAM``. The
supervised child is the small trust-base server, which serves the genesis
trust base mounted read-only at ``/etc/aggregator-config``. Readiness waits
for aggregator-go with ``GET /health``, because it returns 404 for ``GET /``.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from unicity_infra.container.config import SupervisorConfig, read_bool, read_path, read_port, read_str
from unicity_infra.container.errors import ConfigError
from unicity_infra.container.services.plan import ServicePlan
from unicity_infra.container.templating import render_template
from unicity_infra.container.trust_base_server import TRUST_BASE_PATH

__all__ = [
    "PROXY_UID",
    "PROXY_GID",
    "AggregatorProxySettings",
    "read_proxy_settings",
    "parse_upstream",
    "read_nameserver",
    "render_proxy_locations",
    "probe_backend_health",
    "probe_trust_base_server",
    "build_plan",
]

logger = logging.getLogger(__name__)

# The image creates an unprivileged user with these ids for the trust-base server.
PROXY_UID = 1001
PROXY_GID = 1001
DEFAULT_CONFIG_DIR = Path("/etc/aggregator-config")
DEFAULT_TRUST_BASE_PORT = 8082
# How long nginx caches the address of the aggregator's host name.
_RESOLVER_VALID_S = 10
_NAMESERVER = re.compile(r"^\s*nameserver\s+(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class AggregatorProxySettings:
    """The proxy's own environment values, validated."""

    upstream: str
    upstream_host: str
    upstream_port: int
    config_dir: Path
    trust_base_port: int
    expose_metrics: bool

    @property
    def trust_base_file(self) -> Path:
        return self.config_dir / "trust-base.json"

    @property
    def is_upstream_address(self) -> bool:
        """Tell whether the upstream host is an IP address, which nginx needs no resolver for."""
        try:
            ipaddress.ip_address(self.upstream_host)
        except ValueError:
            return False
        return True


def parse_upstream(value: str | None) -> tuple[str, str, int]:
    """Parse ``AGGREGATOR_UPSTREAM`` into (origin URL, host, port).

    >>> parse_upstream("http://unicity-aggregator:3000")
    ('http://unicity-aggregator:3000', 'unicity-aggregator', 3000)
    """
    example = "such as http://unicity-aggregator:3000"
    if value is None:
        raise ConfigError("AGGREGATOR_UPSTREAM", "", f"it is required; set it to aggregator-go's URL {example}")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError("AGGREGATOR_UPSTREAM", value, f"expected an http:// URL with a host, {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError("AGGREGATOR_UPSTREAM", value, f"expected only scheme, host and port, {example}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError("AGGREGATOR_UPSTREAM", value, f"the port is not a number from 1 to 65535, {example}") from None
    host = parts.hostname
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"http://{netloc}", host, port


def read_proxy_settings(environ: Mapping[str, str]) -> AggregatorProxySettings:
    """Read AGGREGATOR_UPSTREAM, AGGREGATOR_CONFIG_DIR, AGGREGATOR_TRUST_BASE_PORT and AGGREGATOR_EXPOSE_METRICS."""
    upstream, host, port = parse_upstream(read_str(environ, "AGGREGATOR_UPSTREAM"))
    return AggregatorProxySettings(
        upstream=upstream,
        upstream_host=host,
        upstream_port=port,
        config_dir=read_path(environ, "AGGREGATOR_CONFIG_DIR") or DEFAULT_CONFIG_DIR,
        trust_base_port=read_port(environ, "AGGREGATOR_TRUST_BASE_PORT", DEFAULT_TRUST_BASE_PORT),
        expose_metrics=read_bool(environ, "AGGREGATOR_EXPOSE_METRICS", False),
    )


def read_nameserver(resolv_conf: str) -> str | None:
    """Return the first nameserver of a resolv.conf text, bracketed when it is IPv6, as nginx expects.

    >>> read_nameserver("search lan\\nnameserver 127.0.0.11\\n")
    '127.0.0.11'
    """
    match = _NAMESERVER.search(resolv_conf)
    if match is None:
        return None
    address = match.group(1).split("%", 1)[0]
    return f"[{address}]" if ":" in address else address


def render_proxy_locations(settings: AggregatorProxySettings, *, nameserver: str | None) -> str:
    """Render the server-level directives and location blocks of the aggregator proxy.

    An upstream host name is resolved per request through NAMESERVER (Docker's
    embedded DNS in a container), so a recreated aggregator container with a
    new address is reached without reloading nginx. Raises ConfigError for a
    host name without a NAMESERVER.
    """
    if settings.is_upstream_address:
        upstream_setup = "# The upstream is an IP address, so nginx needs no resolver for it."
        upstream = settings.upstream
    elif nameserver is None:
        raise ConfigError(
            "AGGREGATOR_UPSTREAM", settings.upstream,
            "its host name needs a DNS server, but /etc/resolv.conf names none; use an IP address or fix the DNS setup",
        )
    else:
        # A variable in proxy_pass makes nginx resolve the name at request time.
        upstream_setup = (
            f"resolver {nameserver} valid={_RESOLVER_VALID_S}s ipv6=off;\n"
            f"set $aggregator_upstream {settings.upstream};"
        )
        upstream = "$aggregator_upstream"

    metrics_location = ""
    if settings.expose_metrics:
        metrics_location = f"\n# AGGREGATOR_EXPOSE_METRICS=true\nlocation = /metrics {{\n    proxy_pass {upstream};\n}}\n"
    return render_template(
        "nginx-aggregator-locations.conf",
        upstream_setup=upstream_setup,
        upstream=upstream,
        metrics_location=metrics_location,
        metrics_hint=", /metrics" if settings.expose_metrics else "",
        trust_base_port=str(settings.trust_base_port),
    )


def probe_backend_health(settings: AggregatorProxySettings, timeout_s: float) -> str | None:
    """Return None when ``GET /health`` on the upstream returns 200, else the reason it does not."""
    connection = http.client.HTTPConnection(settings.upstream_host, settings.upstream_port, timeout=timeout_s)
    try:
        connection.request("GET", "/health", headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read(2048)
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {settings.upstream}/health failed: {exc}"
    finally:
        connection.close()
    if response.status != 200:
        return f"GET {settings.upstream}/health returned HTTP {response.status}: {body[:200]!r}"
    return None


def probe_trust_base_server(port: int, timeout_s: float) -> str | None:
    """Return None when the trust-base server on 127.0.0.1:PORT responds at all (404 before genesis counts)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("HEAD", TRUST_BASE_PATH)
        connection.getresponse().read()
    except (OSError, http.client.HTTPException) as exc:
        return f"the trust-base server on 127.0.0.1:{port} does not answer: {exc}"
    finally:
        connection.close()
    return None


def build_plan(config: SupervisorConfig, environ: Mapping[str, str]) -> ServicePlan:
    """Return the plan that runs the trust-base server as uid/gid 1001 and nginx in front of aggregator-go."""
    settings = read_proxy_settings(environ)
    nameserver = None if settings.is_upstream_address else read_nameserver(_read_resolv_conf())

    def readiness_probe(timeout_s: float) -> str | None:
        return probe_trust_base_server(settings.trust_base_port, timeout_s) or probe_backend_health(settings, timeout_s)

    return ServicePlan(
        name="aggregator-proxy",
        command=(
            sys.executable, "-m", "unicity_infra.container.trust_base_server",
            "--file", str(settings.trust_base_file),
            "--port", str(settings.trust_base_port),
        ),
        upstream_port=settings.trust_base_port,
        readiness_probe=readiness_probe,
        uid=config.service_uid if config.service_uid is not None else PROXY_UID,
        gid=config.service_gid if config.service_gid is not None else PROXY_GID,
        env=dict(environ),
        nginx_locations=render_proxy_locations(settings, nameserver=nameserver),
    )


def _read_resolv_conf() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""
