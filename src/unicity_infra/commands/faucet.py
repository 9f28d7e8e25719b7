"""``run faucet`` defaults found in the stack, and ``faucet identity export|import``.

The faucet's identity is its volume: the wallet (``wallet/``), tokens and the
generated tenant file. Export writes it as a 0600 tar.gz file; import
restores it into the volume before the faucet starts.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from unicity_infra.engine.docker import DockerEngine
from unicity_infra.engine.identity import (
    check_archive,
    container_env,
    export_volume,
    import_volume,
    list_volume_files,
)
from unicity_infra.errors import InfraError, SettingsError
from unicity_infra.progress import SILENT, Progress
from unicity_infra.settings import FaucetSettings, RunSettings, wrapper_image
from unicity_infra.stack.aggregator import LABEL_COMPONENT
from unicity_infra.stack.faucet import (
    FAUCET_HOME,
    aggregator_url_in_network,
    faucet_data_volume,
    relay_url_in_network,
    trust_base_url_of,
)
from unicity_infra.stack.plan import common_labels
from unicity_infra.stack.spec import LABEL_ENDPOINT, LABEL_ROLE, VolumeSpec

__all__ = [
    "IdentityTransfer",
    "edge_routed_names",
    "export_identity",
    "import_identity",
    "pin_stack_trust_base",
    "resolve_faucet_defaults",
]

logger = logging.getLogger(__name__)

WALLET_DIR = "wallet"


@dataclass(frozen=True)
class IdentityTransfer:
    """Result of ``faucet identity export|import``: the file, the volume and how many entries moved."""

    file: str
    volume: str
    entries: int

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "volume": self.volume, "entries": self.entries}


def resolve_faucet_defaults(engine: DockerEngine, settings: RunSettings, *, stack: str) -> tuple[RunSettings, list[str]]:
    """Fill in what ``run faucet`` left open from the stack: its relay, its aggregator and that aggregator's trust base.

    Returns the completed settings and one note per default taken or missing.
    """
    faucet = settings.faucet or FaucetSettings()
    notes: list[str] = []

    if not faucet.nostr_relays:
        relay = _stack_relay_url(engine, stack)
        if relay is not None:
            faucet = replace(faucet, nostr_relays=(relay,))
            notes.append(f"nostr relay: {relay}, the relay of stack {stack!r}")
        else:
            notes.append(f"no --nostr-relays and no relay runs in stack {stack!r}: the faucet uses its built-in relays")

    if not faucet.aggregator_url:
        aggregator = _stack_aggregator_url(engine, stack)
        if aggregator is not None:
            faucet = replace(faucet, aggregator_url=aggregator)
            notes.append(f"aggregator: {aggregator}, the aggregator of stack {stack!r}")

    if faucet.aggregator_url and not faucet.trust_base_url and engine.list_containers(stack=stack, service="aggregator"):
        faucet = replace(faucet, trust_base_url=trust_base_url_of(faucet.aggregator_url))
        notes.append(f"trust base: {faucet.trust_base_url}, served by the aggregator of stack {stack!r}")
    elif faucet.aggregator_url and not faucet.trust_base_url:
        notes.append("no --trust-base-url: the faucet uses its built-in trust base and does not verify the aggregator")

    return replace(settings, faucet=faucet), notes


def pin_stack_trust_base(engine: DockerEngine, settings: RunSettings, *, stack: str) -> RunSettings:
    """Record in SETTINGS the SHA-256 of the stack's genesis trust base when the faucet verifies against it.

    js-faucet downloads its trust base once at start, so the hash becomes part
    of the container spec and a new genesis recreates the faucet.
    """
    from unicity_infra.commands.aggregator import read_genesis_trust_base

    faucet = settings.faucet or FaucetSettings()
    stack_aggregator = _stack_aggregator_url(engine, stack)
    if not faucet.trust_base_url or stack_aggregator is None:
        return settings
    if faucet.trust_base_url != trust_base_url_of(stack_aggregator):
        return settings
    try:
        genesis = read_genesis_trust_base(engine, stack=stack)
    except InfraError as exc:
        logger.debug("no genesis trust base to pin stack=%s: %s", stack, exc)
        return settings
    return replace(settings, faucet=replace(faucet, trust_base_sha256=genesis.sha256))


def edge_routed_names(engine: DockerEngine, settings: RunSettings, *, stack: str) -> tuple[str, ...]:
    """Return the host names in the faucet's TLS relay, aggregator and trust-base URLs that this stack serves.

    A name counts when a running container of STACK on the faucet's edge
    network carries it as its domain or a domain alias. Behind the local edge
    no DNS server resolves these names, so the faucet's ``/etc/hosts`` must
    point them at the edge. Names of other servers are left to DNS.
    """
    faucet = settings.faucet or FaucetSettings()
    urls = [url for url in (*faucet.nostr_relays, faucet.aggregator_url, faucet.trust_base_url) if url]
    tls_hosts = {urlsplit(url).hostname for url in urls if urlsplit(url).scheme in ("wss", "https")}
    served: set[str] = set()
    for info in engine.list_containers(stack=stack):
        if info.state != "running" or info.name == settings.container_name:
            continue
        if settings.haproxy_net not in engine.container_networks(info.name):
            continue
        environment = container_env(engine, info.name)
        served.add(environment.get("SSL_DOMAIN", "").lower())
        served.update(alias.strip().lower() for alias in environment.get("SSL_DOMAIN_ALIASES", "").split(","))
    return tuple(sorted(name for name in tls_hosts if name and name in served))


def _stack_relay_url(engine: DockerEngine, stack: str) -> str | None:
    running = [info for info in engine.list_containers(stack=stack, service="relay") if info.state == "running"]
    if not running:
        return None
    relay = running[0]
    endpoint = relay.labels.get(LABEL_ENDPOINT, "")
    url = relay_url_in_network(relay.name, endpoint)
    https_port = container_env(engine, relay.name).get("SSL_HTTPS_PORT", "443")
    if url.startswith("wss://") and https_port != "443":
        url = f"{url}:{https_port}"
    # A TLS relay is reached by its domain. Behind the local edge, 'run' maps that name to
    # the edge in /etc/hosts and mounts the edge's CA bundle (see edge_routed_names).
    return url


def _stack_aggregator_url(engine: DockerEngine, stack: str) -> str | None:
    proxies = [
        info for info in engine.list_containers(stack=stack, service="aggregator")
        if info.state == "running" and info.labels.get(LABEL_COMPONENT) == "aggregator-proxy"
    ]
    if not proxies:
        return None
    url = aggregator_url_in_network(proxies[0].name, proxies[0].labels.get(LABEL_ENDPOINT, ""))
    https_port = container_env(engine, proxies[0].name).get("SSL_HTTPS_PORT", "443")
    return f"{url}:{https_port}" if url.startswith("https://") and https_port != "443" else url


def export_identity(
    engine: DockerEngine,
    *,
    stack: str,
    container_name: str,
    file: Path,
    force: bool,
    image: str | None = None,
    progress: Progress = SILENT,
) -> IdentityTransfer:
    """Write the faucet's identity volume to FILE as tar.gz with mode 0600.

    Raises SettingsError when FILE exists (unless FORCE) and InfraError when
    the stack has no faucet identity to export.
    """
    volume = faucet_data_volume(container_name)
    if file.exists() and not force:
        raise SettingsError("FILE", str(file), "the file exists; choose another name or add --force to replace it")
    if not engine.volume_exists(volume):
        raise InfraError(f"no faucet identity in stack {stack!r}: volume {volume!r} not found; start the faucet once first")
    image = image or _helper_image(engine, stack=stack, container_name=container_name)
    if not list_volume_files(engine, volume, image=image, target=FAUCET_HOME, path=WALLET_DIR):
        raise InfraError(f"volume {volume!r} has an empty {WALLET_DIR}/ directory, so there is no identity to export")

    progress.action(f"docker cp {volume}:{FAUCET_HOME} > {file}")
    data = export_volume(engine, volume, image=image, target=FAUCET_HOME)
    _write_private_file(file, data)
    entries = len(check_archive(data, required_dir=WALLET_DIR))
    logger.info("exported faucet identity volume=%s file=%s entries=%d", volume, file, entries)
    return IdentityTransfer(file=str(file), volume=volume, entries=entries)


def import_identity(
    engine: DockerEngine,
    *,
    stack: str,
    container_name: str,
    file: Path,
    force: bool,
    image: str | None = None,
    progress: Progress = SILENT,
) -> IdentityTransfer:
    """Restore the faucet's identity volume from the tar.gz FILE that :func:`export_identity` wrote.

    The faucet container must not exist, so the wallet never changes under a
    running faucet. An existing identity is replaced only with FORCE, which removes
    the volume first. Raises SettingsError for an unusable FILE and
    InfraError when the faucet exists or an identity would be overwritten.
    """
    data = file.read_bytes()
    check_archive(data, required_dir=WALLET_DIR)
    volume = faucet_data_volume(container_name)
    if any(info.name == container_name for info in engine.list_containers(stack=stack, service="faucet")):
        raise InfraError(
            f"faucet container {container_name!r} exists; remove it with 'unicity-infra down faucet' "
            "(the identity volume is kept) and import again"
        )
    image = image or _helper_image(engine, stack=stack, container_name=container_name)

    if engine.volume_exists(volume):
        existing = list_volume_files(engine, volume, image=image, target=FAUCET_HOME, path=WALLET_DIR)
        if existing and not force:
            raise InfraError(
                f"volume {volume!r} already contains a faucet identity ({len(existing)} entries in {WALLET_DIR}/); "
                "add --force to replace it, after exporting it if you want to keep it"
            )
        if existing:
            engine.remove_volume(volume, progress=progress)

    labels = {**common_labels(stack=stack, service="faucet"), LABEL_ROLE: "data"}
    engine.ensure_volume(VolumeSpec(volume, labels=labels), progress=progress)
    progress.action(f"docker cp {file} {volume}:{FAUCET_HOME}")
    entries = import_volume(engine, volume, data, image=image, target=FAUCET_HOME, required_dir=WALLET_DIR)
    logger.info("imported faucet identity volume=%s file=%s entries=%d", volume, file, entries)
    return IdentityTransfer(file=str(file), volume=volume, entries=entries)


def _helper_image(engine: DockerEngine, *, stack: str, container_name: str) -> str:
    """Return the image of the stack's faucet container, else the faucet wrapper image."""
    for info in engine.list_containers(stack=stack, service="faucet"):
        if info.name == container_name:
            return info.image
    return wrapper_image("faucet")


def _write_private_file(path: Path, data: bytes) -> None:
    """Write DATA to PATH with mode 0600, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(partial, 0o600)
    os.replace(partial, path)
