"""Unit tests of the supervisor's pure parts: exit statuses and state snapshots."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from unicity_infra.container.supervisor import RUNNING, ProcessStatus, Supervisor, exit_status_of


@pytest.mark.parametrize(("returncode", "status"), [(0, 0), (3, 3), (-15, 143), (-9, 137)])
def test_exit_status_of(returncode: int, status: int) -> None:
    assert exit_status_of(returncode) == status


def test_process_status_to_json() -> None:
    status = ProcessStatus(
        name="relay",
        state=RUNNING,
        pid=42,
        restarts=2,
        last_exit_code=1,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    )

    assert status.to_json() == {
        "name": "relay",
        "state": "running",
        "pid": 42,
        "restarts": 2,
        "last_exit_code": 1,
        "started_at": "2026-01-02T03:04:05Z",
    }


def test_supervisor_stop_without_children_exits_zero() -> None:
    supervisor = Supervisor(stop_grace_s=1.0)

    supervisor.request_stop()

    assert supervisor.stop_requested is True
    assert supervisor.run() == 0
