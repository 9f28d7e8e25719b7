"""``status``: our containers with state, health, endpoint and certificate days left."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

from unicity_infra.engine.docker import DockerEngine
from unicity_infra.errors import DockerError, InfraError
from unicity_infra.stack.spec import LABEL_ENDPOINT

__all__ = ["collect_status", "collect_genesis", "read_supervisor_health"]

logger = logging.getLogger(__name__)

# The supervisor inside every wrapper image serves its state here (loopback only).
_HEALTH_COMMAND = [
    "python3",
    "-c",
    "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:8081/_ssl/health',timeout=3).read().decode())",
]


def read_supervisor_health(engine: DockerEngine, container: str) -> dict | None:
    """Return the supervisor's /_ssl/health document, or None when it cannot be read."""
    try:
        exit_code, output = engine.exec_output(container, _HEALTH_COMMAND)
    except DockerError as exc:
        logger.debug("health not readable container=%s error=%s", container, exc)
        return None
    if exit_code != 0:
        return None
    try:
        return json.loads(output)
    except json.JSONDecodeError:
        return None


def collect_status(engine: DockerEngine, *, stack: str) -> list[dict[str, object]]:
    """Return one row per container of STACK, grouped by service, with stable keys for ``--json``."""
    rows = []
    from unicity_infra.commands.up import SERVICE_ORDER

    # Grouped by service in start order (relay, aggregator, faucet, then any other), by name inside a service.
    order = {service: rank for rank, service in enumerate(SERVICE_ORDER)}
    listed = sorted(engine.list_containers(stack=stack), key=lambda info: (order.get(info.service, len(order)),
                                                                           info.service, info.name))
    # One exec per running container, each about 0.1 s, so they run side by side.
    running_names = [info.name for info in listed if info.state == "running"]
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="status-health") as pool:
        healths = dict(zip(running_names, pool.map(lambda name: read_supervisor_health(engine, name), running_names),
                           strict=True))
    for info in listed:
        running = info.state == "running"
        health = healths.get(info.name)
        rows.append({
            "service": info.service,
            "container": info.name,
            "state": info.state,
            # Docker keeps the last health result of a stopped container, so a one-shot
            # step that exited 0 would read "unhealthy".
            "health": info.health if running else None,
            "exit_code": None if running else info.exit_code,
            "endpoint": info.labels.get(LABEL_ENDPOINT),
            "certificate_days_left": (health or {}).get("days_remaining"),
            "restarts": ((health or {}).get("service") or {}).get("restarts"),
            "image": info.image,
        })
    return rows


def collect_genesis(engine: DockerEngine, *, stack: str) -> dict[str, object] | None:
    """Return the aggregator genesis of STACK (creation time, trust-base SHA-256, network id, epoch), or None."""
    from unicity_infra.commands.aggregator import read_genesis_trust_base

    if not engine.list_containers(stack=stack, service="aggregator"):
        return None
    try:
        return read_genesis_trust_base(engine, stack=stack).summary()
    except InfraError as exc:
        logger.debug("no genesis to show stack=%s: %s", stack, exc)
        return None
