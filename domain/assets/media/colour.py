"""Colour: describe the source's colour space, and bring pixels to 8-bit sRGB for renditions.

Conversions run on the reduced picture, never the full one: a CMYK or 16-bit image converted
at full size would need a second full-size buffer.
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

from PIL import Image, ImageCms

_MODEL_BY_MODE = {
    "1": "bilevel", "L": "gray", "LA": "gray", "La": "gray", "I": "gray", "F": "gray",
    "I;16": "gray", "I;16B": "gray", "I;16L": "gray", "I;16N": "gray", "P": "palette",
    "PA": "palette", "RGB": "RGB", "RGBA": "RGB", "RGBa": "RGB", "RGBX": "RGB", "CMYK": "CMYK",
    "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV",
}  # fmt: skip
_MODEL_BY_ICC_SPACE = {"RGB": "RGB", "CMYK": "CMYK", "GRAY": "gray", "LAB": "Lab"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _profile(icc: bytes | None) -> ImageCms.ImageCmsProfile | None:
    if not icc:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def describe(image: Image.Image) -> dict[str, Any]:
    icc = image.info.get("icc_profile")
    profile = _profile(icc if isinstance(icc, bytes) else None)
    found: dict[str, Any] = {
        "mode": image.mode,
        "colorModel": _MODEL_BY_MODE.get(image.mode, image.mode),
        "hasAlpha": image.mode in _ALPHA_MODES or "transparency" in image.info,
    }
    if profile is not None:
        description = (profile.profile.profile_description or "").strip()
        found["iccProfile"] = description[:128] or "unnamed"
        space = (profile.profile.xcolor_space or "").strip().upper()
        found["colorModel"] = _MODEL_BY_ICC_SPACE.get(space, found["colorModel"])
    return found


def reducible(image: Image.Image) -> Image.Image:
    """The image in a mode Image.reduce() accepts (it refuses 1, P and 16-bit modes)."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if _has_alpha(image) else "RGB")
    if image.mode.startswith("I;16"):
        # "I;16" to "L" clips everything over 255 to white; widen first, scale later.
        return image.convert("I").point(lambda value: value * (1 / 257))
    return image


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """8-bit RGB, or RGBA when the picture has transparency, in sRGB."""
    image = _eight_bit(reducible(image))
    out_mode = "RGBA" if _has_alpha(image) else "RGB"
    profile = _profile(icc)
    if profile is not None and "srgb" not in (profile.profile.profile_description or "").lower():
        try:
            transform = ImageCms.buildTransform(profile, _srgb(), image.mode, out_mode)
            converted = ImageCms.applyTransform(image, transform)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a profile that does not fit the pixels: plain conversion below
    return image if image.mode == out_mode else image.convert(out_mode)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _eight_bit(image: Image.Image) -> Image.Image:
    if image.mode not in ("I", "F"):
        return image
    # Deep integer or float samples: stretch what is there to 0..255.
    low, high = image.getextrema()
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return image.convert("L")
    if low >= 0 and high <= 255:
        return image.convert("L")  # already 8-bit values (a 16-bit source scaled in reducible)
    scale = 255 / (high - low) if high > low else 1.0
    return image.point(lambda value: (value - low) * scale).convert("L")
