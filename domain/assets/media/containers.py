"""Opening audio and video containers with PyAV, and the facts both kinds share.

PyAV's wheels bundle FFmpeg, so every common container and codec is read without system
packages. Opening reads the header and index only; nothing is decoded until asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import av.container

from domain.assets.media.errors import MediaRejected, corrupt

# Tags worth showing, lower-cased (FFmpeg keeps Vorbis comments' case; ID3 frames become these).
TAGS = (
    "title", "artist", "album", "album_artist", "composer", "genre", "date", "track", "disc",
    "comment", "copyright", "publisher", "language", "encoded_by",
)  # fmt: skip
_LOCATION_TAGS = ("location", "com.apple.quicktime.location.iso6709", "location-eng")
_ISO6709 = re.compile(r"([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")
MAX_TAG_CHARS = 500


@contextmanager
def open_container(path: Path) -> Iterator[av.container.InputContainer]:
    try:
        with av.open(str(path), mode="r", metadata_errors="replace") as container:
            yield container
    except MediaRejected:
        raise
    except av.FFmpegError as error:
        # strerror, not str(): the latter names the (temporary) path.
        raise corrupt("media file", error.strerror or type(error).__name__) from error
    except (OSError, ValueError, UnicodeDecodeError, IndexError) as error:
        raise corrupt("media file", error) from error


def duration_seconds(container: av.container.InputContainer, stream: Any | None) -> float | None:
    if stream is not None and stream.duration and stream.time_base:
        return round(float(stream.duration * stream.time_base), 3)
    if container.duration:
        return round(container.duration / av.time_base, 3)
    return None


def codec_name(stream: Any) -> str:
    """The format's name ("mp3"), not the decoder's ("mp3float")."""
    codec = stream.codec_context.codec
    return str(getattr(codec, "canonical_name", None) or codec.name)


def tags(container: av.container.InputContainer, *streams: Any) -> dict[str, str]:
    merged: dict[str, str] = {}
    for source in (*streams, container):
        for key, value in (source.metadata or {}).items():
            name = str(key).lower()
            if name in TAGS and name not in merged and str(value).strip() not in ("", "und"):
                merged[name] = str(value).strip()[:MAX_TAG_CHARS]
    return merged


def created_at(container: av.container.InputContainer) -> str | None:
    value = (container.metadata or {}).get("creation_time")
    return str(value)[:40] if value else None


def location(container: av.container.InputContainer) -> dict[str, float] | None:
    """A recording place (ISO 6709, as phones write it); only asked for when GPS is allowed."""
    metadata = {str(key).lower(): str(value) for key, value in (container.metadata or {}).items()}
    for key in _LOCATION_TAGS:
        match = _ISO6709.match(metadata.get(key, "").strip())
        if match:
            latitude, longitude = float(match.group(1)), float(match.group(2))
            if abs(latitude) <= 90 and abs(longitude) <= 180:
                place = {"latitude": latitude, "longitude": longitude}
                if match.group(3):
                    place["altitude"] = float(match.group(3))
                return place
    return None
