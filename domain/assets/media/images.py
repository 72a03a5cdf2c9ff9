"""Raster images: the header's facts without decoding, and pixels decoded at reduced scale.

Pillow reads JPEG, PNG, GIF, WebP, TIFF, BMP and (since 11.2, with libavif in its wheels) AVIF;
pillow-heif adds HEIC/HEIF through libheif. Image.open() reads only the header, so the pixel
limit is enforced before a single pixel is decoded.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pillow_heif
from PIL import Image, ImageFile, JpegImagePlugin, TiffImagePlugin, UnidentifiedImageError

from domain.assets.media import colour, exif, tiff
from domain.assets.media.errors import MediaRejected, Verdict, corrupt
from domain.assets.media.renditions import fit

pillow_heif.register_heif_opener()

# libheif applies the container's rotation itself and resets the EXIF orientation to 1.
_SELF_ORIENTING = {"HEIF"}
# Several images in a TIFF are pages, and in a HEIC a burst or a collection: not an animation.
_ANIMATED_FORMATS = {"GIF", "PNG", "WEBP", "AVIF"}
# Decode (or reduce) to no less than twice the target, then finish with Lanczos: the result
# cannot be told from a full-size resize (Pillow's own `reducing_gap` reasoning).
REDUCING_GAP = 2.0
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error)
# Only the plugin for the sniffed type may parse the file: Pillow otherwise tries all of its
# plugins in turn, and the rarely used ones are where parser bugs live. MPO is how Pillow names
# a JPEG with a multi-picture index (many cameras write one): the same decoder, draft included.
PILLOW_FORMATS = {
    "image/jpeg": ("JPEG", "MPO"),
    "image/png": ("PNG",),
    "image/gif": ("GIF",),
    "image/webp": ("WEBP",),
    "image/tiff": ("TIFF",),
    "image/bmp": ("BMP",),
    "image/heic": ("HEIF",),
    "image/heif": ("HEIF",),
    "image/avif": ("AVIF",),
}
_FORMAT_NAMES = {"MPO": "jpeg", "HEIF": "heif"}


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise MediaRejected(
            Verdict.IMAGE_TOO_LARGE,
            f"{width}x{height} pixels is over the limit of {max_pixels} pixels.",
        )


@contextmanager
def open_image(
    path: Path, max_pixels: int, formats: tuple[str, ...] | None
) -> Iterator[ImageFile.ImageFile]:
    """Image.open (the header only) with the pixel limit checked before anything is decoded,
    and every way a file can be broken turned into a verdict."""
    try:
        with Image.open(path, formats=formats) as image:
            check_pixels(*image.size, max_pixels)
            yield image
    except Image.DecompressionBombError as error:
        # Pillow's own backstop (2 x Image.MAX_IMAGE_PIXELS) fired before our check could.
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{claimed.group(1)} pixels" if claimed else "The image"
        raise MediaRejected(
            Verdict.IMAGE_TOO_LARGE, f"{pixels} is over the limit of {max_pixels} pixels."
        ) from error
    except UnidentifiedImageError as error:
        # Pillow's message names the (temporary) path; it says nothing the user can use.
        raise corrupt("image", "the bytes are not an image Pillow can read") from error
    except DECODE_ERRORS as error:
        raise corrupt("image", error) from error


def analyse_image(
    path: Path, content_type: str, *, max_pixels: int, allow_gps: bool
) -> tuple[dict[str, Any], ImagePicture]:
    formats = PILLOW_FORMATS[content_type]
    with open_image(path, max_pixels, formats) as image:
        width, height = image.size
        image_format = image.format or ""
        frames = int(getattr(image, "n_frames", 1) or 1)
        orientation = 1 if image_format in _SELF_ORIENTING else exif.orientation(image)
        quarter_turn = orientation in (5, 6, 7, 8)
        shown = (height, width) if quarter_turn else (width, height)
        metadata: dict[str, Any] = {
            "format": _FORMAT_NAMES.get(image_format, image_format.lower()),
            "width": shown[0],
            "height": shown[1],
            "orientation": int(image.info.get("original_orientation") or orientation),
            "frameCount": frames,
            "animated": frames > 1 and image_format in _ANIMATED_FORMATS,
            **colour.describe(image),
        }
        if image.info.get("bit_depth"):
            metadata["bitDepth"] = int(image.info["bit_depth"])
        facts = exif.read(image, allow_gps=allow_gps)
        location = facts.pop("gps", None)
        if facts:
            metadata["exif"] = facts
        if location:
            metadata["location"] = location
    picture = ImagePicture(
        path=path,
        width=shown[0],
        height=shown[1],
        orientation=orientation,
        max_pixels=max_pixels,
        formats=formats,
    )
    return metadata, picture


@dataclass
class ImagePicture:
    path: Path
    width: int
    height: int
    orientation: int
    max_pixels: int
    formats: tuple[str, ...]

    def load(self, max_side: int) -> Image.Image:
        # The limit is checked again: the picture is decoded from the file as it is now.
        with open_image(self.path, self.max_pixels, self.formats) as image:
            icc = image.info.get("icc_profile")
            picture = _decode_reduced(image, self.path, max_side)
            picture = colour.to_srgb(picture, icc if isinstance(icc, bytes) else None)
            # Fit before the quarter turn: turning the final size moves 4x fewer pixels.
            picture = fit(picture, max_side)
            transpose = _TRANSPOSE.get(self.orientation)
            if transpose is not None:
                picture = picture.transpose(transpose)
            # Closing the file destroys its pixels; keep our own when nothing made new ones.
            return picture.copy() if picture is image else picture


def _decode_reduced(image: ImageFile.ImageFile, path: Path, max_side: int) -> Image.Image:
    factor = int(max(image.size) / (max_side * REDUCING_GAP))
    if isinstance(image, TiffImagePlugin.TiffImageFile) and factor >= 2:
        try:
            banded = tiff.decode_reduced(image, path, factor)
        except MediaRejected:
            banded = None  # decoding it whole below says whether it is really broken
        if banded is not None:
            return banded
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        # libjpeg scales while it decodes (1/2, 1/4, 1/8): far less work and memory.
        image.draft(None, _draft_size(image.size, max_side))
    image.load()
    factor = int(max(image.size) / (max_side * REDUCING_GAP))
    if factor < 2:
        return image
    return colour.reducible(image).reduce(factor)


def _draft_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The smallest size (same shape) whose longer side is still max_side."""
    scale = min(1.0, max_side / max(size))
    return max(1, int(size[0] * scale + 0.999)), max(1, int(size[1] * scale + 0.999))
