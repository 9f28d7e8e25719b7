"""Service plan of the faucet image: js-faucet supervised, and its discovery document.

Reads the faucet's environment, runs ``node /app/dist/acp-adapter/main.js`` as
an unprivileged user with the tenant variables and operator secrets added at
start, follows its stdout for the identity it announces, and renders
``/.well-known/faucet.json`` from the live process only.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unicity_infra.container.config import SupervisorConfig, read_path, read_str
from unicity_infra.container.errors import ToolMissingError
from unicity_infra.container.services.faucet_log import FaucetIdentity, IdentityTracker, is_compressed_pubkey
from unicity_infra.container.services.faucet_tenant import (
    KeyDeriver,
    ensure_tenant,
    node_key_deriver,
    parse_secret_names,
    read_secret_files,
    tenant_environment,
)
from unicity_infra.container.services.plan import PublicDocument, ServicePlan
from unicity_infra.container.supervisor import FAILED, RESTARTING, RUNNING, STARTING, STOPPED, ProcessStatus
from unicity_infra.container.templating import render_template

__all__ = [
    "FAUCET_UID",
    "FAUCET_GID",
    "DISCOVERY_PATH",
    "DISCOVERY_HEADERS",
    "FaucetSettings",
    "read_faucet_settings",
    "discovery_status",
    "build_discovery_document",
    "prepare_faucet_environment",
    "fetch_discovery_document",
    "probe_discovery",
    "build_plan",
]

logger = logging.getLogger(__name__)

# The image creates user and group "faucet" with these ids and gives it the wallet directories.
FAUCET_UID = 1001
FAUCET_GID = 1001
DISCOVERY_PATH = "/.well-known/faucet.json"
# Wallets fetch the document from web pages on other origins; no-cache makes them
# revalidate every time, so a restart shows up at the next request.
DISCOVERY_HEADERS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}
# Environment variables of js-faucet that list its relays, the first one set wins.
RELAY_VARIABLES = ("UNICITY_NOSTR_RELAYS", "SPHERE_NOSTR_RELAYS")


@dataclass(frozen=True)
class FaucetSettings:
    """The faucet's own environment values, validated; secrets are only named here, never read."""

    app_dir: Path
    node_binary: Path
    data_dir: Path
    tokens_dir: Path
    tenant_file: Path
    secrets_dir: Path
    secret_names: tuple[str, ...]
    instance_name: str
    network: str
    nostr_relays: tuple[str, ...]
    aggregator_url: str | None
    trust_base_url: str | None

    @property
    def entry_script(self) -> Path:
        return self.app_dir / "dist" / "acp-adapter" / "main.js"


def read_faucet_settings(environ: Mapping[str, str]) -> FaucetSettings:
    """Read the FAUCET_* variables of the wrapper and the UNICITY_*/SPHERE_* ones js-faucet reads."""
    relays = next((value for name in RELAY_VARIABLES if (value := read_str(environ, name))), "")
    return FaucetSettings(
        app_dir=read_path(environ, "FAUCET_APP_DIR") or Path("/app"),
        node_binary=read_path(environ, "FAUCET_NODE_BIN") or Path("/usr/bin/node"),
        data_dir=read_path(environ, "UNICITY_DATA_DIR") or Path("/data/wallet"),
        tokens_dir=read_path(environ, "UNICITY_TOKENS_DIR") or Path("/data/tokens"),
        tenant_file=read_path(environ, "FAUCET_TENANT_FILE") or Path("/data/tenant.json"),
        secrets_dir=read_path(environ, "FAUCET_SECRETS_DIR") or Path("/run/secrets"),
        secret_names=parse_secret_names(read_str(environ, "FAUCET_SECRET_FILES")),
        instance_name=read_str(environ, "FAUCET_INSTANCE_NAME") or "unicity-infra faucet",
        network=read_str(environ, "UNICITY_NETWORK") or "testnet",
        nostr_relays=tuple(relay.strip() for relay in relays.split(",") if relay.strip()),
        aggregator_url=read_str(environ, "SPHERE_AGGREGATOR_URL"),
        trust_base_url=read_str(environ, "SPHERE_TRUSTBASE_URL"),
    )


def discovery_status(service: ProcessStatus) -> str:
    """Map the supervisor's state of the faucet process to the discovery ``status``.

    Before the first start (while nginx and the certificate come up) it is
    "starting"; after a stop request it is "stopped".
    """
    if service.state == STOPPED:
        return "starting" if service.restarts == 0 and service.last_exit_code is None else "stopped"
    return {STARTING: "starting", RUNNING: "running", RESTARTING: "restarting", FAILED: "failed"}[service.state]


def build_discovery_document(
    *,
    service: ProcessStatus,
    identity: FaucetIdentity,
    settings: FaucetSettings,
    domain: str | None,
) -> dict[str, Any]:
    """Build ``/.well-known/faucet.json`` from the live process.

    The identity fields come only from the process that runs now: they are
    null while it starts, restarts or has failed, so a wallet never reads a
    pubkey that no running faucet listens for. ``restart_count`` counts the exits
    after which the supervisor restarted the faucet or is about to restart it.
    """
    status = discovery_status(service)
    alive = service.state in (STARTING, RUNNING)
    pending_restart = 1 if service.state in (RESTARTING, FAILED) else 0
    return {
        "status": status,
        "restart_count": service.restarts + pending_restart,
        "last_exit_code": service.last_exit_code,
        "started_at": service.to_json()["started_at"] if alive else None,
        "network": settings.network,
        "domain": domain,
        "chain_pubkey": identity.chain_pubkey if alive else None,
        "direct_address": identity.direct_address if alive else None,
        "nametag": identity.nametag if alive else None,
        "nostr_relays": list(settings.nostr_relays),
        "aggregator_url": settings.aggregator_url,
        "trust_base_url": settings.trust_base_url,
    }


def prepare_faucet_environment(
    settings: FaucetSettings,
    environ: Mapping[str, str],
    *,
    derive_public_key: KeyDeriver,
) -> dict[str, str]:
    """Return the variables added to the faucet's environment at start: tenant and secrets.

    Generates the tenant on the first start and reuses it after. Raises
    ToolMissingError when the faucet's entry script is missing and ConfigError
    when the tenant file or a secret file is unusable.
    """
    if not settings.entry_script.is_file():
        raise ToolMissingError(
            "faucet", str(settings.entry_script), "build the image FROM a js-faucet image that has /app/dist"
        )
    tenant = ensure_tenant(settings.tenant_file, derive_public_key=derive_public_key, instance_name=settings.instance_name)
    secret_values = read_secret_files(settings.secret_names, settings.secrets_dir)
    if secret_values:
        logger.info("exporting secrets to the faucet names=%s", ",".join(sorted(secret_values)))
    return {**tenant_environment(tenant, environ), **secret_values}


def fetch_discovery_document(port: int, *, timeout_s: float = 1.0) -> dict[str, Any]:
    """GET the discovery document from the status server on 127.0.0.1:PORT.

    Raises OSError when the connection fails and ValueError when the response
    is not a 200 with a JSON object.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", DISCOVERY_PATH)
        response = connection.getresponse()
        body = response.read(65536)
    finally:
        connection.close()
    if response.status != 200:
        raise ValueError(f"GET {DISCOVERY_PATH} returned HTTP {response.status}")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError(f"{DISCOVERY_PATH} is not a JSON object")
    return document


def probe_discovery(port: int, timeout_s: float) -> str | None:
    """Return None when the discovery status is running and has a chain pubkey, else the reason.

    This is the healthcheck's probe: it runs in its own process, so it asks the
    supervisor over HTTP instead of reading the identity tracker.
    """
    try:
        document = fetch_discovery_document(port, timeout_s=timeout_s)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"discovery document unavailable: {exc}"
    if document.get("status") != "running":
        return f"discovery status is {document.get('status')!r}"
    if not is_compressed_pubkey(document.get("chain_pubkey")):
        return "discovery document has no chain_pubkey"
    return None


def build_plan(
    config: SupervisorConfig,
    environ: Mapping[str, str],
    *,
    derive_public_key: KeyDeriver | None = None,
) -> ServicePlan:
    """Return the plan that runs js-faucet as uid/gid 1001, with no port of its own.

    Building the plan reads and writes no file, so the healthcheck can build
    it too. The plan's ``prepare_env`` step reads the tenant and the secrets at start.
    """
    settings = read_faucet_settings(environ)
    tracker = IdentityTracker()
    derive = derive_public_key or node_key_deriver(settings.node_binary)

    def render_discovery(service: ProcessStatus) -> dict[str, Any]:
        return build_discovery_document(
            service=service, identity=tracker.identity(), settings=settings, domain=config.domain
        )

    locations = render_template(
        "nginx-faucet-locations.conf", discovery_path=DISCOVERY_PATH, status_port=str(config.status_port)
    )
    return ServicePlan(
        name="faucet",
        command=(str(settings.node_binary), str(settings.entry_script)),
        upstream_port=None,
        readiness_probe=tracker.readiness,
        uid=config.service_uid if config.service_uid is not None else FAUCET_UID,
        gid=config.service_gid if config.service_gid is not None else FAUCET_GID,
        env=dict(environ),
        data_dirs=(settings.data_dir, settings.tokens_dir),
        cwd=settings.app_dir,
        nginx_locations=locations,
        prepare_env=lambda: prepare_faucet_environment(settings, environ, derive_public_key=derive),
        stdout_watcher=tracker.watch_new_process,
        public_documents=(PublicDocument(DISCOVERY_PATH, render_discovery, DISCOVERY_HEADERS),),
        health_probe=lambda timeout_s: probe_discovery(config.status_port, timeout_s),
    )
