"""ServicePlan: what the supervisor needs to know to run one service behind nginx."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from unicity_infra.container.supervisor import ReadinessProbe

__all__ = ["ConfigFile", "ReadinessProbe", "ServicePlan", "toml_string"]

@dataclass(frozen=True)
class ConfigFile:
    """A configuration file the supervisor writes before the service starts."""

    path: Path
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class ServicePlan:
    """How to run one service: its command, identity, files and readiness probe.

    ``uid``/``gid`` of None mean "run as the supervisor's own user".
    """

    name: str
    command: tuple[str, ...]
    upstream_port: int
    readiness_probe: ReadinessProbe
    uid: int | None = None
    gid: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    config_files: tuple[ConfigFile, ...] = ()
    data_dirs: tuple[Path, ...] = ()
    cwd: Path | None = None


def toml_string(value: str) -> str:
    """Quote VALUE as a TOML basic string.

    >>> toml_string('say "hi"\\n')
    '"say \\\\"hi\\\\"\\\\n"'
    """
    escaped = []
    for char in value:
        if char == "\\":
            escaped.append("\\\\")
        elif char == '"':
            escaped.append('\\"')
        elif char == "\n":
            escaped.append("\\n")
        elif char == "\t":
            escaped.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'
