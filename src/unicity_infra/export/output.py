"""Export destinations: checked before anything is rendered, written atomically afterwards."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from unicity_infra.errors import SettingsError

__all__ = ["Destination", "parse_destination", "write_destination"]

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Destination:
    """Standard output (``path`` None), one file, or a directory of files."""

    path: Path | None = None
    is_directory: bool = False


def parse_destination(value: str, *, option: str = "--output", allow_directory: bool = False) -> Destination:
    """Return the destination VALUE names; ``-`` is standard output.

    With ALLOW_DIRECTORY, an existing directory, or a path that ends in ``/``
    or lacks a .yaml/.yml suffix, is a directory (created if missing).
    Raises SettingsError when the place cannot be written.
    """
    if value == "-":
        return Destination()
    path = Path(value).expanduser()
    as_directory = allow_directory and (path.is_dir() or value.endswith("/") or path.suffix not in YAML_SUFFIXES)

    if as_directory:
        if path.exists() and not path.is_dir():
            raise SettingsError(option, value, "it is a file; give a directory or a .yaml file name")
        _check_writable_directory(path if path.exists() else path.parent, option=option, value=value)
        return Destination(path=path, is_directory=True)
    if path.is_dir():
        raise SettingsError(option, value, "it is a directory; give a file name such as compose.yaml")
    _check_writable_directory(path.parent, option=option, value=value)
    if path.exists() and not os.access(path, os.W_OK):
        raise SettingsError(option, value, "the file exists and is not writable; choose another file")
    return Destination(path=path)


def _check_writable_directory(directory: Path, *, option: str, value: str) -> None:
    directory = directory if str(directory) else Path(".")
    if not directory.is_dir():
        raise SettingsError(option, value, f"directory {str(directory)!r} does not exist; create it first")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise SettingsError(option, value, f"directory {str(directory)!r} is not writable; choose another place")


def write_destination(destination: Destination, files: dict[str, str]) -> list[Path]:
    """Write FILES (name → text) to DESTINATION and return the paths written.

    A file destination takes the single text; a directory gets one file per name.
    Each file is replaced atomically, so a reader never sees half of it.
    """
    assert destination.path is not None, "standard output is written by the caller"
    if not destination.is_directory:
        (text,) = files.values()
        _write_atomically(destination.path, text)
        return [destination.path]

    destination.path.mkdir(exist_ok=True)
    written = []
    for name, text in files.items():
        _write_atomically(destination.path / name, text)
        written.append(destination.path / name)
    return written


def _write_atomically(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
