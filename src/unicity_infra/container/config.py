"""Typed supervisor configuration read from the container's environment.

Every environment value the supervisor itself uses is parsed and checked here
once; service plans read their own variables with the same ``read_*`` helpers.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from unicity_infra.container.errors import ConfigError

__all__ = [
    "BackoffPolicy",
    "ExtraPort",
    "SupervisorConfig",
    "load_config",
    "read_str",
    "read_bool",
    "read_int",
    "read_float",
    "read_port",
    "read_path",
    "parse_domain",
    "parse_domain_aliases",
    "parse_extra_ports",
    "parse_listen_address",
    "parse_static_hosts",
    "parse_reachability_check",
    "check_port_conflicts",
]

logger = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# RFC 1123 host-name label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_EXTRA_PORT_MODES = ("tcp", "http")
REACHABILITY_CHECK_MODES = ("auto", "true", "false")


@dataclass(frozen=True)
class BackoffPolicy:
    """Restart delays for a crashed child: ``initial_s`` doubling up to ``max_s``.

    A child that ran at least ``reset_after_s`` before exiting starts again from
    ``initial_s``.
    """

    initial_s: float = 1.0
    max_s: float = 60.0
    reset_after_s: float = 60.0

    def delay_s(self, consecutive_failures: int) -> float:
        """Return the wait before restart number CONSECUTIVE_FAILURES (1 for the first).

        >>> [BackoffPolicy().delay_s(n) for n in (1, 2, 3, 7, 8)]
        [1.0, 2.0, 4.0, 60.0, 60.0]
        """
        if consecutive_failures < 1:
            return 0.0
        # Cap the exponent so a long crash loop cannot overflow the float.
        exponent = min(consecutive_failures - 1, 32)
        return min(self.initial_s * 2.0**exponent, self.max_s)


@dataclass(frozen=True)
class ExtraPort:
    """An extra listener the edge opens and forwards to this container (``EXTRA_PORTS`` item)."""

    listen: int
    target: int
    mode: str


@dataclass(frozen=True)
class SupervisorConfig:
    """Everything the supervisor reads from the environment, validated."""

    domain: str | None = None
    domain_aliases: tuple[str, ...] = ()
    admin_email: str | None = None
    ssl_required: bool = True
    ssl_staging: bool = False
    ssl_test_mode: bool = False
    cert_renew_days: int = 30
    https_port: int = 443
    http_listen_port: int = 80
    https_listen_port: int = 443
    listen_address: str | None = None
    status_port: int = 8081
    haproxy_host: str | None = None
    haproxy_api_port: int = 8404
    haproxy_api_key_file: Path | None = None
    extra_ports: tuple[ExtraPort, ...] = ()
    acme_server: str | None = None
    acme_ca_bundle: Path | None = None
    container_name: str | None = None
    heartbeat_s: float = 30.0
    reachability_check: str = "auto"
    domain_http_port: int = 80
    static_hosts: tuple[tuple[str, str], ...] = ()
    renew_first_check_s: float = 3600.0
    renew_interval_s: float = 43200.0
    stop_grace_s: float = 8.0
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    run_dir: Path = Path("/run/unicity")
    webroot: Path = Path("/var/www/acme-challenge")
    cert_root: Path = Path("/etc/letsencrypt")
    nginx_binary: Path = Path("/usr/sbin/nginx")
    nginx_user: str | None = None
    openssl_binary: Path = Path("/usr/bin/openssl")
    certbot_binary: Path = Path("/usr/bin/certbot")
    service_uid: int | None = None
    service_gid: int | None = None

    @property
    def tls_requested(self) -> bool:
        return self.domain is not None

    @property
    def server_names(self) -> tuple[str, ...]:
        """Return the primary domain followed by its aliases; empty without a domain."""
        if self.domain is None:
            return ()
        return (self.domain, *self.domain_aliases)

    def static_address(self, name: str) -> str | None:
        """Return the address ``UNICITY_HOSTS`` gives NAME, or None when NAME is resolved by DNS."""
        return dict(self.static_hosts).get(name)


def load_config(environ: Mapping[str, str]) -> SupervisorConfig:
    """Build the supervisor configuration from ENVIRON.

    Raises ConfigError naming the first invalid variable and what it accepts.
    """
    domain = parse_domain(read_str(environ, "SSL_DOMAIN"), name="SSL_DOMAIN")
    aliases = parse_domain_aliases(read_str(environ, "SSL_DOMAIN_ALIASES"), primary=domain)
    https_port = read_port(environ, "SSL_HTTPS_PORT", 443)
    backoff = BackoffPolicy(
        initial_s=read_float(environ, "UNICITY_BACKOFF_INITIAL_S", 1.0),
        max_s=read_float(environ, "UNICITY_BACKOFF_MAX_S", 60.0),
        reset_after_s=read_float(environ, "UNICITY_BACKOFF_RESET_S", 60.0),
    )
    running_as_root = os.geteuid() == 0

    config = SupervisorConfig(
        domain=domain,
        domain_aliases=aliases,
        admin_email=read_str(environ, "SSL_ADMIN_EMAIL"),
        ssl_required=read_bool(environ, "SSL_REQUIRED", True),
        ssl_staging=read_bool(environ, "SSL_STAGING", False),
        ssl_test_mode=read_bool(environ, "SSL_TEST_MODE", False),
        cert_renew_days=read_int(environ, "SSL_CERT_RENEW_DAYS", 30, minimum=0, maximum=3650),
        https_port=https_port,
        http_listen_port=read_port(environ, "UNICITY_HTTP_PORT", 80),
        https_listen_port=read_port(environ, "UNICITY_HTTPS_PORT", https_port),
        status_port=read_port(environ, "UNICITY_STATUS_PORT", 8081),
        listen_address=parse_listen_address(read_str(environ, "UNICITY_LISTEN_ADDRESS")),
        haproxy_host=read_str(environ, "HAPROXY_HOST"),
        haproxy_api_port=read_port(environ, "HAPROXY_API_PORT", 8404),
        haproxy_api_key_file=read_path(environ, "HAPROXY_API_KEY_FILE"),
        extra_ports=parse_extra_ports(read_str(environ, "EXTRA_PORTS")),
        acme_server=read_str(environ, "ACME_SERVER"),
        acme_ca_bundle=read_path(environ, "ACME_CA_BUNDLE"),
        container_name=parse_domain(read_str(environ, "UNICITY_CONTAINER_NAME"), name="UNICITY_CONTAINER_NAME"),
        heartbeat_s=read_float(environ, "HAPROXY_HEARTBEAT_S", 30.0),
        reachability_check=parse_reachability_check(read_str(environ, "SSL_REACHABILITY_CHECK")),
        domain_http_port=read_port(environ, "UNICITY_DOMAIN_HTTP_PORT", 80),
        static_hosts=parse_static_hosts(read_str(environ, "UNICITY_HOSTS")),
        renew_first_check_s=read_float(environ, "SSL_RENEW_FIRST_CHECK_S", 3600.0),
        renew_interval_s=read_float(environ, "SSL_RENEW_INTERVAL_S", 43200.0),
        stop_grace_s=read_float(environ, "UNICITY_STOP_GRACE_S", 8.0),
        backoff=backoff,
        run_dir=read_path(environ, "UNICITY_RUN_DIR") or Path("/run/unicity"),
        webroot=read_path(environ, "UNICITY_WEBROOT") or Path("/var/www/acme-challenge"),
        cert_root=read_path(environ, "SSL_CERT_ROOT") or Path("/etc/letsencrypt"),
        nginx_binary=read_path(environ, "UNICITY_NGINX_BIN") or Path("/usr/sbin/nginx"),
        # nginx honours "user" only when its master runs as root; Debian's nginx runs its workers as www-data.
        nginx_user=read_str(environ, "UNICITY_NGINX_USER") or ("www-data" if running_as_root else None),
        openssl_binary=read_path(environ, "UNICITY_OPENSSL_BIN") or Path("/usr/bin/openssl"),
        certbot_binary=read_path(environ, "UNICITY_CERTBOT_BIN") or Path("/usr/bin/certbot"),
        service_uid=read_int(environ, "UNICITY_SERVICE_UID", None, minimum=0, maximum=2**31 - 1),
        service_gid=read_int(environ, "UNICITY_SERVICE_GID", None, minimum=0, maximum=2**31 - 1),
    )

    check_port_conflicts(config)
    return config


def check_port_conflicts(config: SupervisorConfig, *, upstream_port: int | None = None) -> None:
    """Raise ConfigError when two listeners of this container would share a port."""
    listeners = {
        "UNICITY_HTTP_PORT": config.http_listen_port,
        "UNICITY_STATUS_PORT": config.status_port,
    }
    if config.tls_requested:
        listeners["UNICITY_HTTPS_PORT"] = config.https_listen_port
    if upstream_port is not None:
        listeners["service port"] = upstream_port

    seen: dict[int, str] = {}
    for name, port in listeners.items():
        if port in seen:
            raise ConfigError(name, port, f"it is already used by {seen[port]}; pick a different port")
        seen[port] = name


def read_str(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    """Return the stripped value of NAME, or DEFAULT when it is unset or empty."""
    value = environ.get(name, "").strip()
    return value if value else default


def read_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """Return NAME as a boolean (true/false, yes/no, on/off, 1/0), or DEFAULT when unset."""
    value = read_str(environ, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, value, "expected true or false")


@overload
def read_int(environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int: ...


@overload
def read_int(environ: Mapping[str, str], name: str, default: None, *, minimum: int, maximum: int) -> int | None: ...


def read_int(
    environ: Mapping[str, str],
    name: str,
    default: int | None,
    *,
    minimum: int,
    maximum: int,
) -> int | None:
    """Return NAME as an integer within [MINIMUM, MAXIMUM], or DEFAULT when unset."""
    value = read_str(environ, name)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise ConfigError(name, value, f"expected a whole number from {minimum} to {maximum}") from None
    if not minimum <= number <= maximum:
        raise ConfigError(name, value, f"expected a whole number from {minimum} to {maximum}")
    return number


def read_port(environ: Mapping[str, str], name: str, default: int) -> int:
    """Return NAME as a TCP port number (1-65535), or DEFAULT when unset."""
    value = read_str(environ, name)
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(name, value, "expected a port number from 1 to 65535")
    return int(value)


def read_float(environ: Mapping[str, str], name: str, default: float) -> float:
    """Return NAME as a positive number of seconds, or DEFAULT when unset."""
    value = read_str(environ, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(name, value, "expected a positive number of seconds, e.g. 8 or 0.5") from None
    if not 0 < number < float("inf"):
        raise ConfigError(name, value, "expected a positive number of seconds, e.g. 8 or 0.5")
    return number


def read_path(environ: Mapping[str, str], name: str) -> Path | None:
    """Return NAME as an absolute path, or None when unset."""
    value = read_str(environ, name)
    if value is None:
        return None
    if not value.startswith("/"):
        raise ConfigError(name, value, "expected an absolute path starting with '/'")
    return Path(value)


def parse_domain(value: str | None, *, name: str) -> str | None:
    """Return VALUE lower-cased if it is a valid DNS host name, or None when empty.

    >>> parse_domain("Relay.Example.org.", name="SSL_DOMAIN")
    'relay.example.org'
    """
    if value is None or not value.strip():
        return None

    domain = value.strip().lower().rstrip(".")
    if len(domain) > 253:
        raise ConfigError(name, value, "a host name has at most 253 characters")
    for label in domain.split("."):
        if not _LABEL.match(label):
            raise ConfigError(
                name,
                value,
                "expected a host name of letters, digits, hyphens and dots, such as relay.example.org",
            )
    return domain


def parse_domain_aliases(value: str | None, *, primary: str | None) -> tuple[str, ...]:
    """Return the comma-separated aliases in VALUE, trimmed, without duplicates or PRIMARY.

    >>> parse_domain_aliases("b.example.org, a.example.org,b.example.org", primary="a.example.org")
    ('b.example.org',)
    """
    if value is None or not value.strip():
        return ()
    if primary is None:
        raise ConfigError("SSL_DOMAIN_ALIASES", value, "aliases need a primary domain; set SSL_DOMAIN as well")

    aliases: list[str] = []
    for item in value.split(","):
        alias = parse_domain(item, name="SSL_DOMAIN_ALIASES")
        if alias is not None and alias != primary and alias not in aliases:
            aliases.append(alias)
    return tuple(aliases)


def parse_listen_address(value: str | None) -> str | None:
    """Return VALUE if it is an IPv4 address nginx can listen on, or None for all addresses.

    >>> parse_listen_address("127.0.0.1")
    '127.0.0.1'
    """
    if value is None:
        return None
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ConfigError("UNICITY_LISTEN_ADDRESS", value, "expected an IPv4 address such as 127.0.0.1") from None
    return value


def parse_static_hosts(value: str | None) -> tuple[tuple[str, str], ...]:
    """Parse ``UNICITY_HOSTS``, comma-separated ``name=IPv4`` pairs used instead of DNS for those names.

    It does for a supervisor run as a host process what ``/etc/hosts`` entries do in a container.

    >>> parse_static_hosts("relay.example.org=127.0.0.1")
    (('relay.example.org', '127.0.0.1'),)
    """
    if value is None:
        return ()
    pairs: list[tuple[str, str]] = []
    for item in value.split(","):
        if not item.strip():
            continue
        name, separator, address = item.partition("=")
        if not separator:
            raise ConfigError("UNICITY_HOSTS", value, "expected name=IPv4 pairs such as relay.example.org=127.0.0.1")
        domain = parse_domain(name, name="UNICITY_HOSTS")
        try:
            ipaddress.IPv4Address(address.strip())
        except ValueError:
            raise ConfigError("UNICITY_HOSTS", value, f"{address.strip()!r} is not an IPv4 address") from None
        if domain is not None:
            pairs.append((domain, address.strip()))
    return tuple(pairs)


def parse_reachability_check(value: str | None) -> str:
    """Parse ``SSL_REACHABILITY_CHECK``: "auto" (the default), "true" or "false".

    >>> parse_reachability_check("TRUE")
    'true'
    """
    if value is None:
        return "auto"
    lowered = value.lower()
    if lowered not in REACHABILITY_CHECK_MODES:
        raise ConfigError("SSL_REACHABILITY_CHECK", value, "expected auto, true or false")
    return lowered


def parse_extra_ports(value: str | None) -> tuple[ExtraPort, ...]:
    """Parse ``EXTRA_PORTS``, a JSON array of ``{"listen", "target", "mode"}`` objects.

    >>> parse_extra_ports('[{"listen": 50001, "target": 50001, "mode": "tcp"}]')
    (ExtraPort(listen=50001, target=50001, mode='tcp'),)
    """
    if value is None or value == "null":
        return ()
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError("EXTRA_PORTS", value, f"expected a JSON array ({exc.msg} at position {exc.pos})") from None
    if not isinstance(items, list):
        raise ConfigError("EXTRA_PORTS", value, "expected a JSON array of port objects")

    ports = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"listen", "target", "mode"}:
            raise ConfigError(
                "EXTRA_PORTS", value, 'each item needs exactly "listen", "target" and "mode", e.g. '
                '{"listen": 50001, "target": 50001, "mode": "tcp"}'
            )
        for key in ("listen", "target"):
            port = item[key]
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ConfigError("EXTRA_PORTS", value, f'"{key}" must be a port number from 1 to 65535')
        if item["mode"] not in _EXTRA_PORT_MODES:
            raise ConfigError("EXTRA_PORTS", value, '"mode" must be "tcp" or "http"')
        ports.append(ExtraPort(listen=item["listen"], target=item["target"], mode=item["mode"]))
    return tuple(ports)
