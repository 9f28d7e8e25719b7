"""``python -m unicity_infra`` runs the same CLI as the console script, for environments without it on PATH."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_runs_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "unicity_infra", "--version"], capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "unicity-infra, version 0.1.0"


def test_python_m_bad_command_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "unicity_infra", "no-such-command"], capture_output=True,
                            text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr
