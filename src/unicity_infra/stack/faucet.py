"""The faucet service as specs: one wrapper container, its identity and certificate volumes.

js-faucet reads its relays, aggregator and trust base from ``UNICITY_*`` and
``SPHERE_*`` variables; this module sets them from validated settings.
Secrets are mounted as files, never put in the environment.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from unicity_infra.settings import CONTAINER_HTTP_PORT, FaucetSettings, RunSettings
from unicity_infra.stack.plan import (
    StackPlan,
    common_labels,
    direct_network_name,
    secret_files,
    wrapper_env,
)
from unicity_infra.stack.spec import (
    LABEL_ENDPOINT,
    LABEL_PREFIX,
    LABEL_ROLE,
    ContainerSpec,
    NetworkSpec,
    PortBinding,
    SecretFile,
    VolumeMount,
    VolumeSpec,
)

__all__ = [
    "DISCOVERY_PATH",
    "EDGE_CA_SECRET",
    "FAUCET_HOME",
    "aggregator_url_in_network",
    "discovery_url",
    "faucet_data_volume",
    "faucet_endpoint",
    "faucet_env",
    "faucet_plan",
    "faucet_secret_files",
    "relay_url_in_network",
    "trust_base_url_of",
    "trust_edge_ca",
]

# The identity volume: wallet/, tokens/ and the generated tenant.json.
FAUCET_HOME = "/data"
CERTIFICATE_DIR = "/etc/letsencrypt"
DISCOVERY_PATH = "/.well-known/faucet.json"
TRUST_BASE_PATH = "/.well-known/trust-base.json"
# SHA-256 of the stack genesis trust base the faucet was started with.
LABEL_FAUCET_TRUST_BASE = f"{LABEL_PREFIX}.faucet.trust-base-sha256"
# The local edge's CA bundle, mounted read-only for Node.js.
EDGE_CA_SECRET = "edge_ca_bundle"


def faucet_endpoint(settings: RunSettings) -> str:
    """Return the faucet's base URL, e.g. ``https://faucet.example.org`` or ``http://127.0.0.1:8090``."""
    if settings.publish and not settings.uses_haproxy:
        scheme = "https" if settings.tls_enabled else "http"
        host = settings.domain if settings.tls_enabled else settings.publish.host
        port = settings.publish.port
        default_port = 443 if scheme == "https" else 80
        return f"{scheme}://{host}" if port == default_port else f"{scheme}://{host}:{port}"
    if settings.tls_enabled:
        suffix = "" if settings.https_port == 443 else f":{settings.https_port}"
        return f"https://{settings.domain}{suffix}"
    if settings.publish:
        return f"http://{settings.publish.host}:{settings.publish.port}"
    return f"http://{settings.container_name}:{CONTAINER_HTTP_PORT}"


def discovery_url(endpoint: str) -> str:
    """Return the discovery document's URL under ENDPOINT.

    >>> discovery_url("https://faucet.example.org")
    'https://faucet.example.org/.well-known/faucet.json'
    """
    return endpoint.rstrip("/") + DISCOVERY_PATH


def faucet_data_volume(container_name: str) -> str:
    """Return the name of the identity volume of faucet container CONTAINER_NAME."""
    return f"{container_name}-data"


def relay_url_in_network(relay_container: str, relay_endpoint: str) -> str:
    """Return the URL another container on the relay's network uses to reach it.

    A plain relay is reached by container name on port 80. A TLS relay is
    reached by its domain on 443, because its certificate names the domain.
    Only the domain is taken from RELAY_ENDPOINT, whose port is the one
    published on the host.

    >>> relay_url_in_network("unicity-relay", "ws://127.0.0.1:7777")
    'ws://unicity-relay:80'
    >>> relay_url_in_network("unicity-relay", "wss://relay.example.org:7443")
    'wss://relay.example.org'
    """
    parts = urlsplit(relay_endpoint)
    if parts.scheme == "wss" and parts.hostname:
        return f"wss://{parts.hostname}"
    return f"ws://{relay_container}:{CONTAINER_HTTP_PORT}"


def aggregator_url_in_network(proxy_container: str, proxy_endpoint: str) -> str:
    """Return the URL another container on the aggregator proxy's network uses to reach it.

    The same rule as for the relay: a plain proxy by container name on port
    80, a TLS proxy by its domain on 443.

    >>> aggregator_url_in_network("unicity-aggregator-proxy", "http://127.0.0.1:3000")
    'http://unicity-aggregator-proxy:80'
    """
    parts = urlsplit(proxy_endpoint)
    if parts.scheme == "https" and parts.hostname:
        return f"https://{parts.hostname}"
    return f"http://{proxy_container}:{CONTAINER_HTTP_PORT}"


def trust_base_url_of(aggregator_url: str) -> str:
    """Return where an aggregator run by this tool serves its trust base.

    >>> trust_base_url_of("http://unicity-aggregator-proxy:80/")
    'http://unicity-aggregator-proxy:80/.well-known/trust-base.json'
    """
    return aggregator_url.rstrip("/") + TRUST_BASE_PATH


def faucet_env(settings: RunSettings) -> dict[str, str]:
    """Return the container's environment: the wrapper's variables plus what js-faucet reads.

    Whenever a trust base is given, aggregator verification is switched on
    explicitly, because js-faucet turns it off by default once
    ``SPHERE_AGGREGATOR_URL`` is set.
    """
    faucet = settings.faucet or FaucetSettings()
    env = wrapper_env(settings)
    env.update({
        "UNICITY_NETWORK": faucet.network,
        "UNICITY_DATA_DIR": f"{FAUCET_HOME}/wallet",
        "UNICITY_TOKENS_DIR": f"{FAUCET_HOME}/tokens",
        "FAUCET_TENANT_FILE": f"{FAUCET_HOME}/tenant.json",
        "FAUCET_INSTANCE_NAME": settings.container_name,
    })
    if faucet.nostr_relays:
        relays = ",".join(faucet.nostr_relays)
        env["UNICITY_NOSTR_RELAYS"] = relays
        env["SPHERE_NOSTR_RELAYS"] = relays
    if faucet.aggregator_url:
        env["SPHERE_AGGREGATOR_URL"] = faucet.aggregator_url
    if faucet.trust_base_url:
        env["SPHERE_TRUSTBASE_URL"] = faucet.trust_base_url
        env["SPHERE_AGGREGATOR_SKIP_VERIFICATION"] = "false"
    if faucet.nametag:
        env["SPHERE_NAMETAG"] = faucet.nametag
    if faucet.secret_files:
        env["FAUCET_SECRET_FILES"] = ",".join(name for name, _ in faucet.secret_files)
    env.update(settings.extra_env)
    return env


def faucet_secret_files(settings: RunSettings) -> tuple[SecretFile, ...]:
    """Return the wrapper's secret files plus the operator's, each mounted at /run/secrets/NAME."""
    faucet = settings.faucet or FaucetSettings()
    return (*secret_files(settings), *(SecretFile(name, path) for name, path in faucet.secret_files))


def _trust_base_label(settings: RunSettings) -> dict[str, str]:
    # js-faucet reads the trust base once at start, so a new genesis must recreate the container.
    sha256 = (settings.faucet or FaucetSettings()).trust_base_sha256
    return {LABEL_FAUCET_TRUST_BASE: sha256} if sha256 else {}


def faucet_plan(settings: RunSettings, *, stack: str) -> StackPlan:
    """Turn validated run settings into the faucet's container, network and volume specs."""
    labels = common_labels(stack=stack, service="faucet")
    data_volume = faucet_data_volume(settings.container_name)
    cert_volume = f"{settings.container_name}-letsencrypt"

    networks: list[NetworkSpec] = []
    if settings.uses_haproxy:
        networks.append(NetworkSpec(settings.haproxy_net, external=True))
    else:
        networks.append(NetworkSpec(direct_network_name(stack), labels=labels))

    ports: tuple[PortBinding, ...] = ()
    if settings.publish:
        ports = (PortBinding(settings.front_port, settings.publish.port, settings.publish.host),)

    container = ContainerSpec(
        name=settings.container_name,
        service="faucet",
        image=settings.image,
        env=faucet_env(settings),
        secret_files=faucet_secret_files(settings),
        ports=ports,
        volumes=(
            VolumeMount(data_volume, FAUCET_HOME),
            VolumeMount(cert_volume, CERTIFICATE_DIR),
        ),
        networks=tuple(network.name for network in networks),
        labels={**labels, LABEL_ENDPOINT: faucet_endpoint(settings), **_trust_base_label(settings)},
        hostname=settings.container_name,
    )
    volumes = [
        VolumeSpec(data_volume, labels={**labels, LABEL_ROLE: "data"}),
        VolumeSpec(cert_volume, labels={**labels, LABEL_ROLE: "certificates"}),
    ]
    return StackPlan(containers=[container], networks=networks, volumes=volumes)


def trust_edge_ca(spec: ContainerSpec, ca_bundle: Path) -> ContainerSpec:
    """Return SPEC with CA_BUNDLE mounted read-only and named in ``NODE_EXTRA_CA_CERTS``.

    Node.js reads that variable once at start and adds the file to its built-in
    roots, so js-faucet then trusts the certificates the local edge's CA issues
    to the relay and the aggregator. A value set with the container's
    environment is kept.
    """
    secret = SecretFile(EDGE_CA_SECRET, ca_bundle)
    return replace(spec, secret_files=(*spec.secret_files, secret),
                   env={"NODE_EXTRA_CA_CERTS": secret.target, **spec.env})
