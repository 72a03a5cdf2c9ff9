"""TIFF decoded a band at a time, each band reduced as it comes, so memory stays bounded.

Pillow (and libtiff under it) decodes a TIFF page into one full-size buffer: a 200 MB TIFF needs
200 MB or more. A TIFF is stored in independent strips or tiles, though, so for each band of
rows we write a small TIFF in memory (the original layout tags, the band's height, the band's
strip or tile bytes copied as they are) and let Pillow decode just that, then reduce it by an
integer factor and paste it into the small result. Uncompressed strips are cut by rows, since a
single uncompressed strip is common (Pillow itself writes one). Anything this does not handle
returns None and the caller decodes the page whole, within the pixel limit.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, TiffImagePlugin

from domain.assets.media.colour import reducible
from domain.assets.media.errors import corrupt

BAND_BYTES = 8 * 1024 * 1024
_OLD_JPEG = 6
_WIDTH, _LENGTH, _BITS, _COMPRESSION, _SAMPLES, _ROWS_PER_STRIP, _PLANAR = (
    256, 257, 258, 259, 277, 278, 284,
)  # fmt: skip
_STRIP_OFFSETS, _STRIP_COUNTS, _TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS, _TILE_COUNTS = (
    273, 279, 322, 323, 324, 325,
)  # fmt: skip
# What a decoder needs to read the pixels: nothing else is copied into a band.
_LAYOUT_TAGS = (256, 258, 259, 262, 266, 277, 284, 317, 320, 322, 323, 332, 338, 339, 347,
                529, 530, 531, 532)  # fmt: skip
_LONG, _BIG_TYPES = 4, {16: 4, 17: 9, 18: 13}  # BigTIFF's 64-bit types, as classic TIFF ones


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    planes: int
    block_rows: int  # rows per strip or tile; 1 for uncompressed strips (cut by rows)
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    tiled: bool
    raw: bool
    rows_per_strip: int
    tiles_across: int
    row_bytes: tuple[int, ...]  # per plane, for uncompressed strips


def decode_reduced(
    image: TiffImagePlugin.TiffImageFile, path: Path, factor: int
) -> Image.Image | None:
    """The current page reduced by `factor`, decoded band by band; None if it cannot be split."""
    layout = _layout(image)
    if layout is None or factor < 2:
        return None
    unit = math.lcm(layout.block_rows, factor)
    decoded_row = layout.width * 4  # Pillow keeps RGB and CMYK at four bytes a pixel
    if unit * decoded_row > 4 * BAND_BYTES:
        return None
    band_rows = max(unit, BAND_BYTES // decoded_row // unit * unit)
    result: Image.Image | None = None
    with path.open("rb") as source:
        size = path.stat().st_size
        for top in range(0, layout.height, band_rows):
            rows = min(band_rows, layout.height - top)
            reduced = _decode_band(image, layout, source, size, top, rows, factor)
            if result is None:
                result = Image.new(
                    reduced.mode,
                    (math.ceil(layout.width / factor), math.ceil(layout.height / factor)),
                )
            result.paste(reduced, (0, top // factor))
    if result is not None:
        result.info = dict(image.info)
    return result


def _layout(image: TiffImagePlugin.TiffImageFile) -> _Layout | None:
    tags = image.tag_v2
    width, height = int(tags.get(_WIDTH, 0)), int(tags.get(_LENGTH, 0))
    compression = int(tags.get(_COMPRESSION, 1))
    samples = int(tags.get(_SAMPLES, 1))
    planes = samples if int(tags.get(_PLANAR, 1)) == 2 else 1
    if compression == _OLD_JPEG or not width or not height:
        return None
    tiled = _TILE_OFFSETS in tags
    offsets = _ints(tags.get(_TILE_OFFSETS if tiled else _STRIP_OFFSETS))
    counts = _ints(tags.get(_TILE_COUNTS if tiled else _STRIP_COUNTS))
    bits = _ints(tags.get(_BITS, 1)) or (1,)
    bits = bits * samples if len(bits) == 1 else bits
    row_bytes = (
        tuple((width * bits[plane] + 7) // 8 for plane in range(planes))
        if planes > 1
        else ((width * sum(bits[:samples]) + 7) // 8,)
    )
    if tiled:
        tile_width, tile_length = int(tags.get(_TILE_WIDTH, 0)), int(tags.get(_TILE_LENGTH, 0))
        if not tile_width or not tile_length:
            return None
        across = math.ceil(width / tile_width)
        expected = planes * across * math.ceil(height / tile_length)
        rows_per_strip, block_rows = tile_length, tile_length
    else:
        across = 1
        rows_per_strip = min(int(tags.get(_ROWS_PER_STRIP, height)), height) or height
        expected = planes * math.ceil(height / rows_per_strip)
        block_rows = 1 if compression == 1 else rows_per_strip
    if len(offsets) != expected or len(counts) != expected:
        return None
    return _Layout(
        width=width,
        height=height,
        planes=planes,
        block_rows=block_rows,
        offsets=offsets,
        counts=counts,
        tiled=tiled,
        raw=compression == 1 and not tiled,
        rows_per_strip=rows_per_strip,
        tiles_across=across,
        row_bytes=row_bytes,
    )


def _decode_band(
    image: TiffImagePlugin.TiffImageFile,
    layout: _Layout,
    source: IO[bytes],
    size: int,
    top: int,
    rows: int,
    factor: int,
) -> Image.Image:
    """One band, decoded and reduced; the band's bytes and full-size pixels die on return."""
    data = _band_file(image, layout, rows, _band_chunks(layout, source, size, top, rows))
    try:
        with Image.open(io.BytesIO(data)) as band:
            band.load()
            return reducible(band).reduce(factor)
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise corrupt("TIFF image", error) from error


def _band_chunks(layout: _Layout, source: IO[bytes], size: int, top: int, rows: int) -> list[bytes]:
    def read(offset: int, count: int) -> bytes:
        if offset < 0 or count < 0 or offset + count > size:
            raise corrupt("TIFF image", "a strip or tile lies past the end of the file")
        source.seek(offset)
        return source.read(count)

    chunks: list[bytes] = []
    blocks_per_plane = len(layout.offsets) // layout.planes
    for plane in range(layout.planes):
        base = plane * blocks_per_plane
        if layout.raw:
            pieces = _raw_rows(layout, plane, base, top, rows, read)
            chunks.append(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            continue
        first, last = top // layout.rows_per_strip, (top + rows - 1) // layout.rows_per_strip
        for block_row in range(first, last + 1):
            for column in range(layout.tiles_across):
                index = base + block_row * layout.tiles_across + column
                chunks.append(read(layout.offsets[index], layout.counts[index]))
    return chunks


def _raw_rows(
    layout: _Layout, plane: int, base: int, top: int, rows: int, read: Any
) -> list[bytes]:
    ranges: list[list[int]] = []
    row_bytes, per_strip = layout.row_bytes[plane], layout.rows_per_strip
    for strip in range(top // per_strip, (top + rows - 1) // per_strip + 1):
        start = max(top, strip * per_strip)
        end = min(top + rows, (strip + 1) * per_strip)
        offset = layout.offsets[base + strip] + (start - strip * per_strip) * row_bytes
        if ranges and ranges[-1][0] + ranges[-1][1] == offset:
            ranges[-1][1] += (end - start) * row_bytes  # strips usually follow each other
        else:
            ranges.append([offset, (end - start) * row_bytes])
    return [read(offset, count) for offset, count in ranges]


def _band_file(
    image: TiffImagePlugin.TiffImageFile, layout: _Layout, rows: int, chunks: list[bytes]
) -> bytes:
    tags = image.tag_v2
    prefix = tags.prefix
    header = prefix + (b"*\x00" if prefix == b"II" else b"\x00*") + (8).to_bytes(4, _order(prefix))
    directory = TiffImagePlugin.ImageFileDirectory_v2(ifh=header)
    for tag in _LAYOUT_TAGS:
        if tag in tags:
            original_type = tags.tagtype.get(tag, _LONG)
            directory.tagtype[tag] = _BIG_TYPES.get(original_type, original_type)
            directory[tag] = tags[tag]
    offsets_tag, counts_tag = (
        (_TILE_OFFSETS, _TILE_COUNTS) if layout.tiled else (_STRIP_OFFSETS, _STRIP_COUNTS)
    )
    for tag, value in (
        (_LENGTH, rows),
        (_ROWS_PER_STRIP, rows if layout.raw else layout.rows_per_strip),
        (offsets_tag, tuple(0 for _ in chunks)),
        (counts_tag, tuple(len(chunk) for chunk in chunks)),
    ):
        if tag == _ROWS_PER_STRIP and layout.tiled:
            continue
        directory.tagtype[tag] = _LONG
        directory[tag] = value
    # Pillow writes StripOffsets relative to the end of the directory (it adds that position
    # itself) and TileOffsets as given; the directory's length does not depend on the values.
    position = 0 if offsets_tag == _STRIP_OFFSETS else len(header) + len(directory.tobytes(8))
    offsets = []
    for chunk in chunks:
        offsets.append(position)
        position += len(chunk)
    directory[offsets_tag] = tuple(offsets)
    return b"".join([header, directory.tobytes(len(header)), *chunks])


def _order(prefix: bytes) -> Any:
    return "little" if prefix == b"II" else "big"


def _ints(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, tuple | list):
        return tuple(int(item) for item in value)
    return (int(value),)
