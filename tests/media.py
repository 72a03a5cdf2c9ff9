"""Files the tests make themselves: real images, and files that only pretend to be."""

from __future__ import annotations

import io

from PIL import Image


def jpeg(width: int = 640, height: int = 480, *, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), (40, 120, 200))
    for x in range(0, width, 16):
        for y in range(0, height, 16):
            image.putpixel((x, y), (255, 255, 0))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def png(width: int = 300, height: int = 200, mode: str = "RGBA") -> bytes:
    image = Image.new(mode, (width, height), (10, 200, 90, 128) if mode == "RGBA" else 7)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    """A file whose header is intact and whose pixel data stops halfway."""
    return data[: len(data) // 2]


HTML_POSING_AS_PNG = b"<!DOCTYPE html><html><script>alert(1)</script></html>" + b" " * 200
