"""The values the media package hands back: what a file is, and the pictures made from it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

DEFAULT_MAX_PIXELS = 50_000_000
RENDITION_FORMATS = {
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "png": "image/png",
    "avif": "image/avif",
}


class Kind(StrEnum):
    IMAGE = "image"
    PDF = "pdf"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    OTHER = "other"


@dataclass(frozen=True)
class Preset:
    """A rendition: fit inside `max_side` x `max_side` (never enlarged), encoded as `format`."""

    name: str
    max_side: int
    format: str
    quality: int = 85

    def __post_init__(self) -> None:
        if self.format not in RENDITION_FORMATS:
            raise ValueError(f"Unknown rendition format {self.format!r}.")
        if not 16 <= self.max_side <= 8192:
            raise ValueError("max_side must be between 16 and 8192.")
        if not 1 <= self.quality <= 100:
            raise ValueError("quality must be between 1 and 100.")

    @property
    def content_type(self) -> str:
        return RENDITION_FORMATS[self.format]


# Preset names are unique per asset (they key the Rendition row and the storage object).
DEFAULT_PRESETS: tuple[Preset, ...] = (
    Preset(name="thumb-256", max_side=256, format="jpeg", quality=85),
    Preset(name="preview-1024", max_side=1024, format="jpeg", quality=85),
    Preset(name="preview-1024-webp", max_side=1024, format="webp", quality=80),
)


@dataclass(frozen=True)
class RenderedImage:
    preset: Preset
    width: int
    height: int
    data: bytes = field(repr=False)

    @property
    def format(self) -> str:
        return self.preset.format

    @property
    def content_type(self) -> str:
        return self.preset.content_type

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> io.BytesIO:
        """A readable handle, for storage APIs that want a file."""
        return io.BytesIO(self.data)


class Picture(Protocol):
    """Something a rendition can be made from, decoded only when asked.

    `width` and `height` are as a viewer sees the picture (orientation applied).
    """

    width: int
    height: int

    def load(self, max_side: int) -> Image.Image:
        """An upright RGB or RGBA image in sRGB whose longer side is at least
        min(max_side, native) and, where the format allows reduced decoding, not much more than
        twice max_side. Raises MediaRejected(CORRUPT_FILE) when the pixels cannot be decoded."""
        ...


@dataclass(frozen=True)
class Analysis:
    """What a file really is. `metadata` is JSON-serialisable, camelCase keys (clients read it).

    `picture` points back at `path`, so the file must still be there when rendering.
    """

    path: Path
    content_type: str
    kind: Kind
    metadata: dict[str, Any]
    picture: Picture | None = field(default=None, repr=False)
