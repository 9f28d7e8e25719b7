"""apply_plan's start order: each container starts once its dependencies are ready, independent ones side by side."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Self

import pytest

from unicity_infra.engine.apply import _with_digest, apply_plan, startable
from unicity_infra.engine.docker import ContainerInfo, Readiness
from unicity_infra.errors import ContainerFailedError
from unicity_infra.stack.plan import StackPlan
from unicity_infra.stack.spec import LABEL_SPEC_HASH, Condition, ContainerSpec


class _NoEvents:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def notify(self) -> None:
        return None

    def wait(self, timeout_s: float) -> bool:
        time.sleep(0.001)  # lets the start threads run
        return False


@dataclass
class FakeEngine:
    """Each started container becomes ready after LOOKS[name] inspections; FAILS names one that exits 1."""

    looks: dict[str, int]
    existing: dict[str, ContainerInfo] = field(default_factory=dict)
    fails: str | None = None
    journal: list[str] = field(default_factory=list)
    # A start call of a key returns only once the value's start call was made, or after 5 s.
    waits_for_start: dict[str, str] = field(default_factory=dict)
    met_while_starting: list[str] = field(default_factory=list)
    # A key becomes ready no sooner than the value's start call was made.
    ready_after_start: dict[str, str] = field(default_factory=dict)
    _started: threading.Condition = field(default_factory=threading.Condition)

    def ensure_network(self, spec: object, **_: object) -> None:
        return None

    def ensure_volume(self, spec: object, **_: object) -> None:
        return None

    def image_id(self, image: str) -> str:
        return "sha256:" + image

    def container_snapshot(self, name: str) -> ContainerInfo | None:
        return self.existing.get(name)

    def watch(self, names: object) -> _NoEvents:
        return _NoEvents()

    def create_and_start(self, spec: ContainerSpec, **_: object) -> None:
        other = self.waits_for_start.get(spec.name)
        with self._started:
            if other is not None and self._started.wait_for(lambda: f"start {other}" in self.journal, timeout=5.0):
                self.met_while_starting.append(spec.name)
            self.journal.append(f"start {spec.name}")
            self._started.notify_all()

    def track(self, name: str, condition: Condition) -> Readiness:
        return Readiness(name, condition, restarts_at_start=0, started=time.monotonic())

    def is_ready(self, readiness: Readiness, *, timeout_s: float) -> bool:
        if readiness.name == self.fails:
            raise ContainerFailedError(readiness.name, "exited with status 1", exit_status=1, log_tail=["boom"])
        self.looks[readiness.name] -= 1
        if self.looks[readiness.name] > 0:
            return False
        other = self.ready_after_start.get(readiness.name)
        if other is not None and f"start {other}" not in self.journal:
            if readiness.elapsed_s > timeout_s:
                raise ContainerFailedError(readiness.name, f"not ready within {timeout_s:g} s", exit_status=None)
            return False
        self.journal.append(f"ready {readiness.name}")
        return True


def _spec(name: str, **depends_on: Condition) -> ContainerSpec:
    return ContainerSpec(name=name, service="aggregator", image=name, depends_on=depends_on)


def _aggregator_like_plan() -> StackPlan:
    return StackPlan(containers=[
        _spec("genesis"),
        _spec("root", genesis=Condition.COMPLETED),
        _spec("mongo"),
        _spec("aggregator", root=Condition.HEALTHY, mongo=Condition.HEALTHY),
    ], networks=[], volumes=[])


def test_apply_plan_starts_independent_containers_together() -> None:
    # genesis's start call lasts until mongo's has begun, which happens only when they run side by side.
    # mongo stays unready until root started, so root must not wait for it (a broken order times out).
    engine = FakeEngine(looks={"genesis": 3, "root": 1, "mongo": 5, "aggregator": 1},
                        waits_for_start={"genesis": "mongo"}, ready_after_start={"mongo": "root"})

    result = apply_plan(engine, _aggregator_like_plan(), timeout_s=5.0)  # type: ignore[arg-type]

    assert engine.met_while_starting == ["genesis"]
    assert set(engine.journal[:2]) == {"start genesis", "start mongo"}
    assert engine.journal.index("start root") > engine.journal.index("ready genesis")
    assert engine.journal.index("start root") < engine.journal.index("ready mongo")
    assert engine.journal.index("start aggregator") > max(engine.journal.index("ready root"),
                                                          engine.journal.index("ready mongo"))
    assert sorted(result.created) == ["aggregator", "genesis", "mongo", "root"]


def test_apply_plan_unchanged_dependency_met() -> None:
    engine = FakeEngine(looks={"genesis": 1, "root": 1, "mongo": 1, "aggregator": 1})
    plan = _aggregator_like_plan()
    # A running, healthy MongoDB with the same spec is left alone, and the aggregator need not wait for it.
    _, digest = _with_digest(plan.containers[2], "sha256:mongo")
    engine.existing["mongo"] = ContainerInfo(name="mongo", service="aggregator", stack="s", image="sha256:mongo",
                                             state="running", health="healthy",
                                             labels={LABEL_SPEC_HASH: digest}, exit_code=0)

    result = apply_plan(engine, plan)  # type: ignore[arg-type]

    assert result.unchanged == ["mongo"]
    assert "start mongo" not in engine.journal
    assert engine.journal[-2:] == ["start aggregator", "ready aggregator"]


def test_all_started_before_last_ready() -> None:
    engine = FakeEngine(looks={"genesis": 1, "root": 1, "mongo": 1, "aggregator": 1})

    apply_plan(engine, _aggregator_like_plan(), on_all_started=lambda: engine.journal.append("all started"))  # type: ignore[arg-type]

    assert engine.journal.count("all started") == 1
    assert engine.journal.index("all started") > engine.journal.index("start aggregator")
    assert engine.journal.index("all started") < engine.journal.index("ready aggregator")


def test_all_started_when_nothing_changes() -> None:
    engine = FakeEngine(looks={})
    plan = StackPlan(containers=[_spec("mongo")], networks=[], volumes=[])
    _, digest = _with_digest(plan.containers[0], "sha256:mongo")
    engine.existing["mongo"] = ContainerInfo(name="mongo", service="aggregator", stack="s", image="sha256:mongo",
                                             state="running", health="healthy",
                                             labels={LABEL_SPEC_HASH: digest}, exit_code=None)

    apply_plan(engine, plan, on_all_started=lambda: engine.journal.append("all started"))  # type: ignore[arg-type]

    assert engine.journal == ["all started"]


def test_apply_plan_stops_at_failed_dependency() -> None:
    engine = FakeEngine(looks={"genesis": 1, "root": 1, "mongo": 1, "aggregator": 1}, fails="genesis")

    with pytest.raises(ContainerFailedError) as raised:
        apply_plan(engine, _aggregator_like_plan())  # type: ignore[arg-type]

    assert raised.value.container == "genesis"
    assert "start root" not in engine.journal
    assert "start aggregator" not in engine.journal


@pytest.mark.parametrize(
    ("met", "expected"),
    [(set(), False), ({"root"}, False), ({"root", "mongo"}, True)],
)
def test_startable_needs_planned_dependencies(met: set[str], expected: bool) -> None:
    spec = _spec("aggregator", root=Condition.HEALTHY, mongo=Condition.HEALTHY, elsewhere=Condition.HEALTHY)

    assert startable(spec, met=met, planned={"root", "mongo", "aggregator"}) is expected
