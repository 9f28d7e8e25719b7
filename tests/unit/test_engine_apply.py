"""Idempotence: which existing containers apply_plan leaves alone."""

from __future__ import annotations

import pytest

from unicity_infra.engine.apply import is_unchanged
from unicity_infra.engine.docker import ContainerInfo
from unicity_infra.stack.spec import LABEL_SPEC_HASH, Condition


def _info(*, digest: str = "d1", image: str = "sha256:aa", state: str = "running",
          health: str | None = "healthy", exit_code: int = 0) -> ContainerInfo:
    return ContainerInfo(name="c", service="relay", stack="s", image=image, state=state, health=health,
                         labels={LABEL_SPEC_HASH: digest}, exit_code=exit_code)


@pytest.mark.parametrize(
    ("current", "condition", "expected"),
    [
        (_info(), Condition.HEALTHY, True),
        (_info(health=None), Condition.HEALTHY, True),
        (_info(health="starting"), Condition.HEALTHY, False),
        (_info(health="unhealthy"), Condition.HEALTHY, False),
        (_info(digest="d2"), Condition.HEALTHY, False),
        (_info(image="sha256:bb"), Condition.HEALTHY, False),
        (_info(state="exited", exit_code=0), Condition.HEALTHY, False),
        (_info(state="exited", exit_code=0), Condition.COMPLETED, True),
        (_info(state="exited", exit_code=1), Condition.COMPLETED, False),
        (_info(health="starting"), Condition.STARTED, True),
        (None, Condition.HEALTHY, False),
    ],
)
def test_is_unchanged_cases(current: ContainerInfo | None, condition: Condition, expected: bool) -> None:
    assert is_unchanged(current, digest="d1", image_id="sha256:aa", condition=condition) is expected
