"""Video: duration, dimensions, codecs, frame rate, and a poster frame found by seeking.

The poster is decoded from the nearest keyframe before its time, never from the start, so a
two-hour film costs what a two-second clip does. Analysis decodes one frame as well: it proves
the stream decodes and gives the display rotation, which sits in frame side data.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
from PIL import Image

from domain.assets.media import containers
from domain.assets.media.errors import corrupt
from domain.assets.media.images import REDUCING_GAP, check_pixels

# After a seek, decode at most this many frames looking for the poster's time.
MAX_FRAMES_AFTER_SEEK = 300
# Display-matrix rotation is counter-clockwise, in degrees, from -180 to 180.
_ROTATE = {
    90: Image.Transpose.ROTATE_90,
    -90: Image.Transpose.ROTATE_270,
    270: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    -180: Image.Transpose.ROTATE_180,
}


def real_video_streams(container: av.container.InputContainer) -> list[Any]:
    # Cover art in audio files is a one-frame "video" stream marked as an attached picture.
    attached = av.stream.Disposition.attached_pic
    return [s for s in container.streams.video if not s.disposition & attached]


def analyse_video(
    path: Path, container: av.container.InputContainer, *, max_pixels: int, allow_gps: bool
) -> tuple[dict[str, Any], VideoFramePicture]:
    stream = real_video_streams(container)[0]
    codec = stream.codec_context
    width, height = int(codec.width), int(codec.height)
    check_pixels(width, height, max_pixels)
    first = _first_frame(container, stream)
    rotation = int(getattr(first, "rotation", 0) or 0)
    aspect = stream.sample_aspect_ratio
    shown_width = round(width * aspect) if aspect and aspect > 0 else width
    shown = (height, shown_width) if abs(rotation) in (90, 270) else (shown_width, height)
    duration = containers.duration_seconds(container, stream)
    rate = stream.average_rate or stream.guessed_rate
    metadata: dict[str, Any] = {
        "container": container.format.name.split(",")[0],
        "duration": duration,
        "width": shown[0],
        "height": shown[1],
        "codedWidth": width,
        "codedHeight": height,
        "rotation": rotation,
        "videoCodec": containers.codec_name(stream),
        "profile": stream.profile,
        "pixelFormat": codec.format.name if codec.format else None,
        "frameRate": round(float(rate), 3) if rate else None,
        "frameCount": stream.frames or None,
        "bitRate": container.bit_rate or None,
    }
    audio = container.streams.audio[0] if container.streams.audio else None
    if audio is not None:
        metadata.update(
            audioCodec=containers.codec_name(audio),
            audioChannels=audio.codec_context.channels,
            audioSampleRate=audio.codec_context.sample_rate,
        )
    found = containers.tags(container, stream)
    if found:
        metadata["tags"] = found
    metadata["createdAt"] = containers.created_at(container)
    if allow_gps:
        metadata["location"] = containers.location(container)
    picture = VideoFramePicture(
        path=path,
        stream_index=stream.index,
        at=poster_time(duration),
        width=shown[0],
        height=shown[1],
        rotation=rotation,
        aspect=Fraction(aspect) if aspect else None,
        max_pixels=max_pixels,
    )
    return {key: value for key, value in metadata.items() if value is not None}, picture


def poster_time(duration: float | None) -> float:
    """A tenth in (fades and black leaders come first), at least a second if there is one,
    at most ten seconds (seeking far costs nothing, but decoding to it does not get cheaper)."""
    if not duration:
        return 0.0
    return min(max(duration * 0.1, min(1.0, duration / 2)), 10.0)


def _first_frame(container: av.container.InputContainer, stream: Any) -> Any:
    try:
        for frame in container.decode(stream):
            return frame
    except (av.FFmpegError, ValueError) as error:
        raise corrupt("video", error) from error
    raise corrupt("video", "no frame could be decoded")


@dataclass
class VideoFramePicture:
    path: Path
    stream_index: int
    at: float
    width: int
    height: int
    rotation: int
    aspect: Fraction | None
    max_pixels: int

    def load(self, max_side: int) -> Image.Image:
        with containers.open_container(self.path) as container:
            stream: Any = container.streams[self.stream_index]
            check_pixels(stream.codec_context.width, stream.codec_context.height, self.max_pixels)
            try:
                frame = _frame_at(container, stream, self.at)
            except (av.FFmpegError, ValueError):
                frame = None  # some files cannot seek; a frame from the start will do
            if frame is None:
                try:
                    frame = _frame_at(container, stream, 0.0)
                except (av.FFmpegError, ValueError) as error:
                    raise corrupt("video", error) from error
            if frame is None:
                raise corrupt("video", "no frame could be decoded")
            image = frame.to_image(**self._scaled(frame, max_side))
        transpose = _ROTATE.get(self.rotation)
        return image.transpose(transpose) if transpose is not None else image

    def _scaled(self, frame: Any, max_side: int) -> dict[str, Any]:
        # Scale (and undo anamorphic pixels) in swscale on the way to RGB: the full-size RGB
        # frame is never made. Lanczos in the rendition step does the final, exact fit.
        width = round(frame.width * self.aspect) if self.aspect else frame.width
        height = frame.height
        scale = min(1.0, max_side * REDUCING_GAP / max(width, height))
        return {
            "width": max(2, round(width * scale)),
            "height": max(2, round(height * scale)),
            "interpolation": "AREA",
        }


def _frame_at(container: av.container.InputContainer, stream: Any, at: float) -> Any | None:
    start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    target = start + at
    if at > 0:
        container.seek(int(target / stream.time_base), stream=stream, backward=True)
    else:
        container.seek(0)
    found = None
    for count, frame in enumerate(container.decode(stream)):
        found = frame
        if frame.time is None or frame.time >= target or count >= MAX_FRAMES_AFTER_SEEK:
            break
    return found
