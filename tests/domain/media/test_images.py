"""Images in every supported format: the real facts, upright renditions, bounded decoding."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat, TiffImagePlugin

from domain.assets import media
from domain.assets.media import Kind, tiff
from domain.assets.media.images import ImagePicture
from tests.domain.media import corpus

PARIS = (48.8584, 2.2945)


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _is_red(pixel: Any) -> bool:
    return pixel[0] > 180 and pixel[1] < 90 and pixel[2] < 90


@pytest.fixture
def camera_jpeg(tmp_path: Path) -> Path:
    return corpus.jpeg(
        tmp_path / "IMG_0001.JPG",
        640,
        480,
        orientation=6,
        make="Canon",
        model="EOS R5",
        taken_at="2024:05:01 12:30:45",
        gps=PARIS,
    )


def test_jpeg_exif_dimensions_are_as_shown(camera_jpeg: Path) -> None:
    analysis = media.analyse(camera_jpeg, declared_type="image/jpeg", filename="IMG_0001.JPG")
    assert (analysis.content_type, analysis.kind) == ("image/jpeg", Kind.IMAGE)
    meta = analysis.metadata
    assert (meta["width"], meta["height"], meta["orientation"]) == (480, 640, 6)
    assert meta["exif"] == {
        "make": "Canon",
        "model": "EOS R5",
        "takenAt": "2024-05-01T12:30:45+02:00",
    }
    assert (meta["format"], meta["colorModel"], meta["animated"]) == ("jpeg", "RGB", False)


def test_gps_only_when_allowed(camera_jpeg: Path) -> None:
    assert "location" not in media.analyse(camera_jpeg).metadata
    location = media.analyse(camera_jpeg, allow_gps=True).metadata["location"]
    assert location["latitude"] == pytest.approx(PARIS[0], abs=1e-4)
    assert location["longitude"] == pytest.approx(PARIS[1], abs=1e-4)


def test_renditions_are_upright_and_carry_no_metadata(camera_jpeg: Path) -> None:
    _, renditions = media.process(camera_jpeg, allow_gps=True)
    assert [(r.preset.name, r.width, r.height, r.format) for r in renditions] == [
        ("thumb-256", 192, 256, "jpeg"),
        ("preview-1024", 480, 640, "jpeg"),  # never enlarged
        ("preview-1024-webp", 480, 640, "webp"),
    ]
    for rendition in renditions:
        image = _decode(rendition.data)
        assert image.size == (rendition.width, rendition.height)
        assert rendition.size == len(rendition.data)
        # Stored with the red marker top-left; orientation 6 shows it top-right.
        assert _is_red(image.convert("RGB").getpixel((image.width - 3, 3)))
        assert not _is_red(image.convert("RGB").getpixel((3, 3)))
        assert not image.getexif()
        assert "icc_profile" not in image.info


@pytest.mark.parametrize(
    ("image_format", "content_type", "mode"),
    [
        ("PNG", "image/png", "RGBA"),
        ("GIF", "image/gif", "P"),
        ("WEBP", "image/webp", "RGB"),
        ("TIFF", "image/tiff", "RGB"),
        ("BMP", "image/bmp", "RGB"),
        ("HEIF", "image/heic", "RGB"),
        ("AVIF", "image/avif", "RGB"),
    ],
)
def test_every_format_is_read_and_rendered(
    tmp_path: Path, image_format: str, content_type: str, mode: str
) -> None:
    path = tmp_path / "picture"
    image = corpus.photo(1200, 800)
    corpus.save(image.convert(mode) if mode != "P" else image.quantize(), path, image_format)
    analysis, renditions = media.process(path, declared_type=content_type)
    assert analysis.content_type == content_type
    assert (analysis.metadata["width"], analysis.metadata["height"]) == (1200, 800)
    assert [(r.width, r.height) for r in renditions] == [(256, 171), (1024, 683), (1024, 683)]
    top_left = _decode(renditions[1].data).convert("RGB").getpixel((4, 4))
    assert _is_red(top_left)


@pytest.mark.parametrize("image_format", ["GIF", "WEBP", "PNG"])
def test_animation_is_counted(tmp_path: Path, image_format: str) -> None:
    path = corpus.animated(tmp_path / "anim", image_format, frames=5)
    analysis, renditions = media.process(path)
    assert (analysis.metadata["animated"], analysis.metadata["frameCount"]) == (True, 5)
    assert _is_red(_decode(renditions[0].data).convert("RGB").getpixel((10, 10)))  # frame 1


def test_heic_orientation_is_applied_once(tmp_path: Path) -> None:
    exif = corpus.exif_block(orientation=6, make="Apple", model="iPhone 15")
    path = corpus.save(corpus.photo(640, 480), tmp_path / "IMG.HEIC", "HEIF", exif=exif.tobytes())
    analysis, renditions = media.process(path, declared_type="image/heic", filename="IMG.HEIC")
    meta = analysis.metadata
    assert (meta["width"], meta["height"], meta["orientation"]) == (480, 640, 6)
    assert meta["exif"]["model"] == "iPhone 15"
    thumb = _decode(renditions[0].data).convert("RGB")
    assert thumb.size == (192, 256)
    assert _is_red(thumb.getpixel((thumb.width - 3, 3)))


def test_sixteen_bit_greyscale_is_not_clipped_to_white(tmp_path: Path) -> None:
    grey = Image.linear_gradient("L").resize((600, 400)).convert("I")
    deep = grey.point(lambda value: value * 257).convert("I;16")
    path = corpus.save(deep, tmp_path / "deep.png", "PNG")
    analysis, renditions = media.process(path)
    assert analysis.metadata["colorModel"] == "gray"
    mean = ImageStat.Stat(_decode(renditions[1].data).convert("L")).mean[0]
    assert 100 < mean < 155


def test_cmyk_tiff_becomes_rgb(tmp_path: Path) -> None:
    path = corpus.save(corpus.photo(900, 600).convert("CMYK"), tmp_path / "print.tif", "TIFF")
    analysis, renditions = media.process(path)
    assert analysis.metadata["colorModel"] == "CMYK"
    preview = _decode(renditions[1].data)
    assert preview.mode == "RGB"
    assert _is_red(preview.getpixel((4, 4)))


def test_icc_profile_is_described(tmp_path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = corpus.save(corpus.photo(300, 200), tmp_path / "p.png", "PNG", icc_profile=profile)
    assert media.analyse(path).metadata["iccProfile"] == "sRGB built-in"


def test_transparency_is_flattened_on_white_in_jpeg_only(tmp_path: Path) -> None:
    clear = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    path = corpus.save(clear, tmp_path / "clear.png", "PNG")
    _, renditions = media.process(path)
    assert _decode(renditions[1].data).getpixel((200, 200)) == (255, 255, 255)
    webp = _decode(renditions[2].data)
    assert webp.mode == "RGBA"
    assert webp.getpixel((200, 200)) == (0, 0, 0, 0)


def test_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    path = corpus.jpeg(tmp_path / "big.jpg", 4000, 3000)
    analysis = media.analyse(path)
    assert isinstance(analysis.picture, ImagePicture)
    decoded = analysis.picture.load(1024)
    assert 1024 <= max(decoded.size) <= 2048  # libjpeg's DCT scaling, not a full decode


@pytest.mark.parametrize(
    "make",
    [
        lambda p: corpus.tiff(p, 3001, 2003, rows_per_strip=7),
        lambda p: corpus.tiff(p, 3001, 2003, samples=1, rows_per_strip=64, deflate=True),
        lambda p: corpus.tiff(p, 3001, 2003, samples=4, tile=256, deflate=True),
        lambda p: corpus.tiff(p, 3001, 2003, tile=512),
        lambda p: corpus.save(corpus.photo(3001, 2003), p, "TIFF"),
        lambda p: corpus.save(corpus.photo(3001, 2003), p, "TIFF", compression="tiff_lzw"),
        lambda p: corpus.save(corpus.photo(3001, 2003).convert("CMYK"), p, "TIFF"),
        lambda p: corpus.save(corpus.photo(3001, 2003).convert("I;16"), p, "TIFF"),
    ],
    ids=["strips", "deflate-grey", "tiles-cmyk", "raw-tiles", "pillow-raw", "lzw", "cmyk", "16bit"],
)
def test_banded_tiff_decoding_matches_a_whole_decode(tmp_path: Path, make: object) -> None:
    path = make(tmp_path / "big.tif")  # type: ignore[operator]
    with Image.open(path) as image:
        assert isinstance(image, TiffImagePlugin.TiffImageFile)
        banded = tiff.decode_reduced(image, path, 3)
    assert banded is not None, "this layout should be decoded in bands"
    with Image.open(path) as image:
        image.load()
        whole = (image.convert("I") if image.mode == "I;16" else image).reduce(3)
    if whole.mode == "I":
        whole = whole.point(lambda value: value * (1 / 257))
    assert banded.size == whole.size == (1001, 668)
    difference = ImageChops.difference(banded.convert("RGB"), whole.convert("RGB"))
    extrema: Any = difference.getextrema()
    assert max(high for _, high in extrema) <= 1


def test_bmp_and_dimensions_of_a_tall_image(tmp_path: Path) -> None:
    path = corpus.save(corpus.photo(100, 3000), tmp_path / "strip.bmp", "BMP")
    _, renditions = media.process(path, presets=[media.Preset("tall", 300, "png")])
    assert (renditions[0].width, renditions[0].height) == (10, 300)
