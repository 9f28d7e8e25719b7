"""Terminal output for the CLI: the Progress implementation and the console setup.

On a TTY stages are titled, Docker actions are echoed and waits show an animated
status line. Without a TTY, or with NO_COLOR set, the same lines are printed plain
and waits are reported every 10 seconds. ``--json`` runs use no terminal progress.
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.status import Status

__all__ = ["TerminalProgress", "make_console", "is_interactive"]

_PLAIN_WAIT_EVERY_S = 10.0


def is_interactive(stream: object = sys.stderr) -> bool:
    """Return whether STREAM is a terminal and colour is not disabled by NO_COLOR."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


# Width of tables written to a pipe or a file, wide enough for status's six columns.
PIPED_WIDTH = 200


def make_console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    interactive = is_interactive(stream)
    return Console(
        file=stream,
        no_color=not interactive,
        highlight=False,
        force_terminal=interactive,
        soft_wrap=True,
        # Piped output has no terminal width; rich would fold tables at 80 columns. COLUMNS still wins.
        width=None if interactive or os.environ.get("COLUMNS") else PIPED_WIDTH,
    )


class TerminalProgress:
    """Progress shown on stderr: stage titles, echoed actions, waits with elapsed time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.animate = console.is_terminal and not console.no_color
        self._status: Status | None = None
        self._last_plain_wait: dict[str, float] = {}

    def stage(self, title: str) -> None:
        self._stop_status()
        self.console.print(f"[bold]==> {title}[/bold]" if self.animate else f"==> {title}")

    def action(self, text: str) -> None:
        self._stop_status()
        self.console.print(f"[dim]  $ {text}[/dim]" if self.animate else f"  $ {text}", markup=self.animate)

    def note(self, text: str) -> None:
        self._stop_status()
        self.console.print(f"  {text}", markup=False)

    def wait(self, text: str, elapsed_s: float, timeout_s: float | None = None) -> None:
        limit = f" of {timeout_s:.0f}s" if timeout_s else ""
        line = f"waiting for {text} ({elapsed_s:.0f}s{limit})"
        if self.animate:
            if self._status is None:
                self._status = self.console.status(line)
                self._status.start()
            else:
                self._status.update(line)
            return
        key = text.split(":", 1)[0]
        last = self._last_plain_wait.get(key)
        if last is None or elapsed_s - last >= _PLAIN_WAIT_EVERY_S or elapsed_s < last:
            self._last_plain_wait[key] = elapsed_s
            self.console.print(f"  {line}", markup=False)

    def close(self) -> None:
        self._stop_status()

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
