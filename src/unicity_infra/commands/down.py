"""``down``: remove our containers, our private networks and, when asked, our volumes."""

from __future__ import annotations

import contextlib
from pathlib import Path

from unicity_infra.engine.docker import DockerEngine
from unicity_infra.paths import state_dir
from unicity_infra.progress import SILENT, Progress

__all__ = ["GENESIS_ROLE", "wipe_roles", "plan_wipe", "take_down"]

# Volume role of the aggregator's genesis (trust base, node keys, shard configuration).
GENESIS_ROLE = "genesis"


def wipe_roles(*, wipe: bool, wipe_certificates: bool) -> tuple[str, ...]:
    """Return the roles of the volumes a ``down`` with these flags removes.

    WIPE takes the data and the genesis together: MongoDB's blocks are
    certified under one genesis, so either one without the other is a broken
    chain. WIPE_CERTIFICATES takes the certificates.

    >>> wipe_roles(wipe=True, wipe_certificates=False)
    ('data', 'genesis')
    """
    return (("data", GENESIS_ROLE) if wipe else ()) + (("certificates",) if wipe_certificates else ())


def plan_wipe(
    engine: DockerEngine,
    *,
    stack: str,
    services: list[str],
    wipe: bool,
    wipe_certificates: bool,
) -> dict[str, list[str]]:
    """Return the volumes a ``down`` with these flags would remove, by role; nothing is removed."""
    selected = services or [None]
    planned: dict[str, list[str]] = {}
    for role in wipe_roles(wipe=wipe, wipe_certificates=wipe_certificates):
        names = [volume for service in selected for volume in engine.list_volumes(stack=stack, service=service, role=role)]
        if names:
            planned[role] = sorted(set(names))
    return planned


def take_down(
    engine: DockerEngine,
    *,
    stack: str,
    services: list[str],
    wipe: bool,
    wipe_certificates: bool,
    progress: Progress = SILENT,
) -> dict[str, list[str]]:
    """Remove STACK's containers (only SERVICES when given) and return what was removed.

    Data and genesis volumes go only with WIPE and certificate volumes only
    with WIPE_CERTIFICATES, each with the host files that copy them (the
    trust base, the certificates probes verify against). Shared networks such as haproxy-net are never
    removed. The local edge is left running; 'edge down' removes it. A second
    call finds nothing and removes nothing.
    """
    selected = services or [None]
    removed: dict[str, list[str]] = {"containers": [], "volumes": [], "networks": []}

    for service in selected:
        for info in engine.list_containers(stack=stack, service=service):
            if service is None and info.service == "edge":
                continue  # the shared edge goes only with 'edge down'
            if engine.remove_container(info.name, progress=progress):
                removed["containers"].append(info.name)

    for service in selected:
        for role in wipe_roles(wipe=wipe, wipe_certificates=wipe_certificates):
            for volume in engine.list_volumes(stack=stack, service=service, role=role):
                engine.remove_volume(volume, progress=progress)
                removed["volumes"].append(volume)

    if not services:
        for network in engine.list_networks(stack=stack):
            if engine.remove_network(network, progress=progress):
                removed["networks"].append(network)
    removed["files"] = _remove_host_files(stack=stack, services=services, containers=removed["containers"],
                                          wipe=wipe, wipe_certificates=wipe_certificates)
    return removed


def _remove_host_files(*, stack: str, services: list[str], containers: list[str], wipe: bool,
                       wipe_certificates: bool) -> list[str]:
    """Remove the files under the state directory that describe what was just removed; return their paths."""
    from unicity_infra.commands.aggregator import default_trust_base_path
    from unicity_infra.commands.up import state_file

    directory = state_dir()
    candidates: list[Path] = [directory / "secrets" / f"{name}-haproxy-api-key" for name in containers]
    if wipe and not services:
        # The endpoints 'up' recorded for 'env'. A plain 'down' keeps them, so 'env' can name the stopped containers.
        candidates.append(state_file(stack))
    if wipe and (not services or "aggregator" in services):
        candidates.append(default_trust_base_path(stack))  # the trust base of a chain that is gone
    if wipe_certificates:
        candidates.extend(directory / "certs" / f"{name}.pem" for name in containers)
    removed = []
    for path in candidates:
        if path.is_file():
            path.unlink()
            removed.append(str(path))
    with contextlib.suppress(OSError):  # the stack's record directory, unless something else is in it
        state_file(stack).parent.rmdir()
    return removed
