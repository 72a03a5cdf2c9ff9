"""The few EXIF facts worth keeping, as plain JSON; never the raw block.

The raw block can hold anything (maker notes, thumbnails, serial numbers, GPS), so only named
fields are copied, and the position only when the caller allows it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from PIL import Image

ORIENTATION = 0x0112
_MAKE, _MODEL, _SOFTWARE, _DATETIME = 0x010F, 0x0110, 0x0131, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_EXPOSURE_TIME, _F_NUMBER, _ISO, _FOCAL_LENGTH, _LENS_MODEL = 0x829A, 0x829D, 0x8827, 0x920A, 0xA434
_COLOR_SPACE = 0xA001
MAX_TEXT = 128


def _exif(image: Image.Image) -> Image.Exif | None:
    # Pillow looks for a PNG's eXIf chunk after the pixel data by decoding all of it; an eXIf
    # there is rare, and a full decode in analysis (and again for renditions) is not.
    if image.format == "PNG" and "exif" not in image.info:
        return None
    try:
        return image.getexif()
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return None  # a broken EXIF block does not make a broken picture


def read(image: Image.Image, *, allow_gps: bool) -> dict[str, Any]:
    exif = _exif(image)
    if exif is None:
        return {}
    try:
        details = exif.get_ifd(_EXIF_IFD)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return {}
    found: dict[str, Any] = {
        "make": _text(exif.get(_MAKE)),
        "model": _text(exif.get(_MODEL)),
        "lens": _text(details.get(_LENS_MODEL)),
        "software": _text(exif.get(_SOFTWARE)),
        "takenAt": _taken_at(details.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME),
                             details.get(_OFFSET_TIME_ORIGINAL)),
        "exposureTime": _number(details.get(_EXPOSURE_TIME)),
        "fNumber": _number(details.get(_F_NUMBER)),
        "iso": _number(details.get(_ISO)),
        "focalLength": _number(details.get(_FOCAL_LENGTH)),
        "colorSpace": {1: "sRGB", 2: "Adobe RGB", 0xFFFF: "uncalibrated"}.get(
            details.get(_COLOR_SPACE, 0)
        ),
    }  # fmt: skip
    if allow_gps:
        found["gps"] = _gps(exif)
    return {key: value for key, value in found.items() if value is not None}


def orientation(image: Image.Image) -> int:
    exif = _exif(image)
    value = exif.get(ORIENTATION, 1) if exif is not None else 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    return cleaned[:MAX_TEXT] or None


def _number(value: Any) -> float | None:
    if isinstance(value, tuple) and value:
        value = value[0]  # ISO speed may be a list
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return round(number, 6) if math.isfinite(number) else None


def _taken_at(value: Any, offset: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00" and other placeholders
    offset_text = _text(offset)
    zone = offset_text if offset_text and len(offset_text) == 6 and offset_text[3] == ":" else ""
    return moment.isoformat() + zone


def _gps(exif: Image.Exif) -> dict[str, float] | None:
    try:
        gps = exif.get_ifd(_GPS_IFD)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return None
    latitude = _degrees(gps.get(2), gps.get(1), "S")
    longitude = _degrees(gps.get(4), gps.get(3), "W")
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    position = {"latitude": latitude, "longitude": longitude}
    altitude = _number(gps.get(6))
    if altitude is not None:
        position["altitude"] = -altitude if gps.get(5) in (1, b"\x01") else altitude
    return position


def _degrees(value: Any, reference: Any, negative: str) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    parts = [_number(part) for part in value]
    if any(part is None for part in parts):
        return None
    degrees, minutes, seconds = (part or 0.0 for part in parts)
    result = degrees + minutes / 60 + seconds / 3600
    sign = -1 if _text(reference) == negative else 1
    return round(sign * result, 7)
