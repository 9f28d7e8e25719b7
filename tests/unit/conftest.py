"""Fixtures shared by the unit tests that drive the real CLI with Docker replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from unicity_infra import cli as cli_module
from unicity_infra.commands import up as up_module
from unicity_infra.commands.up import UpSettings


class FakeResult:
    """What up_cli prints after bring_up; only the fields it reads."""

    changed = False

    class endpoints:
        @staticmethod
        def to_json() -> dict[str, object]:
            return {}


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, object]:
    """Run the CLI in an empty directory with Docker replaced; collect the settings 'up' would use."""
    captured: dict[str, object] = {}

    def engine_not_contacted(self):
        captured["engine_created"] = True
        return object()

    def record_bring_up(engine, settings: UpSettings, *, stack: str, progress):
        captured["settings"] = settings
        captured["stack"] = stack
        return FakeResult()

    monkeypatch.setattr(cli_module.Context, "engine", engine_not_contacted)
    monkeypatch.setattr(up_module, "bring_up", record_bring_up)
    monkeypatch.chdir(tmp_path)
    for variable in ("UNICITY_INFRA_CONFIG", "UNICITY_INFRA_STACK", "UNICITY_INFRA_IMAGE_OVERRIDES"):
        monkeypatch.delenv(variable, raising=False)
    return captured
