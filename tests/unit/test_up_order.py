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
    """A run_service stand-in that records each step and keeps the relay waiting until the aggregator started."""

    def __init__(self, *, failing: str | None = None) -> None:
        self.journal: list[str] = []
        self.failing = failing
        self.aggregator_started = threading.Event()
        self._lock = threading.Lock()

    def _note(self, entry: str) -> None:
        with self._lock:
            self.journal.append(entry)

    def __call__(self, engine: object, settings: object, *, stack: str, timeout_s: float, progress: object,
                 on_started: Callable[[], None] | None = None) -> RunResult:
        service = settings.service  # type: ignore[attr-defined]
        self._note(f"start {service}")
        if service == "relay":
            # Only true when the aggregator runs at the same time as the relay.
            assert self.aggregator_started.wait(5.0)
        if service == self.failing:
            raise ContainerFailedError(f"unicity-{service}", "exited with status 1", exit_status=1)
        if service == "aggregator":
            self.aggregator_started.set()
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
    assert fake.journal.index("start faucet") > fake.journal.index("ready relay")
    assert fake.journal.index("start faucet") > fake.journal.index("ready aggregator")


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
