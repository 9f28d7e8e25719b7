"""Renderer of the configuration templates kept in ``templates/``.

Placeholders read ``@{name}`` so that nginx's own ``$variables`` and TOML's
syntax need no escaping.
"""

from __future__ import annotations

import string
from pathlib import Path

__all__ = ["TEMPLATE_DIR", "render_template"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


class _ConfigTemplate(string.Template):
    delimiter = "@"


def render_template(template_name: str, /, **values: str) -> str:
    """Fill the file TEMPLATE_NAME of the template directory with VALUES.

    Raises KeyError naming a placeholder that VALUES does not provide.
    """
    text = (TEMPLATE_DIR / template_name).read_text()
    return _ConfigTemplate(text).substitute(values)
