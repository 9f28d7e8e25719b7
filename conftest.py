"""Suite-wide pytest hooks."""

from __future__ import annotations

from pathlib import Path

import pytest

_DOCKER_TIER = Path(__file__).parent / "tests" / "docker"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Docker tests share images built once per session and the engine's state, so
    # under pytest-xdist (--dist loadgroup) they all run on one worker, in order.
    for item in items:
        if _DOCKER_TIER in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.xdist_group("docker"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest exits 5 when it collects nothing; a run that tested nothing must not pass.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
