"""Unit tests of the heartbeat (container/heartbeat.py): repairs, failure counting, rate-limited logs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import pytest

from unicity_infra.container.heartbeat import Heartbeat
from unicity_infra.container.registration import RegistrationError


@dataclass
class ScriptedLink:
    """Stands in for EdgeLink: each repair() returns or raises the next scripted outcome."""

    outcomes: list[list[str] | RegistrationError]
    api_url: str = "http://edge.test:8404"
    names: tuple[str, ...] = ("relay.example.org",)
    https_port: int | None = 443
    calls: int = 0
    done: list[float] = field(default_factory=list)

    def repair(self) -> list[str]:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else []
        self.done.append(time.monotonic())
        if isinstance(outcome, RegistrationError):
            raise outcome
        return outcome


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def edge_down() -> RegistrationError:
    return RegistrationError("asking the edge failed: connection refused", url="http://edge.test:8404", domain="relay.example.org")


def test_beat_counts_repairs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    link = ScriptedLink([["relay.example.org"], []])
    heartbeat = Heartbeat(link, interval_s=30)  # type: ignore[arg-type]

    assert heartbeat.beat() is True
    assert heartbeat.beat() is True
    assert heartbeat.repairs == 1
    assert caplog.text.count("re-registered with the edge names=relay.example.org https_port=443 repairs=1") == 1


def test_beat_failures_logged_once_per_period(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    link = ScriptedLink([edge_down() for _ in range(5)] + [[]])
    heartbeat = Heartbeat(link, interval_s=30, log_every_s=60, clock=clock)  # type: ignore[arg-type]

    results = []
    for now in (0, 5, 10, 70, 75):
        clock.now = now
        results.append(heartbeat.beat())
    caplog.set_level(logging.INFO)
    recovered = heartbeat.beat()

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert results == [False] * 5
    assert heartbeat.failures == 5
    assert len(warnings) == 2
    assert warnings[1].startswith("heartbeat check failed (3 failures since the last report, 4 in all)")
    assert recovered is True
    assert "edge replies again after 5 failed heartbeat checks" in caplog.text


def test_thread_retries_sooner_after_failure() -> None:
    link = ScriptedLink([edge_down(), [], []])
    heartbeat = Heartbeat(link, interval_s=0.6, retry_s=0.1)  # type: ignore[arg-type]

    heartbeat.start()
    time.sleep(0.9)
    heartbeat.stop()

    gaps = [later - earlier for earlier, later in zip(link.done, link.done[1:])]
    assert link.calls >= 2
    assert gaps[0] < 0.4


def test_stop_ends_thread() -> None:
    link = ScriptedLink([])
    heartbeat = Heartbeat(link, interval_s=0.05)  # type: ignore[arg-type]
    heartbeat.start()
    time.sleep(0.2)

    heartbeat.stop()
    calls = link.calls
    time.sleep(0.2)

    assert calls >= 1
    assert link.calls == calls
