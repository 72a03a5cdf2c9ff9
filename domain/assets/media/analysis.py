"""analyse(): the verdicts in order (empty, active, mismatch, unsupported), then the kind's facts.

The kind modules are imported when a file of that kind arrives: PyAV and PDFium are large, and
a process that only ever sees images (or only imports this package) should not load them.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

from domain.assets.media import active, claims
from domain.assets.media.errors import MediaRejected, Verdict, corrupt
from domain.assets.media.model import DEFAULT_MAX_PIXELS, Analysis, Kind
from domain.assets.media.sniff import sniff_file

logger = logging.getLogger(__name__)

RASTER_TYPES = {
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff", "image/bmp",
    "image/heic", "image/heif", "image/avif",
}  # fmt: skip
TEXT_TYPES = {
    "text/plain", "text/csv", "text/tab-separated-values", "application/json",
    "application/x-ndjson", "text/markdown", "application/xml",
}  # fmt: skip
_NOT_DECODED = {"audio/midi"}
_AUDIO_ONLY = {
    "video/mp4": "audio/mp4",
    "video/3gpp": "audio/3gpp",
    "video/webm": "audio/webm",
    "video/x-matroska": "audio/x-matroska",
    "video/x-ms-asf": "audio/x-ms-wma",
}
_WITH_VIDEO = {"audio/ogg": "video/ogg", "audio/mp4": "video/mp4", "audio/webm": "video/webm"}
# What hostile bytes make parsers raise, beyond their own error types: all mean "broken file".
PARSER_ERRORS = (
    OSError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
    OverflowError, RecursionError, struct.error,
)  # fmt: skip


def analyse(
    path: Path,
    *,
    declared_type: str = "",
    filename: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_gps: bool = False,
) -> Analysis:
    """What the file at `path` really is, or MediaRejected with a Verdict.

    `declared_type` and `filename` are what the uploader said; either may be empty. GPS
    positions (photo EXIF, phone video tags) are kept only with `allow_gps`. Images over
    `max_pixels` are refused from their header, before any decoding.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise MediaRejected(Verdict.EMPTY_FILE, "The file is empty.")
    sniffed = sniff_file(path)
    claimed = claims.collect(declared_type, filename)
    active.check(path, sniffed, claimed)
    reconciled = claims.reconcile(sniffed, claimed)
    try:
        return _by_kind(path, reconciled, claimed, max_pixels=max_pixels, allow_gps=allow_gps)
    except MediaRejected:
        raise
    except PARSER_ERRORS as error:
        logger.warning("media analysis failed on %s", reconciled.content_type, exc_info=True)
        raise corrupt("file", error) from error


def _by_kind(
    path: Path,
    reconciled: claims.Reconciled,
    claimed: list[claims.Claim],
    *,
    max_pixels: int,
    allow_gps: bool,
) -> Analysis:
    content_type = reconciled.content_type
    if content_type in RASTER_TYPES:
        from domain.assets.media.images import analyse_image

        metadata, picture = analyse_image(
            path, content_type, max_pixels=max_pixels, allow_gps=allow_gps
        )
        return Analysis(path, content_type, Kind.IMAGE, metadata, picture)
    if content_type == "image/svg+xml":
        from domain.assets.media.svg import analyse_svg

        return Analysis(path, content_type, Kind.IMAGE, analyse_svg(path))
    if content_type == "application/pdf":
        from domain.assets.media.pdf import analyse_pdf

        metadata, pdf_page = analyse_pdf(path)
        return Analysis(path, content_type, Kind.PDF, metadata, pdf_page)
    if content_type in TEXT_TYPES:
        from domain.assets.media.text import analyse_text

        json_claimed = any(c.content_type in ("application/json", "text/json") for c in claimed)
        content_type, metadata = analyse_text(path, content_type, json_claimed=json_claimed)
        return Analysis(path, content_type, Kind.TEXT, metadata)
    if content_type.startswith(("audio/", "video/")) and content_type not in _NOT_DECODED:
        return _audio_or_video(path, reconciled, max_pixels=max_pixels, allow_gps=allow_gps)
    # Recognised but not looked into (PSD, JPEG XL, archives, office files, unknown bytes).
    kind = Kind.IMAGE if content_type.startswith("image/") else Kind.OTHER
    kind = Kind.AUDIO if content_type.startswith("audio/") else kind
    return Analysis(path, content_type, kind, {})


def _audio_or_video(
    path: Path, reconciled: claims.Reconciled, *, max_pixels: int, allow_gps: bool
) -> Analysis:
    from domain.assets.media import audio, containers, video

    content_type = reconciled.content_type
    try:
        with containers.open_container(path) as container:
            if video.real_video_streams(container):
                metadata, frame = video.analyse_video(
                    path, container, max_pixels=max_pixels, allow_gps=allow_gps
                )
                content_type = _WITH_VIDEO.get(content_type, content_type)
                return Analysis(path, content_type, Kind.VIDEO, metadata, frame)
            if container.streams.audio:
                metadata, cover = audio.analyse_audio(container, max_pixels=max_pixels)
                content_type = _AUDIO_ONLY.get(content_type, content_type)
                return Analysis(path, content_type, Kind.AUDIO, metadata, cover)
    except MediaRejected as rejected:
        if reconciled.needs_probe and rejected.code == Verdict.CORRUPT_FILE:
            raise _unrecognised(content_type) from rejected
        raise
    if reconciled.needs_probe:
        raise _unrecognised(content_type)
    raise corrupt("media file", "it holds no audio or video stream")


def _unrecognised(content_type: str) -> MediaRejected:
    return MediaRejected(
        Verdict.CONTENT_TYPE_MISMATCH,
        f"The file claims to be {content_type}, but no audio or video could be read from it.",
    )
