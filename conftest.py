"""Suite-wide pytest hooks: the run order and worker count under pytest-xdist, and exit status 5 as a failure.

The pyproject addopts run the suite on ``-n auto --dist loadgroup`` workers.
There are more workers than cores, because a Docker test mostly waits for its
containers. Every Docker test uses its own stack name, network and free host
ports, so any worker can run it. A test that must share a worker with others
(fixed host ports, a shared container) is marked with ``xdist_group``.
Tests marked slow run first, then the Docker, component and unit tiers, so the
long tests start at once and the short unit tests fill the gaps at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_TESTS = Path(__file__).parent / "tests"
# Position of each tier in the run order; anything else runs last.
_TIER_ORDER = {"docker": 0, "component": 1, "unit": 2}
# Workers per core under '-n auto', because a Docker test mostly waits for the engine.
_WORKERS_PER_CORE = 2
_MIN_WORKERS = 4


def _run_rank(item: pytest.Item) -> tuple[int, int]:
    """Return the sort key of ITEM: tests marked slow first, then by tier."""
    path = Path(str(item.path))
    tier_rank = next((rank for tier, rank in _TIER_ORDER.items() if _TESTS / tier in path.parents), len(_TIER_ORDER))
    return (0 if item.get_closest_marker("slow") else 1, tier_rank)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The sort is stable, so inside a rank the tests keep their collection
    # order. Every xdist worker must collect the same order, and it does.
    items.sort(key=_run_rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    # Returning None lets xdist's own hook read PYTEST_XDIST_AUTO_NUM_WORKERS.
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(_MIN_WORKERS, _WORKERS_PER_CORE * (os.cpu_count() or 1))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest exits 5 when it collects nothing; a run that tested nothing must not pass.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
