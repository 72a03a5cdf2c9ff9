"""Files the media tests (and bench/renditions) make themselves, with the libraries under test.

No binary fixture is committed and nothing is downloaded: every image, PDF, video and audio file
is generated here, and the hostile ones are built by hand, byte by byte.
"""

from __future__ import annotations

import array
import io
import math
import struct
import zlib
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import pillow_heif
from PIL import Image, ImageDraw, ImageFilter

pillow_heif.register_heif_opener()


# --- images -------------------------------------------------------------------------------


def photo(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """Photo-like content (gradients, noise, edges), so codecs work as hard as on a real one."""
    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 30 + seed % 20)
    mirrored = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = Image.merge("RGB", (base, noise.filter(ImageFilter.GaussianBlur(1)), mirrored))
    draw = ImageDraw.Draw(image)
    step = max(8, width // 12)
    for index, x in enumerate(range(0, width, step)):
        colour = (255, 40 * index % 255, 0)
        draw.rectangle((x, height // 3, x + step // 2, height // 2), fill=colour)
    # A marker in the top-left corner, to check which way up a rendition is.
    draw.rectangle((0, 0, width // 8, height // 8), fill=(255, 0, 0))
    return image


def exif_block(
    *,
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    taken_at: str | None = None,
    gps: tuple[float, float] | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if taken_at:
        exif.get_ifd(0x8769)[0x9003] = taken_at
        exif.get_ifd(0x8769)[0x9011] = "+02:00"
    if gps:
        latitude, longitude = gps
        exif.get_ifd(0x8825).update(
            {
                1: "N" if latitude >= 0 else "S",
                2: _dms(abs(latitude)),
                3: "E" if longitude >= 0 else "W",
                4: _dms(abs(longitude)),
            }
        )
    return exif


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = Fraction(round((value - degrees - minutes / 60) * 3600 * 1000), 1000)
    return Fraction(degrees), Fraction(minutes), seconds


def save(image: Image.Image, path: Path, image_format: str, **options: object) -> Path:
    image.save(path, image_format, **options)
    return path


def jpeg(path: Path, width: int = 640, height: int = 480, **exif: object) -> Path:
    block = exif_block(**exif)  # type: ignore[arg-type]
    return save(photo(width, height), path, "JPEG", quality=90, exif=block.tobytes())


def animated(path: Path, image_format: str, frames: int = 4, size: int = 64) -> Path:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    images = [Image.new("RGB", (size, size), colours[i % len(colours)]) for i in range(frames)]
    images[0].save(
        path, image_format, save_all=True, append_images=images[1:], duration=100, loop=0
    )
    return path


# --- hand-built files ---------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A valid PNG header claiming width x height, with a few hundred bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    rows = zlib.compress(b"\x00" + bytes(width) * 1, 9)  # one row: the rest "streams" later
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def pdf(path: Path, pages: list[str], *, title: str, author: str) -> Path:
    """A small, valid PDF with real text (Helvetica) on each page and an Info dictionary."""
    objects: list[bytes] = []
    count = len(pages)
    page_ids = [4 + 2 * index for index in range(count)]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % page_id for page_id in page_ids)
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for text in pages:
        page_id = 4 + len(objects) - 3
        safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")
        stream = b"BT /F1 24 Tf 72 720 Td (%s) Tj ET" % safe
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info_id = len(objects) + 1
    objects.append(
        b"<< /Title (%s) /Author (%s) /CreationDate (D:20240501123000+02'00') >>"
        % (title.encode("latin-1"), author.encode("latin-1"))
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, info_id, xref)
    )
    path.write_bytes(out.getvalue())
    return path


def tiff(
    path: Path,
    width: int,
    height: int,
    *,
    samples: int = 3,
    rows_per_strip: int = 16,
    tile: int | None = None,
    deflate: bool = False,
) -> Path:
    """An 8-bit TIFF written strip by strip (or tile by tile) without the image in memory."""
    row = _pattern_row(width, samples)
    block_rows = tile or rows_per_strip
    block_width = tile or width
    blocks: list[tuple[int, int]] = []
    with path.open("wb") as out:
        out.write(b"II*\x00\x00\x00\x00\x00")
        for top in range(0, height, block_rows):
            for left in range(0, width, block_width):
                rows = block_rows if tile else min(block_rows, height - top)
                piece = row[left * samples : (left + block_width) * samples]
                piece = piece.ljust(block_width * samples, b"\x80")
                data = b"".join(_shift(piece, top + r) for r in range(rows))
                if deflate:
                    data = zlib.compress(data, 1)
                blocks.append((out.tell(), len(data)))
                out.write(data)
        offsets_at = _write_array(out, [offset for offset, _ in blocks])
        counts_at = _write_array(out, [count for _, count in blocks])
        bits_at = _write_array(out, [8] * samples, short=True)
        tags = [
            (256, 4, 1, width),
            (257, 4, 1, height),
            (258, 3, samples, bits_at if samples > 2 else 8),
            (259, 3, 1, 8 if deflate else 1),
            (262, 3, 1, {1: 1, 3: 2, 4: 5}[samples]),
            (277, 3, 1, samples),
            (284, 3, 1, 1),
        ]
        if tile:
            tags += [(322, 3, 1, tile), (323, 3, 1, tile), (324, 4, len(blocks), offsets_at)]
            tags += [(325, 4, len(blocks), counts_at)]
        else:
            tags += [(273, 4, len(blocks), offsets_at), (278, 4, 1, rows_per_strip)]
            tags += [(279, 4, len(blocks), counts_at)]
        if len(blocks) == 1:  # one value fits in the entry itself
            tags = [(t, k, n, blocks[0][0] if v == offsets_at else v) for t, k, n, v in tags]
            tags = [(t, k, n, blocks[0][1] if v == counts_at else v) for t, k, n, v in tags]
        directory = out.tell()
        out.write(struct.pack("<H", len(tags)))
        for tag, kind, number, value in sorted(tags):
            packed = (
                struct.pack("<H", value) + b"\x00\x00"
                if kind == 3 and number == 1
                else (struct.pack("<I", value))
            )
            out.write(struct.pack("<HHI", tag, kind, number) + packed)
        out.write(b"\x00\x00\x00\x00")
        out.seek(4)
        out.write(struct.pack("<I", directory))
    return path


def _pattern_row(width: int, samples: int) -> bytes:
    return bytes((x * 7 + channel * 60) % 256 for x in range(width) for channel in range(samples))


def _shift(row: bytes, by: int) -> bytes:
    by = (by * 3) % max(1, len(row))
    return row[by:] + row[:by]


def _write_array(out: io.BufferedWriter, values: list[int], short: bool = False) -> int:
    if out.tell() % 2:
        out.write(b"\x00")
    at = out.tell()
    out.write(b"".join(struct.pack("<H" if short else "<I", value) for value in values))
    return at


# --- audio and video ----------------------------------------------------------------------


def video(
    path: Path,
    *,
    seconds: float = 3.0,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    codec: str = "libx264",
    audio_codec: str | None = "aac",
    title: str | None = "Test clip",
    rotation: int | None = None,
    gop: int | None = None,
    distinct_frames: int = 5,
    black_seconds: float = 0.0,
    pixel_aspect: Fraction | None = None,
) -> Path:
    with av.open(str(path), "w") as out:
        if title:
            out.metadata["title"] = title
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        elif codec.startswith("libvpx"):
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        if gop:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pixel_aspect is not None:
            stream.codec_context.sample_aspect_ratio = pixel_aspect
        audio_rate = 48000 if audio_codec == "libopus" else 44100  # Opus has no 44.1 kHz
        sound = (
            out.add_stream(audio_codec, rate=audio_rate, layout="stereo") if audio_codec else None
        )
        assert sound is None or isinstance(sound, av.AudioStream)
        frames = [
            av.VideoFrame.from_image(photo(width, height, seed=i).rotate(i * 9))
            for i in range(distinct_frames)
        ]
        black = av.VideoFrame.from_image(Image.new("RGB", (width, height)))
        total = int(seconds * fps)
        for index in range(total):
            frame = frames[index * distinct_frames // max(total, 1)]
            if index < black_seconds * fps:
                frame = black  # a fade-in: a poster taken at 0 s would be black
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            _encode_audio(out, sound, seconds)
    return path


def long_video(
    path: Path,
    *,
    seconds: float,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    gop: int = 50,
    crf: int = 30,
    target_bytes: int | None = None,
) -> Path:
    """Hours of H.264 in seconds: one closed GOP is encoded, then its packets are muxed again
    and again with shifted timestamps (every GOP starts with an IDR frame, so this is valid).
    With `target_bytes`, as many GOPs as make the file that large (`seconds` is then ignored)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf), "keyint": str(gop),
                          "min-keyint": str(gop), "scenecut": "0"}  # fmt: skip
        first: list[av.Packet] = []
        for index in range(gop):
            frame = av.VideoFrame.from_image(photo(width, height, seed=index).rotate(index * 7))
            frame.pts = index
            first += stream.encode(frame)
        first += stream.encode(None)
        repeats = max(1, int(seconds * fps) // gop)
        if target_bytes:
            repeats = -(-target_bytes // sum(packet.size for packet in first))
        for repeat in range(repeats):
            for packet in first:
                copy = av.Packet(bytes(packet))
                copy.time_base = packet.time_base
                copy.pts = None if packet.pts is None else packet.pts + repeat * gop
                copy.dts = None if packet.dts is None else packet.dts + repeat * gop
                copy.is_keyframe = packet.is_keyframe
                copy.stream = stream
                out.mux(copy)
    return path


def audio(
    path: Path,
    codec: str,
    *,
    seconds: float = 2.0,
    rate: int = 44100,
    tags: dict[str, str] | None = None,
    container_format: str | None = None,
    cover: Image.Image | None = None,
) -> Path:
    with av.open(str(path), "w", format=container_format) as out:
        for key, value in (tags or {}).items():
            out.metadata[key] = value
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        assert isinstance(stream, av.AudioStream)
        if codec == "libmp3lame":
            stream.bit_rate = 128_000
        if cover is not None:
            _attach_cover(out, cover)
        _encode_audio(out, stream, seconds)
    return path


def _attach_cover(out: av.container.OutputContainer, cover: Image.Image) -> None:
    """Cover art as FFmpeg writes it: a one-packet JPEG stream marked as an attached picture."""
    buffer = io.BytesIO()
    cover.convert("RGB").save(buffer, "JPEG")
    stream = out.add_stream("mjpeg")
    assert isinstance(stream, av.VideoStream)
    stream.width, stream.height, stream.pix_fmt = cover.width, cover.height, "yuvj420p"
    stream.disposition = av.stream.Disposition.attached_pic
    stream.time_base = Fraction(1, 90000)
    packet = av.Packet(buffer.getvalue())
    packet.stream, packet.pts, packet.dts = stream, 0, 0
    out.mux(packet)


def _encode_audio(
    out: av.container.OutputContainer, stream: av.AudioStream, seconds: float
) -> None:
    rate = stream.codec_context.sample_rate
    audio_format = stream.codec_context.format.name
    size = stream.codec_context.frame_size or 1024
    # A 440 Hz tone: encoders refuse noise that decodes to NaN floats, and silence is too easy.
    wave = [0.3 * math.sin(2 * math.pi * 440 * i / rate) for i in range(size * 2)]
    if audio_format.startswith("flt"):
        tone = array.array("f", wave).tobytes()
    else:
        tone = array.array("h", [int(v * 32767) for v in wave]).tobytes()
    for start in range(0, int(seconds * rate), size):
        frame = av.AudioFrame(format=audio_format, layout="stereo", samples=size)
        for plane in frame.planes:
            plane.update(tone[: plane.buffer_size])
        frame.sample_rate, frame.pts = rate, start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


# --- hostile and odd files ----------------------------------------------------------------

HTML_PAGE = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG_CLEAN = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80"><rect width="120" height="80" fill="red"/></svg>'  # noqa: E501
SVG_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
SVG_ONLOAD = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'
SVG_ENCODED_HREF = (
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    b'<a xlink:href="&#106;avascript:alert(1)"><text>hi</text></a></svg>'
)


def write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def lines(rows: Iterable[str]) -> str:
    return "".join(f"{row}\n" for row in rows)
