"""YAML text of exported documents: keys in insertion order, multi-line strings as literal blocks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

__all__ = ["dump_document", "dump_documents", "escape_dollars"]


class _ExportDumper(yaml.SafeDumper):
    """SafeDumper that writes scripts as ``|`` blocks, so they read as they run, and never uses anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ExportDumper.add_representer(str, _represent_str)


def dump_document(document: dict[str, Any], *, header: str = "") -> str:
    """Return DOCUMENT as YAML, after HEADER (comment lines, each starting with ``#``)."""
    text = yaml.dump(document, Dumper=_ExportDumper, sort_keys=False, width=120, allow_unicode=True)
    return header + text


def dump_documents(documents: Iterable[dict[str, Any]], *, header: str = "") -> str:
    """Return DOCUMENTS as one YAML stream, separated by ``---``."""
    parts = [yaml.dump(document, Dumper=_ExportDumper, sort_keys=False, width=120, allow_unicode=True)
             for document in documents]
    return header + "---\n" + "---\n".join(parts)


def escape_dollars(value: Any) -> Any:
    """Return VALUE with ``$`` doubled in every string value (mapping keys stay as they are).

    >>> escape_dollars({"A": "x=$1", "n": [2, "$HOME"]})
    {'A': 'x=$$1', 'n': [2, '$$HOME']}
    """
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: escape_dollars(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape_dollars(item) for item in value]
    return value
