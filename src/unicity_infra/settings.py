"""Typed, validated settings: every user input is checked here, once.

Validators raise :class:`SettingsError` naming the option, the value and what
is accepted; nothing else in the tool re-validates. Upstream image references
are pinned here and nowhere else.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from unicity_infra import __version__
from unicity_infra.errors import SettingsError

__all__ = [
    "UPSTREAM_IMAGES",
    "AGGREGATOR_IMAGE_KEYS",
    "ExtraPort",
    "PublishAddress",
    "AggregatorSettings",
    "FaucetSettings",
    "RunSettings",
    "wrapper_image",
    "service_wrapper",
    "parse_domain",
    "parse_domain_list",
    "parse_email",
    "parse_port",
    "parse_timeout",
    "parse_extra_ports",
    "parse_container_name",
    "parse_docker_name",
    "parse_network_name",
    "parse_image_ref",
    "parse_readable_file",
    "parse_publish",
    "parse_connect",
    "parse_ip_address",
    "parse_bool",
    "parse_acme_server",
    "parse_relay_url",
    "parse_domain_or_host",
    "parse_network_id",
    "parse_image_overrides",
    "build_run_settings",
    "build_aggregator_settings",
    "build_faucet_settings",
    "parse_http_url",
    "parse_nametag",
    "parse_faucet_network",
    "parse_secret_file",
]

# Upstream image pins. Overridable per run; the offline build produces
# equivalents of the first two from Debian packages and crates.io.
UPSTREAM_IMAGES: dict[str, str] = {
    "ssl-manager": "ghcr.io/unicitynetwork/ssl-manager:latest",
    "relay": "ghcr.io/unicitynetwork/unicity-tokens-relay:sha-1e1b544",
    # The aggregator stack. bft-core is the commit aggregator-go's own
    # docker-compose.yml pins on main; aggregator-go 0.2.0 is the first release
    # that speaks only the v2 JSON-RPC protocol (certification_request,
    # get_inclusion_proof.v2).
    # NOTE: bft-core ceceacd together with aggregator-go 0.2.0 is an untested pair.
    "bft-core": "ghcr.io/unicitynetwork/bft-core:ceceacd11b7a735de74ce17884a3a45e0db1748d",
    "mongo": "mongo:7.0",
    "aggregator-go": "ghcr.io/unicitynetwork/aggregator-go:0.2.0",
    "curl": "curlimages/curl:8.13.0",
    # js-faucet's image is built locally from its sources (agentic-hosting's own
    # tag); no registry serves it. UNICITY_INFRA_FAUCET_IMAGE names a replacement.
    "faucet": "ghcr.io/unicitynetwork/agentic-hosting/faucet:local",
}

SERVICES = ("relay", "faucet", "aggregator")
# The wrapper image a service runs when it is not named after the service.
SERVICE_WRAPPERS = {"aggregator": "aggregator-proxy"}
# Images of the aggregator stack that 'run aggregator --image-override KEY=REF' replaces.
AGGREGATOR_IMAGE_KEYS = ("bft-core", "mongo", "aggregator-go", "curl", "genesis-tools", "aggregator-proxy")
DEFAULT_NETWORK_ID = 3
# Host address of the aggregator's proxy without --publish, when no edge routes a
# domain to it. 3000 is aggregator-go's own port, so clients keep their usual URL.
DEFAULT_AGGREGATOR_PUBLISH = "127.0.0.1:3000"
# Images 'images build' makes: one per service plus the local edge.
IMAGES = (*SERVICES, "edge")

# Ports the wrapper images listen on inside the container.
CONTAINER_HTTP_PORT = 80
CONTAINER_HTTPS_PORT = 443

DEFAULT_HAPROXY_HOST = "haproxy"
DEFAULT_HAPROXY_NET = "haproxy-net"
DEFAULT_HAPROXY_API_PORT = 8404
DEFAULT_CERT_RENEW_DAYS = 30
DEFAULT_FAUCET_NETWORK = "testnet"
# Names under /run/secrets that the tool mounts itself (lower case: matched case-insensitively).
RESERVED_SECRET_NAMES = ("haproxy_api_key", "acme_ca_bundle")

# RFC 1123 host-name label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Docker's own rule for container, network and volume names.
_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# repository[:tag][@digest], repository being lower-case path components with an optional registry host.
_IMAGE_REF = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_NAMETAG = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FAUCET_NETWORK = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ExtraPort:
    """An extra listener the edge opens and forwards to the container."""

    listen: int
    target: int
    mode: str

    def to_json(self) -> dict[str, object]:
        return {"listen": self.listen, "target": self.target, "mode": self.mode}


@dataclass(frozen=True)
class PublishAddress:
    """A host address a container port is published on, e.g. ``127.0.0.1:7443``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AggregatorSettings:
    """The options only ``run aggregator`` takes."""

    network_id: int = DEFAULT_NETWORK_ID
    # Image references by AGGREGATOR_IMAGE_KEYS key, replacing the pins.
    image_overrides: dict[str, str] = field(default_factory=dict)
    # Remove the genesis and MongoDB volumes first, so a new chain starts.
    fresh: bool = False


@dataclass(frozen=True)
class FaucetSettings:
    """The options only ``run faucet`` takes; secret files are (name, host path) pairs, never their content."""

    nostr_relays: tuple[str, ...] = ()
    aggregator_url: str | None = None
    trust_base_url: str | None = None
    network: str = DEFAULT_FAUCET_NETWORK
    nametag: str | None = None
    secret_files: tuple[tuple[str, Path], ...] = ()
    # SHA-256 of the stack's genesis trust base the faucet verifies against; a new chain changes the spec.
    trust_base_sha256: str | None = None


@dataclass(frozen=True)
class RunSettings:
    """Everything ``run SERVICE`` needs, validated."""

    service: str
    image: str
    container_name: str
    domain: str | None = None
    domain_aliases: tuple[str, ...] = ()
    ssl_email: str | None = None
    ssl_staging: bool = False
    ssl_test_mode: bool = False
    ssl_required: bool = True
    https_port: int = CONTAINER_HTTPS_PORT
    extra_ports: tuple[ExtraPort, ...] = ()
    haproxy_host: str | None = DEFAULT_HAPROXY_HOST
    haproxy_net: str = DEFAULT_HAPROXY_NET
    haproxy_api_key_file: Path | None = None
    acme_server: str | None = None
    acme_ca_bundle: Path | None = None
    publish: PublishAddress | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    aggregator: AggregatorSettings | None = None
    faucet: FaucetSettings | None = None

    @property
    def tls_enabled(self) -> bool:
        return self.domain is not None

    @property
    def uses_haproxy(self) -> bool:
        return self.haproxy_host is not None

    @property
    def front_port(self) -> int:
        """Container port that serves the service to clients: 443 with TLS, else 80."""
        return self.https_port if self.tls_enabled else CONTAINER_HTTP_PORT


def wrapper_image(service: str) -> str:
    """Return the local tag of the wrapper image for SERVICE, e.g. ``unicity-infra/relay:0.1.0``."""
    return f"unicity-infra/{service}:{__version__}"


def service_wrapper(service: str) -> str:
    """Return the name of the wrapper image SERVICE runs.

    >>> service_wrapper("aggregator")
    'aggregator-proxy'
    """
    return SERVICE_WRAPPERS.get(service, service)


def parse_domain(value: str, *, option: str = "--domain") -> str:
    """Return VALUE lower-cased if it is a valid DNS host name with at least two labels.

    >>> parse_domain("Relay.Example.org")
    'relay.example.org'
    """
    domain = value.strip().lower().rstrip(".")
    if "://" in domain or "/" in domain:
        raise SettingsError(option, value, "give a host name such as relay.example.org, not a URL")
    if "_" in domain:
        raise SettingsError(option, value, "host names cannot contain '_'; use a hyphen")
    if len(domain) > 253:
        raise SettingsError(option, value, "a host name has at most 253 characters")
    labels = domain.split(".")
    if len(labels) < 2:
        raise SettingsError(option, value, "expected a fully qualified host name such as relay.example.org")
    for label in labels:
        if not _LABEL.match(label):
            raise SettingsError(
                option,
                value,
                f"label {label!r} is not a valid host-name label "
                "(1-63 letters, digits or inner hyphens)",
            )
    if labels[-1].isdigit():
        raise SettingsError(option, value, "expected a host name, not an IP address")
    return domain


def parse_domain_list(value: str, *, option: str = "--domain-aliases") -> tuple[str, ...]:
    """Parse a comma-separated list of host names, dropping blanks and duplicates."""
    seen: list[str] = []
    for item in value.split(","):
        if item.strip() and (domain := parse_domain(item, option=option)) not in seen:
            seen.append(domain)
    return tuple(seen)


def parse_email(value: str, *, option: str = "--ssl-email") -> str:
    """Return VALUE if it looks like an e-mail address with a dotted domain."""
    email = value.strip()
    if not _EMAIL.match(email) or "." not in email.rsplit("@", 1)[1]:
        raise SettingsError(option, value, "expected an e-mail address such as ops@example.org")
    return email


def parse_port(value: str | int, *, option: str) -> int:
    """Return VALUE as a TCP port number in 1-65535."""
    try:
        port = int(str(value).strip(), 10)
    except ValueError:
        raise SettingsError(option, value, "expected a port number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise SettingsError(option, value, "expected a port number from 1 to 65535")
    return port


def parse_timeout(value: float, *, option: str = "--timeout") -> float:
    """Return VALUE as a number of seconds above 0."""
    if not value > 0:  # also rejects NaN
        raise SettingsError(option, value, "expected a number of seconds above 0")
    return value


def parse_extra_ports(value: str, *, option: str = "--extra-ports") -> tuple[ExtraPort, ...]:
    """Parse a JSON list of ``{"listen": int, "target": int, "mode": "http"|"tcp"}``.

    >>> parse_extra_ports('[{"listen": 50001, "target": 50001, "mode": "tcp"}]')
    (ExtraPort(listen=50001, target=50001, mode='tcp'),)
    """
    accepted = 'expected a JSON list such as [{"listen": 50001, "target": 50001, "mode": "tcp"}]'
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise SettingsError(option, value, f"not valid JSON ({exc.msg} at column {exc.colno}); {accepted}") from None
    if not isinstance(items, list):
        raise SettingsError(option, value, accepted)

    ports: list[ExtraPort] = []
    for index, item in enumerate(items):
        where = f"item {index}"
        if not isinstance(item, dict) or set(item) != {"listen", "target", "mode"}:
            raise SettingsError(option, value, f"{where} must have exactly the keys listen, target, mode; {accepted}")
        for key in ("listen", "target"):
            number = item[key]
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
                raise SettingsError(option, value, f"{where}: {key} must be an integer from 1 to 65535")
        if item["mode"] not in ("http", "tcp"):
            raise SettingsError(option, value, f"{where}: mode must be \"http\" or \"tcp\"")
        ports.append(ExtraPort(item["listen"], item["target"], item["mode"]))

    listens = [port.listen for port in ports]
    if len(set(listens)) != len(listens):
        raise SettingsError(option, value, "each listen port may appear only once")
    reserved = {80, 443, DEFAULT_HAPROXY_API_PORT} & set(listens)
    if reserved:
        raise SettingsError(option, value, f"listen port {min(reserved)} is used by the edge itself; pick another")
    return tuple(ports)


def parse_docker_name(value: str, *, option: str, kind: str) -> str:
    """Return VALUE if Docker accepts it as the name of a KIND (container, network, volume, stack)."""
    if not _DOCKER_NAME.match(value) or len(value) > 128:
        raise SettingsError(
            option, value, f"a {kind} name starts with a letter or digit and contains only letters, digits, '_', '.' and '-'"
        )
    return value


def parse_container_name(value: str, *, option: str = "--container-name") -> str:
    """Return VALUE if Docker accepts it as a container name."""
    return parse_docker_name(value, option=option, kind="container")


def parse_network_name(value: str, *, option: str = "--haproxy-net") -> str:
    """Return VALUE if Docker accepts it as a network name."""
    return parse_docker_name(value, option=option, kind="network")


def parse_image_ref(value: str, *, option: str = "--image") -> str:
    """Return VALUE if it is a valid image reference such as ``ghcr.io/org/name:tag``."""
    if not _IMAGE_REF.match(value):
        raise SettingsError(
            option, value, "expected an image reference such as ghcr.io/org/name:tag (repository in lower case)"
        )
    return value


def parse_readable_file(value: str, *, option: str) -> Path:
    """Return VALUE as an absolute path to an existing, readable regular file."""
    path = Path(value).expanduser()
    if not path.exists():
        raise SettingsError(option, value, "no such file; give the path of an existing file")
    if not path.is_file():
        raise SettingsError(option, value, "not a regular file; give the path of a file")
    if not os.access(path, os.R_OK):
        raise SettingsError(option, value, "file is not readable by this user; fix its permissions")
    return path.resolve()


def parse_publish(value: str, *, option: str = "--publish") -> PublishAddress:
    """Parse ``[HOST:]PORT``; HOST defaults to 127.0.0.1.

    >>> parse_publish("7443")
    PublishAddress(host='127.0.0.1', port=7443)
    """
    host, sep, port = value.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]")
    if not host or not re.match(r"^[0-9a-fA-F.:]+$", host):
        raise SettingsError(option, value, "expected [HOST:]PORT with HOST an IP address, e.g. 127.0.0.1:7443")
    return PublishAddress(host, parse_port(port, option=option))


def parse_ip_address(value: str, *, option: str) -> str:
    """Return VALUE if it is an IPv4 or IPv6 address, e.g. ``127.0.0.1``."""
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise SettingsError(option, value, "expected an IP address such as 127.0.0.1") from None


def parse_connect(value: str, *, option: str = "--connect") -> tuple[str, int]:
    """Parse ``HOST:PORT`` for connecting somewhere other than a URL's host, e.g. ``127.0.0.1:7443``."""
    if ":" not in value:
        raise SettingsError(option, value, "expected HOST:PORT with HOST an IP address, e.g. 127.0.0.1:7443")
    address = parse_publish(value, option=option)
    return (address.host, address.port)


def parse_bool(value: str | bool, *, option: str) -> bool:
    """Parse true/false, yes/no, on/off or 1/0."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SettingsError(option, value, "expected true or false")


def parse_acme_server(value: str, *, option: str = "--acme-server") -> str:
    """Return VALUE if it is an https:// ACME directory URL."""
    if not re.match(r"^https://[^\s/]+(/\S*)?$", value):
        raise SettingsError(option, value, "expected an https:// ACME directory URL such as https://acme.example/dir")
    return value


def build_run_settings(
    service: str,
    *,
    domain: str | None = None,
    domain_aliases: str | None = None,
    ssl_email: str | None = None,
    ssl_staging: bool = False,
    ssl_test_mode: bool = False,
    ssl_required: str | bool = True,
    no_ssl: bool = False,
    ssl_https_port: str | int | None = None,
    extra_ports: str | None = None,
    haproxy_host: str | None = None,
    haproxy_net: str | None = None,
    haproxy_api_key_file: str | None = None,
    no_haproxy: bool = False,
    container_name: str | None = None,
    image: str | None = None,
    publish: str | None = None,
    acme_server: str | None = None,
    acme_ca_bundle: str | None = None,
    nostr_relays: str | None = None,
    aggregator_url: str | None = None,
    trust_base_url: str | None = None,
    network: str | None = None,
    nametag: str | None = None,
    secret_files: tuple[str, ...] = (),
) -> RunSettings:
    """Validate the options of ``run SERVICE`` and return them as RunSettings.

    Raises SettingsError on the first invalid value or conflicting pair.
    """
    if service not in SERVICES:
        raise SettingsError("SERVICE", service, f"expected one of: {', '.join(SERVICES)}")
    faucet = _faucet_settings(
        service, nostr_relays=nostr_relays, aggregator_url=aggregator_url, trust_base_url=trust_base_url,
        network=network, nametag=nametag, secret_files=secret_files,
    )
    if no_ssl and (ssl_test_mode or ssl_staging):
        flag = "--ssl-test-mode" if ssl_test_mode else "--ssl-staging"
        raise SettingsError("--no-ssl", True, f"it cannot be combined with {flag}; drop one of them")
    if no_haproxy and haproxy_host:
        raise SettingsError("--no-haproxy", True, "it cannot be combined with --haproxy-host; drop one of them")

    parsed_domain = None if no_ssl or not domain else parse_domain(domain)
    if parsed_domain is None and not no_ssl:
        for flag, given in (("--ssl-test-mode", ssl_test_mode), ("--ssl-staging", ssl_staging),
                            ("--ssl-email", ssl_email), ("--domain-aliases", domain_aliases)):
            if given:
                raise SettingsError(flag, given if isinstance(given, str) else True,
                                    "it needs --domain; add --domain or use --no-ssl")
    if ssl_test_mode and acme_server:
        raise SettingsError("--acme-server", acme_server, "test mode issues a self-signed certificate; drop one of them")

    edge_host: str | None = None
    if not no_haproxy:
        edge_host = parse_domain_or_host(haproxy_host) if haproxy_host else DEFAULT_HAPROXY_HOST
    aliases = parse_domain_list(domain_aliases) if domain_aliases and parsed_domain else ()
    aliases = tuple(alias for alias in aliases if alias != parsed_domain)

    return RunSettings(
        service=service,
        image=parse_image_ref(image) if image else wrapper_image(service_wrapper(service)),
        container_name=parse_container_name(container_name) if container_name else f"unicity-{service}",
        domain=parsed_domain,
        domain_aliases=aliases,
        ssl_email=parse_email(ssl_email) if ssl_email else None,
        ssl_staging=ssl_staging,
        ssl_test_mode=ssl_test_mode,
        ssl_required=parse_bool(ssl_required, option="--ssl-required"),
        https_port=parse_port(ssl_https_port, option="--ssl-https-port") if ssl_https_port else CONTAINER_HTTPS_PORT,
        extra_ports=parse_extra_ports(extra_ports) if extra_ports else (),
        haproxy_host=edge_host,
        haproxy_net=parse_network_name(haproxy_net) if haproxy_net else DEFAULT_HAPROXY_NET,
        haproxy_api_key_file=(
            parse_readable_file(haproxy_api_key_file, option="--haproxy-api-key-file") if haproxy_api_key_file else None
        ),
        acme_server=parse_acme_server(acme_server) if acme_server else None,
        acme_ca_bundle=parse_readable_file(acme_ca_bundle, option="--acme-ca-bundle") if acme_ca_bundle else None,
        faucet=faucet,
        publish=parse_publish(publish) if publish else _default_publish(service, routed=not no_haproxy and bool(parsed_domain)),
    )


def _default_publish(service: str, *, routed: bool) -> PublishAddress | None:
    """Return where SERVICE is published without --publish: only the aggregator, when no edge routes a domain to it.

    Its readiness is checked from this host, so it must be reachable from here.
    """
    if service == "aggregator" and not routed:
        return parse_publish(DEFAULT_AGGREGATOR_PUBLISH)
    return None


def parse_network_id(value: str | int, *, option: str = "--network-id") -> int:
    """Return VALUE as a BFT network id, an integer from 1 to 65535."""
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise SettingsError(option, value, "expected an integer from 1 to 65535 (3 for a local genesis)")
    return number


def parse_image_overrides(values: list[str] | tuple[str, ...], *, option: str = "--image-override") -> dict[str, str]:
    """Parse ``KEY=REF`` items into a mapping; KEY is one of AGGREGATOR_IMAGE_KEYS.

    >>> parse_image_overrides(["mongo=mongo:7.0.14"])
    {'mongo': 'mongo:7.0.14'}
    """
    overrides: dict[str, str] = {}
    for item in values:
        key, sep, ref = item.strip().partition("=")
        if not sep or not ref:
            raise SettingsError(option, item, "expected KEY=IMAGE such as mongo=mongo:7.0.14")
        if key not in AGGREGATOR_IMAGE_KEYS:
            raise SettingsError(option, item, f"unknown key {key!r}; expected one of: {', '.join(AGGREGATOR_IMAGE_KEYS)}")
        if key in overrides:
            raise SettingsError(option, item, f"{key} is given twice; keep one of them")
        overrides[key] = parse_image_ref(ref, option=option)
    return overrides


def build_aggregator_settings(
    *,
    network_id: str | int | None = None,
    image_overrides: list[str] | tuple[str, ...] = (),
    fresh: bool = False,
) -> AggregatorSettings:
    """Validate the options of ``run aggregator``; raises SettingsError on the first invalid one."""
    return AggregatorSettings(
        network_id=DEFAULT_NETWORK_ID if network_id is None else parse_network_id(network_id),
        image_overrides=parse_image_overrides(image_overrides),
        fresh=fresh,
    )


def parse_relay_url(value: str, *, option: str = "--relay-url") -> str:
    """Return VALUE if it is a ws:// or wss:// URL with a host."""
    if not re.match(r"^wss?://[^\s/:]+(:[0-9]{1,5})?(/\S*)?$", value):
        raise SettingsError(option, value, "expected a ws:// or wss:// URL such as wss://relay.example.org")
    return value


def parse_domain_or_host(value: str, *, option: str = "--haproxy-host") -> str:
    """Accept a single-label Docker host name (``haproxy``), a FQDN or an IPv4 address."""
    text = value.strip().lower()
    if re.match(r"^\d{1,3}(\.\d{1,3}){3}$", text) and all(int(part) < 256 for part in text.split(".")):
        return text
    if all(_LABEL.match(label) for label in text.split(".")):
        return text
    raise SettingsError(option, value, "expected a host name such as haproxy or an IPv4 address")


def _faucet_settings(
    service: str,
    *,
    nostr_relays: str | None,
    aggregator_url: str | None,
    trust_base_url: str | None,
    network: str | None,
    nametag: str | None,
    secret_files: tuple[str, ...],
) -> FaucetSettings | None:
    """Validate the faucet-only options; reject them for other services."""
    if service != "faucet":
        given = (("--nostr-relays", nostr_relays), ("--aggregator-url", aggregator_url),
                 ("--trust-base-url", trust_base_url), ("--network", network), ("--nametag", nametag),
                 ("--secret-file", secret_files))
        for flag, value in given:
            if value:
                raise SettingsError(flag, True, f"it applies only to 'run faucet', not to 'run {service}'")
        return None
    return build_faucet_settings(
        nostr_relays=nostr_relays, aggregator_url=aggregator_url, trust_base_url=trust_base_url,
        network=network, nametag=nametag, secret_files=secret_files,
    )


def build_faucet_settings(
    *,
    nostr_relays: str | None = None,
    aggregator_url: str | None = None,
    trust_base_url: str | None = None,
    network: str | None = None,
    nametag: str | None = None,
    secret_files: tuple[str, ...] | list[str] = (),
) -> FaucetSettings:
    """Validate the options of ``run faucet``; raises SettingsError on the first invalid one."""
    relays = tuple(parse_relay_url(item.strip(), option="--nostr-relays")
                   for item in (nostr_relays or "").split(",") if item.strip())
    parsed_secrets = tuple(parse_secret_file(item) for item in secret_files)
    names = [name for name, _ in parsed_secrets]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SettingsError("--secret-file", duplicates[0], "each secret name may be given only once")

    return FaucetSettings(
        nostr_relays=relays,
        aggregator_url=parse_http_url(aggregator_url, option="--aggregator-url") if aggregator_url else None,
        trust_base_url=parse_http_url(trust_base_url, option="--trust-base-url") if trust_base_url else None,
        network=parse_faucet_network(network) if network else DEFAULT_FAUCET_NETWORK,
        nametag=parse_nametag(nametag) if nametag else None,
        secret_files=parsed_secrets,
    )


def parse_http_url(value: str, *, option: str) -> str:
    """Return VALUE without a trailing slash if it is an http:// or https:// URL with a host."""
    if not re.match(r"^https?://[^\s/:?#]+(:[0-9]{1,5})?(/\S*)?$", value.strip()):
        raise SettingsError(option, value, "expected an http:// or https:// URL such as https://aggregator.example.org")
    return value.strip().rstrip("/")


def parse_nametag(value: str, *, option: str = "--nametag") -> str:
    """Return VALUE without a leading '@' if it is a nametag of letters, digits, '-' and '_'.

    >>> parse_nametag("@faucet-dev")
    'faucet-dev'
    """
    nametag = value.strip().removeprefix("@")
    if not _NAMETAG.match(nametag):
        raise SettingsError(option, value, "expected 1-64 letters, digits, '-' or '_', e.g. faucet-dev")
    return nametag


def parse_faucet_network(value: str, *, option: str = "--network") -> str:
    """Return VALUE lower-cased if it names a Unicity network such as ``testnet``."""
    network = value.strip().lower()
    if not _FAUCET_NETWORK.match(network):
        raise SettingsError(option, value, "expected a network name of letters, digits and '-', e.g. testnet")
    return network


def parse_secret_file(value: str, *, option: str = "--secret-file") -> tuple[str, Path]:
    """Parse ``NAME=PATH``: NAME becomes the faucet's environment variable, PATH a non-empty readable file.

    Messages name the path, never the file's content.
    """
    name, separator, path = value.partition("=")
    name = name.strip()
    if not separator or not path.strip():
        raise SettingsError(option, value, "expected NAME=PATH, e.g. SPHERE_API_KEY=./api-key.txt")
    if not _SECRET_NAME.match(name):
        raise SettingsError(option, value, f"{name!r} is not an environment variable name (letters, digits, '_')")
    if name.lower() in RESERVED_SECRET_NAMES:
        raise SettingsError(option, value, f"the name {name!r} is used by the tool itself; choose another")
    secret_path = parse_readable_file(path.strip(), option=option)
    if not secret_path.read_bytes().strip():
        raise SettingsError(option, str(secret_path), "the file is empty; put the secret in it")
    return name, secret_path
