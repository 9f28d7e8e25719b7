"""The container healthcheck (``python3 -m unicity_infra.container.healthcheck``) against a running supervisor."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.component.conftest import EntrypointRun, pick_free_ports

pytestmark = pytest.mark.component

StartEntrypoint = Callable[..., EntrypointRun]


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unicity_infra.container.healthcheck"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def test_healthcheck_running_service_is_healthy(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint()
    run.wait_running()

    result = run_healthcheck(run.env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "healthy: service relay is running and answers"
    assert run.stop() == 0


def test_healthcheck_restarting_service_is_unhealthy(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint(STANDIN_CRASH_AFTER_S="0.3", UNICITY_BACKOFF_INITIAL_S="5", UNICITY_BACKOFF_MAX_S="5")
    run.wait_for_health(lambda doc: doc["service"]["state"] == "restarting", description="restarting state")

    result = run_healthcheck(run.env)

    assert result.returncode == 1
    assert "service relay is restarting" in result.stdout
    run.stop()


def test_healthcheck_service_not_answering_is_unhealthy(start_entrypoint: StartEntrypoint) -> None:
    run = start_entrypoint()
    run.wait_running()
    # The supervisor still reports "running", but the probe goes to a port where nothing listens.
    env = {**run.env, "RELAY_PORT": str(pick_free_ports(1)[0])}

    result = run_healthcheck(env)

    assert result.returncode == 1
    assert "NIP-11 request" in result.stdout
    assert run.stop() == 0


def test_healthcheck_without_supervisor_is_unhealthy() -> None:
    result = run_healthcheck({"UNICITY_STATUS_PORT": str(pick_free_ports(1)[0]), "PATH": "/usr/bin:/bin"})

    assert result.returncode == 1
    assert "supervisor status unavailable" in result.stdout
