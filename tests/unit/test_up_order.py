"""up's service order: the relay and the aggregator side by side, the faucet once both have their containers ready."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from unicity_infra.commands import up
from unicity_infra.commands.run import RunResult
from unicity_infra.errors import ContainerFailedError
from unicity_infra.settings import build_run_settings


class FakeRuns:
    """A run_service stand-in that records each step and keeps the relay waiting until the aggregator started.

    With HOLD_AGGREGATOR the aggregator's containers run but stay unready until
    the faucet has made its plan.
    """

    def __init__(self, *, failing: str | None = None, hold_aggregator: bool = False) -> None:
        self.journal: list[str] = []
        self.failing = failing
        self.hold_aggregator = hold_aggregator
        self.aggregator_started = threading.Event()
        self.faucet_planned = threading.Event()
        self._lock = threading.Lock()

    def _note(self, entry: str) -> None:
        with self._lock:
            self.journal.append(entry)

    def __call__(self, engine: object, settings: object, *, stack: str, timeout_s: float, progress: object,
                 on_started: Callable[[], None] | None = None,
                 on_containers_started: Callable[[], None] | None = None,
                 before_apply: Callable[[], None] | None = None) -> RunResult:
        service = settings.service  # type: ignore[attr-defined]
        self._note(f"start {service}")
        if service == "relay":
            # Only true when the aggregator runs at the same time as the relay.
            assert self.aggregator_started.wait(5.0)
        if service == "faucet":
            self.faucet_planned.set()
        if before_apply is not None:
            before_apply()
        self._note(f"apply {service}")
        if service == self.failing:
            raise ContainerFailedError(f"unicity-{service}", "exited with status 1", exit_status=1)
        if service == "aggregator":
            self.aggregator_started.set()
        if on_containers_started is not None:
            on_containers_started()
        self._note(f"running {service}")
        if service == "aggregator" and self.hold_aggregator:
            assert self.faucet_planned.wait(5.0)
        self._note(f"ready {service}")
        if on_started is not None:
            on_started()
        self._note(f"probed {service}")
        return RunResult(container=f"unicity-{service}", image="image", endpoint=f"http://{service}")


def _planned(*services: str) -> dict[str, object]:
    return {service: build_run_settings(service, container_name=f"unicity-{service}", no_haproxy=True,
                                        publish="127.0.0.1:7000") for service in services}


def test_run_services_relay_and_aggregator_together(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns()
    monkeypatch.setattr(up, "run_service", fake)

    runs = up._run_services(object(), _planned("relay", "aggregator", "faucet"), stack="s", timeout_s=5.0,
                            progress=up.SILENT)

    assert list(runs) == ["relay", "aggregator", "faucet"]
    assert fake.journal.index("apply faucet") > fake.journal.index("ready relay")
    assert fake.journal.index("apply faucet") > fake.journal.index("ready aggregator")


def test_faucet_plans_while_aggregator_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns(hold_aggregator=True)
    monkeypatch.setattr(up, "run_service", fake)

    up._run_services(object(), _planned("relay", "aggregator", "faucet"), stack="s", timeout_s=5.0,
                     progress=up.SILENT)

    journal = fake.journal
    assert journal.index("start faucet") > journal.index("running aggregator")
    assert journal.index("start faucet") < journal.index("ready aggregator")
    assert journal.index("apply faucet") > journal.index("ready aggregator")
    assert journal.index("apply faucet") > journal.index("ready relay")


def test_faucet_skipped_when_aggregator_fails_late(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns()
    real_run_one = up._run_one

    def failing_after_start(engine: object, service: str, run_settings: object, **options: object) -> RunResult:
        if service != "aggregator":
            return real_run_one(engine, service, run_settings, **options)  # type: ignore[arg-type]
        runner = options["runner"]
        runner.containers_started.set()  # type: ignore[attr-defined]
        fake.aggregator_started.set()
        assert fake.faucet_planned.wait(5.0)
        raise ContainerFailedError("unicity-aggregator", "unhealthy", exit_status=None)

    monkeypatch.setattr(up, "run_service", fake)
    monkeypatch.setattr(up, "_run_one", failing_after_start)

    with pytest.raises(ContainerFailedError) as raised:
        up._run_services(object(), _planned("relay", "aggregator", "faucet"), stack="s", timeout_s=5.0,
                         progress=up.SILENT)

    assert raised.value.container == "unicity-aggregator"
    assert "start faucet" in fake.journal
    assert "apply faucet" not in fake.journal


def test_run_services_failure_skips_faucet(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRuns(failing="aggregator")
    fake.aggregator_started.set()  # the relay need not wait for an aggregator that fails
    monkeypatch.setattr(up, "run_service", fake)

    with pytest.raises(ContainerFailedError) as raised:
        up._run_services(object(), _planned("relay", "aggregator", "faucet"), stack="s", timeout_s=5.0,
                         progress=up.SILENT)

    assert "(service aggregator)" in raised.value.reason
    assert "start faucet" not in fake.journal
    assert "probed relay" in fake.journal
