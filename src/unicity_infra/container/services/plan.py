"""ServicePlan: what the supervisor needs to know to run one service behind nginx."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unicity_infra.container.supervisor import ProcessStatus, ReadinessProbe, StdoutWatcher

__all__ = ["ConfigFile", "PublicDocument", "ReadinessProbe", "ServicePlan", "toml_string"]

@dataclass(frozen=True)
class ConfigFile:
    """A configuration file the supervisor writes before the service starts."""

    path: Path
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class PublicDocument:
    """A JSON document the status server serves to clients, rendered from the service's live status."""

    path: str
    render: Callable[[ProcessStatus], dict[str, Any]]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServicePlan:
    """How to run one service: its command, identity, files and readiness probe.

    ``uid``/``gid`` of None mean "run as the supervisor's own user", and an
    ``upstream_port`` of None a service that listens on no port.
    """

    name: str
    command: tuple[str, ...]
    upstream_port: int | None
    readiness_probe: ReadinessProbe
    uid: int | None = None
    gid: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    config_files: tuple[ConfigFile, ...] = ()
    data_dirs: tuple[Path, ...] = ()
    cwd: Path | None = None
    # nginx location blocks serving the service; None proxies every path to upstream_port.
    nginx_locations: str | None = None
    # Called once after the data directories exist, before the first start; returns
    # variables added to the service's environment. May raise SupervisorError.
    prepare_env: Callable[[], Mapping[str, str]] | None = None
    stdout_watcher: StdoutWatcher | None = None
    public_documents: tuple[PublicDocument, ...] = ()
    # The HEALTHCHECK's probe, run in a process of its own; None uses readiness_probe.
    health_probe: ReadinessProbe | None = None


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
