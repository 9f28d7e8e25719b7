"""``down``: remove our containers, our private networks and, when asked, our volumes."""

from __future__ import annotations

from unicity_infra.engine.docker import DockerEngine
from unicity_infra.progress import SILENT, Progress

__all__ = ["take_down"]


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

    Data volumes go only with WIPE and certificate volumes only with
    WIPE_CERTIFICATES. Shared networks such as haproxy-net are never removed.
    The local edge is left running; 'edge down' removes it. A second call finds
    nothing and removes nothing.
    """
    selected = services or [None]
    removed: dict[str, list[str]] = {"containers": [], "volumes": [], "networks": []}

    for service in selected:
        for info in engine.list_containers(stack=stack, service=service):
            if service is None and info.service == "edge":
                continue  # the shared edge goes only with 'edge down'
            if engine.remove_container(info.name, progress=progress):
                removed["containers"].append(info.name)

    roles = (["data"] if wipe else []) + (["certificates"] if wipe_certificates else [])
    for service in selected:
        for role in roles:
            for volume in engine.list_volumes(stack=stack, service=service, role=role):
                engine.remove_volume(volume, progress=progress)
                removed["volumes"].append(volume)

    if not services:
        for network in engine.list_networks(stack=stack):
            if engine.remove_network(network, progress=progress):
                removed["networks"].append(network)
    return removed
