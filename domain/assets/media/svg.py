"""SVG that passed the active-content scan: its size, from the root element's attributes.

No SVG rasteriser installs from PyPI without system libraries (cairo, librsvg), so an SVG has no
picture here; a browser draws it well enough from the original.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

HEAD_BYTES = 64 * 1024
_ROOT = re.compile(r"<(?:[\w.-]+:)?svg\b([^>]*)>", re.IGNORECASE | re.DOTALL)
_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(px)?\s*$")


def analyse_svg(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES).decode("utf-8", errors="replace")
    root = _ROOT.search(head)
    found: dict[str, Any] = {"format": "svg"}
    if root is None:
        return found
    attributes = dict(re.findall(r"([\w:-]+)\s*=\s*[\"']([^\"']*)[\"']", root.group(1)))
    width, height = _length(attributes.get("width")), _length(attributes.get("height"))
    box = attributes.get("viewBox", "").replace(",", " ").split()
    if (width is None or height is None) and len(box) == 4:
        with contextlib.suppress(ValueError):
            width, height = width or round(float(box[2])), height or round(float(box[3]))
    if width and height:
        found.update(width=width, height=height)
    return found


def _length(value: str | None) -> int | None:
    match = _LENGTH.match(value or "")
    return round(float(match.group(1))) if match else None
