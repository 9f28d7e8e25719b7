"""``edge up|down|status``: run the local edge and hand clients the files they must trust."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from unicity_infra.engine.apply import apply_plan
from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import DockerError
from unicity_infra.paths import state_dir
from unicity_infra.progress import SILENT, Progress
from unicity_infra.stack.edge import (
    EDGE_STATE_DIR,
    LABEL_EDGE_ALIAS,
    LABEL_EDGE_API,
    LABEL_EDGE_HTTP,
    LABEL_EDGE_KEY_FILE,
    LABEL_EDGE_KEY_REQUIRED,
    ROLE_EDGE_NETWORK,
    ROLE_EDGE_STATE,
    EdgeSettings,
    edge_container_name,
    edge_plan,
)
from unicity_infra.stack.spec import LABEL_ENDPOINT

__all__ = ["EdgeStatus", "edge_up", "edge_down", "edge_status", "edge_state_dir", "generate_api_key"]

logger = logging.getLogger(__name__)

ROOTS_IN_CONTAINER = f"{EDGE_STATE_DIR}/issuing-roots.pem"
ACME_CA_IN_CONTAINER = f"{EDGE_STATE_DIR}/acme/listener-ca.pem"


@dataclass
class EdgeStatus:
    """The edge's state as ``edge status --json`` reports it; the API key itself is never part of it."""

    container: str
    state: str
    health: str | None
    api_url: str | None
    http_url: str | None
    https_url: str | None
    acme_directory: str | None
    ca_bundle: str | None
    acme_ca_bundle: str | None
    key_required: bool
    key_file: str | None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def edge_state_dir(stack: str) -> Path:
    """Return the host directory holding this stack's edge files (CA bundles, generated key)."""
    return state_dir() / "edge" / stack


def generate_api_key(stack: str) -> Path:
    """Return the path of this stack's edge API key file, creating a random key once."""
    directory = edge_state_dir(stack)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "api-key"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path


def _copy_out(engine: DockerEngine, container: str, source: str, target: Path) -> Path | None:
    try:
        content = engine.read_file(container, source)
    except DockerError as exc:
        logger.warning("could not copy %s out of %s: %s", source, container, exc)
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_bytes(content)
    os.replace(temporary, target)
    return target


def edge_up(engine: DockerEngine, settings: EdgeSettings, *, stack: str, progress: Progress = SILENT) -> EdgeStatus:
    """Start (or replace) the local edge, wait until its API responds, export its CA files."""
    apply_plan(engine, edge_plan(settings, stack=stack), timeout_s=60.0, progress=progress)
    status = edge_status(engine, stack=stack, key_file=settings.api_key_file)
    assert status is not None  # apply_plan raised if the container did not become healthy
    return status


def edge_status(engine: DockerEngine, *, stack: str, key_file: Path | None = None) -> EdgeStatus | None:
    """Return the edge's state and refresh the exported CA files, or None when no edge runs."""
    name = edge_container_name(stack)
    found = [info for info in engine.list_containers(stack=stack, service="edge") if info.name == name]
    if not found:
        return None
    info = found[0]
    directory = edge_state_dir(stack)

    ca_bundle = acme_ca = None
    if info.state == "running":
        ca_bundle = _copy_out(engine, name, ROOTS_IN_CONTAINER, directory / "ca-bundle.pem")
        acme_ca = _copy_out(engine, name, ACME_CA_IN_CONTAINER, directory / "acme-ca.pem")
    key_required = info.labels.get(LABEL_EDGE_KEY_REQUIRED) == "true"
    if key_file is None and key_required:
        # Name the file the running edge was started with. A key that an earlier
        # '--require-key' generated may still be in the state directory.
        recorded = info.labels.get(LABEL_EDGE_KEY_FILE)
        default_key = directory / "api-key"
        if recorded:
            key_file = Path(recorded)
        elif default_key.exists():
            key_file = default_key

    return EdgeStatus(
        container=name,
        state=info.state,
        health=info.health,
        api_url=info.labels.get(LABEL_EDGE_API),
        http_url=info.labels.get(LABEL_EDGE_HTTP),
        https_url=info.labels.get(LABEL_ENDPOINT),
        acme_directory=f"https://{info.labels.get(LABEL_EDGE_ALIAS, 'haproxy')}:14000/dir" if ca_bundle else None,
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        acme_ca_bundle=str(acme_ca) if acme_ca else None,
        key_required=key_required,
        key_file=str(key_file) if key_required and key_file else None,
    )


def edge_down(engine: DockerEngine, *, stack: str, wipe: bool, progress: Progress = SILENT) -> dict[str, list[str]]:
    """Remove the edge container; with WIPE also its state volume (registrations, CA roots) and its host files."""
    removed: dict[str, list[str]] = {"containers": [], "volumes": [], "networks": []}
    name = edge_container_name(stack)
    if engine.remove_container(name, progress=progress):
        removed["containers"].append(name)
    if wipe:
        for volume in engine.list_volumes(stack=stack, service="edge", role=ROLE_EDGE_STATE):
            engine.remove_volume(volume, progress=progress)
            removed["volumes"].append(volume)
    for network in engine.list_networks():
        if engine.network_role(network) == ROLE_EDGE_NETWORK and engine.remove_network(network, progress=progress):
            removed["networks"].append(network)
    if wipe:
        # The host copies of the edge's CA roots and its generated API key belong to the wiped state.
        directory = edge_state_dir(stack)
        removed["files"] = [str(path) for path in sorted(directory.glob("*")) if path.is_file()]
        shutil.rmtree(directory, ignore_errors=True)
    return removed
