"""Media analysis and renditions for assets: what a file really is, and pictures made from it.

    analysis = analyse(path, declared_type="image/jpeg", filename="IMG_1.jpg",
                       max_pixels=50_000_000, allow_gps=False)
    renditions = render(analysis, DEFAULT_PRESETS)

Both raise MediaRejected(code, message) for a verdict (see Verdict). Work from a local file:
nothing here reads a whole file into memory, and pixels are decoded at reduced scale, once for
all presets. analyse() decodes no image pixels; render() does, so a truncated image is found
there (CORRUPT_FILE). Use process() to do both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from domain.assets.media.analysis import PARSER_ERRORS, analyse
from domain.assets.media.errors import MediaRejected, Verdict, corrupt
from domain.assets.media.model import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PRESETS,
    Analysis,
    Kind,
    Picture,
    Preset,
    RenderedImage,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PRESETS",
    "Analysis",
    "Kind",
    "MediaRejected",
    "Picture",
    "Preset",
    "RenderedImage",
    "Verdict",
    "analyse",
    "process",
    "render",
]

logger = logging.getLogger(__name__)


def render(
    source: Analysis | Path,
    presets: Sequence[Preset] = DEFAULT_PRESETS,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[RenderedImage]:
    """One rendition per preset, in the order given; [] when the file has no picture
    (audio without cover art, text, an SVG, an encrypted PDF...)."""
    from domain.assets.media.renditions import render_picture

    analysis = source if isinstance(source, Analysis) else analyse(source, max_pixels=max_pixels)
    if analysis.picture is None:
        return []
    try:
        return render_picture(analysis.picture, presets)
    except MediaRejected:
        raise
    except PARSER_ERRORS as error:
        logger.warning("rendering failed on %s", analysis.content_type, exc_info=True)
        raise corrupt("file", error) from error


def process(
    path: Path,
    *,
    declared_type: str = "",
    filename: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_gps: bool = False,
    presets: Sequence[Preset] = DEFAULT_PRESETS,
) -> tuple[Analysis, list[RenderedImage]]:
    """analyse() then render(): every verdict, including a truncated image's, in one call."""
    analysis = analyse(
        path,
        declared_type=declared_type,
        filename=filename,
        max_pixels=max_pixels,
        allow_gps=allow_gps,
    )
    return analysis, render(analysis, presets)
