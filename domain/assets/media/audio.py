"""Audio: duration, codec, bitrate, tags, and the embedded cover art as its picture.

Tags come from FFmpeg (through PyAV), which already reads ID3v1/v2, Vorbis comments, MP4 atoms,
RIFF INFO and APE tags into one dictionary: one library for probing, decoding and tags.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import av
import av.container
from PIL import Image

from domain.assets.media import colour, containers, images
from domain.assets.media.errors import MediaRejected, corrupt

MAX_COVER_BYTES = 16 * 1024 * 1024
# Decoding a few packets proves the codec reads the stream; a header alone can lie.
CHECK_PACKETS = 64
_COVER_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP")


def analyse_audio(
    container: av.container.InputContainer, *, max_pixels: int
) -> tuple[dict[str, Any], CoverPicture | None]:
    stream = container.streams.audio[0]
    codec = stream.codec_context
    # The cover comes first: FFmpeg queues attached pictures ahead of every other packet.
    cover = _cover(container, max_pixels)
    _check_decodes(container, stream)
    metadata: dict[str, Any] = {
        "container": container.format.name.split(",")[0],
        "duration": containers.duration_seconds(container, stream),
        "codec": containers.codec_name(stream),
        "profile": stream.profile,
        "bitRate": codec.bit_rate or container.bit_rate or None,
        "sampleRate": codec.sample_rate or None,
        "channels": codec.channels or None,
        "channelLayout": codec.layout.name if codec.layout else None,
    }
    found = containers.tags(container, stream)
    if found:
        metadata["tags"] = found
    metadata["hasCover"] = cover is not None
    return {key: value for key, value in metadata.items() if value is not None}, cover


def _check_decodes(container: av.container.InputContainer, stream: Any) -> None:
    try:
        for count, packet in enumerate(container.demux(stream)):
            if packet.size and packet.decode():
                break
            if count >= CHECK_PACKETS:
                raise corrupt("audio", "no audio could be decoded")
        else:
            raise corrupt("audio", "the file holds no audio")
    except (av.FFmpegError, ValueError) as error:
        raise corrupt("audio", error) from error


def _cover(container: av.container.InputContainer, max_pixels: int) -> CoverPicture | None:
    attached = av.stream.Disposition.attached_pic
    for stream in container.streams.video:
        if not stream.disposition & attached:
            continue
        try:
            packet = next(iter(container.demux(stream)), None)
        except (av.FFmpegError, ValueError):
            return None  # a broken cover does not make broken audio
        if packet is None or not packet.size or packet.size > MAX_COVER_BYTES:
            return None
        data = bytes(packet)
        try:
            with Image.open(io.BytesIO(data), formats=_COVER_FORMATS) as image:
                images.check_pixels(*image.size, max_pixels)
                return CoverPicture(data=data, width=image.width, height=image.height)
        except (MediaRejected, *images.DECODE_ERRORS, Image.DecompressionBombError):
            return None
    return None


@dataclass
class CoverPicture:
    data: bytes
    width: int
    height: int

    def load(self, max_side: int) -> Image.Image:
        try:
            with Image.open(io.BytesIO(self.data), formats=_COVER_FORMATS) as image:
                image.draft(None, (max_side, max_side))
                image.load()
                icc = image.info.get("icc_profile")
                picture = colour.to_srgb(image, icc if isinstance(icc, bytes) else None)
                return picture.copy() if picture is image else picture
        except images.DECODE_ERRORS as error:
            raise corrupt("cover art", error) from error
