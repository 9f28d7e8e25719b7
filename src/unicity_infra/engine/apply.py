"""Apply a StackPlan: networks and volumes first, then each container once its dependencies are ready."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from unicity_infra.engine.docker import (
    POLL_FALLBACK_S,
    ContainerEvents,
    ContainerInfo,
    DockerEngine,
    Readiness,
)
from unicity_infra.progress import SILENT, Progress
from unicity_infra.stack.plan import StackPlan, spec_hash
from unicity_infra.stack.spec import LABEL_SPEC_HASH, Condition, ContainerSpec

__all__ = ["DEFAULT_READY_TIMEOUT_S", "ApplyResult", "SerializedProgress", "apply_plan", "is_unchanged", "startable"]

logger = logging.getLogger(__name__)

DEFAULT_READY_TIMEOUT_S = 180.0
# Containers started at the same time. The aggregator plan has two without dependencies.
_START_WORKERS = 4


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
    on_all_started: Callable[[], None] | None = None,
) -> ApplyResult:
    """Create PLAN's networks and volumes, then (re)create each changed container once its dependencies are met.

    A container starts as soon as every container it depends on meets the
    condition its depends_on names (healthy, started or completed), so
    independent containers start side by side. The others start in list order. Each is
    awaited as healthy unless its dependants ask only for started or completed.
    A container that already runs the same spec on the same image and meets
    its condition is left alone, so a second call on a healthy stack changes
    nothing. ON_ALL_STARTED is called once every container runs, before the
    last ones are ready. Raises ContainerFailedError with the failed
    container's last log lines; containers already started are left running
    for inspection.
    """
    for network in plan.networks:
        engine.ensure_network(network, progress=progress)
    for volume in plan.volumes:
        engine.ensure_volume(volume, progress=progress)

    awaited: dict[str, Condition] = {}
    for spec in plan.containers:
        awaited.update(spec.depends_on)

    result = ApplyResult()
    waiting: list[tuple[ContainerSpec, Condition]] = []
    for spec in plan.containers:
        condition = awaited.get(spec.name, Condition.HEALTHY)
        image_id = engine.image_id(spec.image)
        labelled, digest = _with_digest(spec, image_id)
        if is_unchanged(engine.container_snapshot(spec.name), digest=digest, image_id=image_id, condition=condition):
            progress.note(f"{spec.name} is unchanged and {condition.name.lower()}; left as it is")
            result.unchanged.append(spec.name)
        else:
            waiting.append((labelled, condition))
    if waiting:
        result.created = _Rollout(engine, waiting, met=set(result.unchanged), timeout_s=timeout_s,
                                  progress=progress, on_all_started=on_all_started).run()
    elif on_all_started is not None:
        on_all_started()
    return result


def startable(spec: ContainerSpec, *, met: set[str], planned: set[str]) -> bool:
    """Tell whether every dependency of SPEC that is in PLANNED has met its condition."""
    return all(name in met for name in spec.depends_on if name in planned)


class SerializedProgress:
    """Progress shared by several threads, which it passes on one call at a time.

    Several instances that pass the same LOCK write to PROGRESS one at a time too.
    """

    def __init__(self, progress: Progress, lock: threading.Lock | None = None) -> None:
        self._progress = progress
        self._lock = lock or threading.Lock()

    def stage(self, title: str) -> None:
        with self._lock:
            self._progress.stage(title)

    def action(self, text: str) -> None:
        with self._lock:
            self._progress.action(text)

    def wait(self, text: str, elapsed_s: float, timeout_s: float | None = None) -> None:
        with self._lock:
            self._progress.wait(text, elapsed_s, timeout_s)

    def note(self, text: str) -> None:
        with self._lock:
            self._progress.note(text)


class _Rollout:
    """Starts waiting containers once their dependencies are met and awaits them, side by side.

    A Docker start call takes a good part of a second on slow storage, so the
    calls run in worker threads. A container that becomes ready in the
    meantime is noticed at once, and its dependants start without waiting for
    an unrelated start call to return.
    """

    def __init__(self, engine: DockerEngine, waiting: list[tuple[ContainerSpec, Condition]], *, met: set[str],
                 timeout_s: float, progress: Progress, on_all_started: Callable[[], None] | None = None) -> None:
        self.engine, self.waiting, self.met, self.timeout_s = engine, waiting, met, timeout_s
        self.on_all_started = on_all_started
        self.progress = SerializedProgress(progress)
        self.planned = {spec.name for spec, _ in waiting} | met
        self.starting: dict[Future[None], tuple[ContainerSpec, Condition]] = {}
        self.tracked: list[Readiness] = []
        self.ready: list[str] = []

    def run(self) -> list[str]:
        """Return the names of the containers started, in the order they became ready."""
        with self.engine.watch(self.planned) as events, ThreadPoolExecutor(
            max_workers=_START_WORKERS, thread_name_prefix="docker-start"
        ) as pool:
            while self.waiting or self.starting or self.tracked:
                self._start_unblocked(pool, events)
                self._track_started()
                if self.on_all_started is not None and not self.waiting and not self.starting:
                    self.on_all_started()
                    self.on_all_started = None
                if self._collect_ready():
                    continue
                if self.tracked:
                    slowest = max(self.tracked, key=lambda readiness: readiness.elapsed_s)
                    self.progress.wait(", ".join(f"{item.name}: {item.last_seen}" for item in self.tracked),
                                       slowest.elapsed_s, self.timeout_s)
                events.wait(POLL_FALLBACK_S)
        return self.ready

    def _start_unblocked(self, pool: ThreadPoolExecutor, events: ContainerEvents) -> None:
        for item in [item for item in self.waiting if startable(item[0], met=self.met, planned=self.planned)]:
            self.progress.stage(f"Starting {item[0].name}")
            future = pool.submit(self.engine.create_and_start, item[0], progress=self.progress)
            future.add_done_callback(lambda _: events.notify())
            self.starting[future] = item
            self.waiting.remove(item)
        if self.waiting and not self.starting and not self.tracked:
            # Unreachable for the plans we build, because only a cycle leads here.
            blocked = ", ".join(spec.name for spec, _ in self.waiting)
            raise ValueError(f"containers wait for each other and none can start: {blocked}")

    def _track_started(self) -> None:
        for future in [future for future in self.starting if future.done()]:
            spec, condition = self.starting.pop(future)
            future.result()  # raises the DockerError of a failed start call
            self.tracked.append(self.engine.track(spec.name, condition))

    def _collect_ready(self) -> bool:
        ready = [item for item in self.tracked if self.engine.is_ready(item, timeout_s=self.timeout_s)]
        for item in ready:
            self.tracked.remove(item)
            self.met.add(item.name)
            self.ready.append(item.name)
            logger.info("container ready name=%s condition=%s after_s=%.2f", item.name, item.condition.value,
                        item.elapsed_s)
        return bool(ready)
