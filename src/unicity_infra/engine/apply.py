"""Apply a StackPlan: networks and volumes first, then each container in order, awaited."""

from __future__ import annotations

import logging

from unicity_infra.engine.docker import DockerEngine
from unicity_infra.progress import SILENT, Progress
from unicity_infra.stack.plan import StackPlan
from unicity_infra.stack.spec import Condition

__all__ = ["apply_plan", "DEFAULT_READY_TIMEOUT_S"]

logger = logging.getLogger(__name__)

DEFAULT_READY_TIMEOUT_S = 180.0


def apply_plan(
    engine: DockerEngine,
    plan: StackPlan,
    *,
    timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    progress: Progress = SILENT,
) -> None:
    """Create PLAN's networks and volumes, then (re)create and await each container.

    Containers start in list order; each is awaited as healthy before the next,
    unless its dependants ask only for started or completed.
    Raises ContainerFailedError with the failed container's last log lines.
    """
    for network in plan.networks:
        engine.ensure_network(network, progress=progress)
    for volume in plan.volumes:
        engine.ensure_volume(volume, progress=progress)

    awaited: dict[str, Condition] = {}
    for spec in plan.containers:
        awaited.update(spec.depends_on)

    for spec in plan.containers:
        progress.stage(f"Starting {spec.name}")
        engine.create_and_start(spec, progress=progress)
        condition = awaited.get(spec.name, Condition.HEALTHY)
        engine.wait_for(spec.name, condition, timeout_s=timeout_s, progress=progress)
        logger.info("container ready name=%s condition=%s", spec.name, condition.value)
