"""Consoles for piped output: wide enough for tables unless COLUMNS sets another width."""

from __future__ import annotations

import pytest


def test_piped_console_is_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    from unicity_infra.terminal import PIPED_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)

    assert make_console(stderr=False).width == PIPED_WIDTH


def test_piped_console_honours_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from unicity_infra.terminal import make_console

    monkeypatch.setenv("COLUMNS", "100")

    assert make_console(stderr=False).width == 100
