"""The edge's registrations: the rules for changing them and their file on disk.

``plan_registration`` and ``plan_removal`` are pure: they return the new set of registrations or
raise the error the API replies with. ``load_state`` and ``save_state`` are the thin file wrappers.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

from unicity_infra.edge.errors import ConflictError, InvalidFieldError, NotFoundError, StateFileError
from unicity_infra.edge.haproxy_config import (
    DEFAULT_API_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_HTTPS_PORT,
    Backend,
    dump_backends,
    parse_backends,
)

__all__ = [
    "STANDARD_EDGE_PORTS",
    "plan_registration",
    "plan_removal",
    "load_state",
    "save_state",
    "write_file_atomically",
]

logger = logging.getLogger(__name__)

# Ports an extra listener may never take, whatever ports this edge was started with.
STANDARD_EDGE_PORTS = frozenset({DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, DEFAULT_API_PORT})


def plan_registration(
    current: Mapping[str, Backend],
    backend: Backend,
    *,
    reserved_ports: Collection[int] = STANDARD_EDGE_PORTS,
) -> tuple[dict[str, Backend], bool]:
    """Return the registrations after adding or updating ``backend``, and whether it is new.

    Raises ConflictError when the domain belongs to another container, and InvalidFieldError
    when an extra listen port is reserved or taken by another domain. Another domain of the
    same container may repeat an extra port with the same target and mode: ssl-manager sends
    the same ``extra_ports`` for every alias, and the edge then opens that listener once.
    """
    existing = current.get(backend.domain)
    if existing is not None and existing.container != backend.container:
        raise ConflictError(backend.domain, existing.container, backend.container)

    for index, port in enumerate(backend.extra_ports):
        where = f"extra_ports[{index}].listen"
        if port.listen in reserved_ports:
            raise InvalidFieldError(
                where, f"listen port {port.listen} is used by the edge itself ({_describe(reserved_ports)}); pick another"
            )
        for other in current.values():
            if other.domain == backend.domain:
                continue
            for claimed in other.extra_ports:
                shared = other.container == backend.container and claimed == port
                if claimed.listen == port.listen and not shared:
                    raise InvalidFieldError(
                        where,
                        f"listen port {port.listen} is already taken by domain {other.domain!r} "
                        f"(container {other.container!r}); pick another port",
                    )

    planned = dict(current)
    planned[backend.domain] = backend
    return planned, existing is None


def plan_removal(current: Mapping[str, Backend], domain: str) -> tuple[dict[str, Backend], Backend]:
    """Return the registrations without ``domain`` and the removed one; raise NotFoundError if absent."""
    removed = current.get(domain)
    if removed is None:
        raise NotFoundError(f"no backend is registered for domain {domain!r}")

    planned = {name: backend for name, backend in current.items() if name != domain}
    return planned, removed


def _describe(ports: Collection[int]) -> str:
    return ", ".join(str(port) for port in sorted(ports))


def load_state(path: Path) -> dict[str, Backend]:
    """Read the saved registrations; a missing file means none. Raise StateFileError otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        logger.info("no state file at %s; starting without registrations", path)
        return {}
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror}; fix its permissions") from exc

    try:
        backends = parse_backends(text)
    except (ValueError, InvalidFieldError) as exc:
        raise StateFileError(
            f"state file {path} is invalid ({exc}); repair it, or move it away to start without registrations"
        ) from exc
    return {backend.domain: backend for backend in backends}


def save_state(path: Path, backends: Mapping[str, Backend]) -> None:
    """Write the registrations atomically: a crash leaves either the old file or the new one."""
    write_file_atomically(path, dump_backends(backends.values()))


def write_file_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a synced temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
