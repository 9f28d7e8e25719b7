"""Run the vitest global setup's own node --test suite against the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.standins import build_aggregator_standins

pytestmark = pytest.mark.docker

SUITE = Path(__file__).resolve().parents[2] / "integrations" / "vitest"


def test_vitest_global_setup_node_suite(relay_image: str) -> None:
    node = shutil.which("node")
    assert node, "node is not installed; the vitest global setup is tested with Node's own test runner"
    images = build_aggregator_standins()
    overrides = " ".join(f"{key}={images[key]}" for key in ("bft-core", "mongo", "aggregator-go", "curl"))

    result = subprocess.run([node, "--test", str(SUITE)], capture_output=True, text=True, timeout=600, check=False,
                            env={**os.environ, "UNICITY_INFRA_IMAGE_OVERRIDES": overrides})

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    assert "# pass 0" not in result.stdout
    assert "# skipped 0" in result.stdout
