"""Where the tool keeps files on the host, outside any clone."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["state_dir"]


def state_dir() -> Path:
    """Return ``$XDG_STATE_HOME/unicity-infra`` (default ``~/.local/state/unicity-infra``)."""
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "unicity-infra"
