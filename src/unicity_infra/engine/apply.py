"""Apply a StackPlan: networks and volumes first, then each container in order, awaited."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from unicity_infra.engine.docker import ContainerInfo, DockerEngine
from unicity_infra.progress import SILENT, Progress
from unicity_infra.stack.plan import StackPlan, spec_hash
from unicity_infra.stack.spec import LABEL_SPEC_HASH, Condition, ContainerSpec

__all__ = ["ApplyResult", "apply_plan", "is_unchanged", "DEFAULT_READY_TIMEOUT_S"]

logger = logging.getLogger(__name__)

DEFAULT_READY_TIMEOUT_S = 180.0


@dataclass
class ApplyResult:
    """The containers a plan (re)created and those it left unchanged."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


def is_unchanged(current: ContainerInfo | None, *, digest: str, image_id: str | None, condition: Condition) -> bool:
    """Tell whether CURRENT already runs DIGEST's spec on IMAGE_ID and still meets CONDITION."""
    if current is None or current.labels.get(LABEL_SPEC_HASH) != digest or current.image != image_id:
        return False
    if condition is Condition.COMPLETED:
        return current.state == "exited" and current.exit_code == 0
    if current.state != "running":
        return False
    return condition is Condition.STARTED or current.health in ("healthy", None)


def _with_digest(spec: ContainerSpec, image_id: str | None) -> tuple[ContainerSpec, str]:
    digest = spec_hash(spec) + ":" + (image_id or "")[-12:]
    return replace(spec, labels={**spec.labels, LABEL_SPEC_HASH: digest}), digest


def apply_plan(
    engine: DockerEngine,
    plan: StackPlan,
    *,
    timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    progress: Progress = SILENT,
) -> ApplyResult:
    """Create PLAN's networks and volumes, then (re)create and await each changed container.

    Containers start in list order; each is awaited as healthy before the next,
    unless its dependants ask only for started or completed. A container that
    already runs the same spec on the same image and meets its condition is left
    alone, so a second call on a healthy stack changes nothing.
    Raises ContainerFailedError with the failed container's last log lines.
    """
    for network in plan.networks:
        engine.ensure_network(network, progress=progress)
    for volume in plan.volumes:
        engine.ensure_volume(volume, progress=progress)

    awaited: dict[str, Condition] = {}
    for spec in plan.containers:
        awaited.update(spec.depends_on)

    result = ApplyResult()
    for spec in plan.containers:
        condition = awaited.get(spec.name, Condition.HEALTHY)
        image_id = engine.image_id(spec.image)
        labelled, digest = _with_digest(spec, image_id)
        if is_unchanged(engine.container_snapshot(spec.name), digest=digest, image_id=image_id, condition=condition):
            progress.note(f"{spec.name} is unchanged and {condition.name.lower()}; left as it is")
            result.unchanged.append(spec.name)
            continue

        progress.stage(f"Starting {spec.name}")
        engine.create_and_start(labelled, progress=progress)
        engine.wait_for(spec.name, condition, timeout_s=timeout_s, progress=progress)
        result.created.append(spec.name)
        logger.info("container ready name=%s condition=%s", spec.name, condition.value)
    return result
