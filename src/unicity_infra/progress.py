"""The progress seam between library code and the terminal.

Library functions that wait or build take a ``progress`` argument and report
through it; they never print. ``cli.py`` passes a terminal implementation,
tests and ``--json`` runs pass :data:`SILENT` or a recording one.
"""

from __future__ import annotations

import logging
from typing import Protocol

__all__ = ["Progress", "LoggingProgress", "SILENT"]

logger = logging.getLogger(__name__)


class Progress(Protocol):
    def stage(self, title: str) -> None:
        """Start a titled stage of a long command, e.g. ``Building base image``."""

    def action(self, text: str) -> None:
        """Show an action about to happen, e.g. the Docker call or command being run."""

    def wait(self, text: str, elapsed_s: float, timeout_s: float | None = None) -> None:
        """Report a wait in progress; called repeatedly, about once a second."""

    def note(self, text: str) -> None:
        """Show a one-line remark, e.g. which image or CA is used."""


class LoggingProgress:
    """Progress that only logs; the default for library callers."""

    def stage(self, title: str) -> None:
        logger.info("stage: %s", title)

    def action(self, text: str) -> None:
        logger.info("action: %s", text)

    def wait(self, text: str, elapsed_s: float, timeout_s: float | None = None) -> None:
        logger.debug("waiting: %s elapsed_s=%.0f timeout_s=%s", text, elapsed_s, timeout_s)

    def note(self, text: str) -> None:
        logger.info("note: %s", text)


SILENT: Progress = LoggingProgress()
