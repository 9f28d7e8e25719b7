"""Service plan of the Nostr relay image: nostr-rs-relay behind nginx.

Reads the RELAY_* variables, renders the relay's config.toml and probes
readiness with a NIP-11 request on the relay's loopback port.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unicity_infra.container.config import SupervisorConfig, read_path, read_port, read_str
from unicity_infra.container.services.plan import ConfigFile, ServicePlan, toml_string
from unicity_infra.container.templating import render_template

__all__ = [
    "RELAY_UID",
    "RELAY_GID",
    "RelaySettings",
    "read_relay_settings",
    "render_relay_config",
    "fetch_nip11_document",
    "probe_nip11",
    "build_plan",
]

logger = logging.getLogger(__name__)

# The image creates user and group "relay" with these ids and gives it the data directory.
RELAY_UID = 1001
RELAY_GID = 1001
NIP11_MEDIA_TYPE = "application/nostr+json"


@dataclass(frozen=True)
class RelaySettings:
    """The relay's own environment values, validated."""

    name: str
    description: str
    relay_url: str
    data_dir: Path
    port: int
    rust_log: str
    binary: Path


def read_relay_settings(config: SupervisorConfig, environ: Mapping[str, str]) -> RelaySettings:
    """Read RELAY_NAME, RELAY_DESCRIPTION, RELAY_URL, RELAY_DATA_DIR, RELAY_PORT, RUST_LOG, RELAY_BINARY."""
    default_url = f"wss://{config.domain}" if config.domain else "ws://localhost"
    return RelaySettings(
        name=read_str(environ, "RELAY_NAME") or "unicity-infra relay",
        description=read_str(environ, "RELAY_DESCRIPTION") or "Nostr relay of the Unicity development stack",
        relay_url=read_str(environ, "RELAY_URL") or default_url,
        data_dir=read_path(environ, "RELAY_DATA_DIR") or Path("/var/lib/relay"),
        port=read_port(environ, "RELAY_PORT", 8080),
        rust_log=read_str(environ, "RUST_LOG") or "info,nostr_rs_relay=info",
        binary=read_path(environ, "RELAY_BINARY") or Path("/usr/local/bin/nostr-rs-relay"),
    )


def render_relay_config(settings: RelaySettings) -> str:
    """Render nostr-rs-relay's config.toml for SETTINGS.

    The result never contains ``event_kind_allowlist`` or ``pubkey_whitelist``
    keys, because either one, even empty, makes the relay reject events.
    """
    return render_template(
        "relay-config.toml",
        relay_url=toml_string(settings.relay_url),
        name=toml_string(settings.name),
        description=toml_string(settings.description),
        data_directory=toml_string(str(settings.data_dir)),
        port=str(settings.port),
    )


def fetch_nip11_document(port: int, *, host: str = "127.0.0.1", timeout_s: float = 1.0) -> dict[str, Any]:
    """GET the relay information document (NIP-11) from http://HOST:PORT/.

    Raises OSError when the relay does not answer and ValueError when the
    response is not a 200 with a JSON object.
    """
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", "/", headers={"Accept": NIP11_MEDIA_TYPE})
        response = connection.getresponse()
        body = response.read(65536)
    finally:
        connection.close()

    if response.status != 200:
        raise ValueError(f"NIP-11 request returned HTTP {response.status}")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError(f"NIP-11 response is not a JSON object: {body[:100]!r}")
    return document


def probe_nip11(port: int, timeout_s: float) -> str | None:
    """Return None when the relay on PORT serves its NIP-11 document, else why not."""
    try:
        fetch_nip11_document(port, timeout_s=timeout_s)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"NIP-11 request to 127.0.0.1:{port} failed: {exc}"
    return None


def build_plan(config: SupervisorConfig, environ: Mapping[str, str]) -> ServicePlan:
    """Return the plan that runs nostr-rs-relay as uid/gid 1001 on 127.0.0.1:RELAY_PORT."""
    settings = read_relay_settings(config, environ)
    config_file = config.run_dir / "relay" / "config.toml"
    env = dict(environ)
    env["RUST_LOG"] = settings.rust_log

    return ServicePlan(
        name="relay",
        command=(str(settings.binary), "--config", str(config_file), "--db", str(settings.data_dir)),
        upstream_port=settings.port,
        readiness_probe=lambda timeout_s: probe_nip11(settings.port, timeout_s),
        uid=config.service_uid if config.service_uid is not None else RELAY_UID,
        gid=config.service_gid if config.service_gid is not None else RELAY_GID,
        env=env,
        config_files=(ConfigFile(path=config_file, content=render_relay_config(settings)),),
        data_dirs=(settings.data_dir,),
        cwd=settings.data_dir,
    )
