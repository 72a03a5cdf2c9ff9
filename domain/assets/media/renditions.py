"""Renditions from presets: decode once, at reduced scale, for the largest preset; derive the
smaller ones from the larger result rather than from the source.

Renditions carry no metadata (no EXIF, no GPS, no ICC): they are sRGB, and a thumbnail must not
leak where a photo was taken.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from domain.assets.media.model import Picture, Preset, RenderedImage

# Lanczos with a reducing gap: a box reduction by an integer factor first, then Lanczos over
# the last stretch; indistinguishable from plain Lanczos at a fraction of the cost.
_RESAMPLE = Image.Resampling.LANCZOS
_REDUCING_GAP = 2.0
WEBP_METHOD = 4  # libwebp's balance of effort and size (0 fastest, 6 smallest)
AVIF_SPEED = 8


def render_picture(picture: Picture, presets: Sequence[Preset]) -> list[RenderedImage]:
    if not presets:
        return []
    base = picture.load(max(preset.max_side for preset in presets))
    made: dict[Preset, RenderedImage] = {}
    current = base
    for side in sorted({preset.max_side for preset in presets}, reverse=True):
        current = fit(current, side)
        for preset in presets:
            if preset.max_side == side:
                made[preset] = RenderedImage(
                    preset=preset,
                    width=current.width,
                    height=current.height,
                    data=encode(current, preset),
                )
    return [made[preset] for preset in presets]


def fit(image: Image.Image, max_side: int) -> Image.Image:
    """Fit inside max_side x max_side, keeping the shape; never enlarged."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, _RESAMPLE, reducing_gap=_REDUCING_GAP)


def encode(image: Image.Image, preset: Preset) -> bytes:
    buffer = io.BytesIO()
    if preset.format == "jpeg":
        _flatten(image).save(
            buffer, "JPEG", quality=preset.quality, optimize=True, progressive=True
        )
    elif preset.format == "webp":
        image.save(buffer, "WEBP", quality=preset.quality, method=WEBP_METHOD)
    elif preset.format == "avif":
        image.save(buffer, "AVIF", quality=preset.quality, speed=AVIF_SPEED)
    else:
        image.save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """JPEG has no transparency: composite on white, as a browser shows it on a page."""
    if image.mode != "RGBA":
        return image if image.mode == "RGB" else image.convert("RGB")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background
