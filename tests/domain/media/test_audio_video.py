"""Video and audio made with PyAV: probed facts, tags, a poster frame found by seeking."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from domain.assets import media
from domain.assets.media import Kind
from tests.domain.media import corpus


def _image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _is_red(pixel: Any) -> bool:
    return pixel[0] > 160 and pixel[1] < 100 and pixel[2] < 100


def test_mp4_h264_aac(tmp_path: Path) -> None:
    path = corpus.video(tmp_path / "clip.mp4", seconds=3, width=320, height=240, fps=25)
    analysis, renditions = media.process(path, declared_type="video/mp4", filename="clip.mp4")
    assert (analysis.content_type, analysis.kind) == ("video/mp4", Kind.VIDEO)
    meta = analysis.metadata
    assert meta["duration"] == pytest.approx(3.0, abs=0.1)
    assert (meta["width"], meta["height"], meta["frameRate"]) == (320, 240, 25.0)
    assert (meta["videoCodec"], meta["audioCodec"], meta["audioChannels"]) == ("h264", "aac", 2)
    assert meta["tags"] == {"title": "Test clip"}
    assert meta["frameCount"] == 75
    assert [(r.width, r.height) for r in renditions] == [(256, 192), (320, 240), (320, 240)]


def test_mpeg4_part2_in_avi_without_sound(tmp_path: Path) -> None:
    path = corpus.video(tmp_path / "old.avi", seconds=2, codec="mpeg4", audio_codec=None)
    analysis, renditions = media.process(path, filename="old.avi")
    assert (analysis.content_type, analysis.kind) == ("video/x-msvideo", Kind.VIDEO)
    assert analysis.metadata["videoCodec"] == "mpeg4"
    assert "audioCodec" not in analysis.metadata
    assert analysis.metadata["duration"] == pytest.approx(2.0, abs=0.1)
    assert len(renditions) == 3


def test_webm_vp8_opus(tmp_path: Path) -> None:
    path = corpus.video(
        tmp_path / "clip.webm", seconds=1, codec="libvpx", audio_codec="libopus", title=None
    )
    analysis = media.analyse(path, declared_type="video/webm")
    assert (analysis.content_type, analysis.metadata["videoCodec"]) == ("video/webm", "vp8")
    assert analysis.metadata["audioCodec"] == "opus"


def test_the_poster_skips_a_black_leader(tmp_path: Path) -> None:
    path = corpus.video(
        tmp_path / "film.mp4",
        seconds=10,
        black_seconds=0.5,
        gop=50,
        distinct_frames=1,
        audio_codec=None,
    )
    _, renditions = media.process(path)
    assert ImageStat.Stat(_image(renditions[1].data).convert("L")).mean[0] > 60


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    path = corpus.video(
        tmp_path / "phone.mp4", seconds=1, rotation=90, audio_codec=None, distinct_frames=1
    )
    analysis, renditions = media.process(path)
    meta = analysis.metadata
    assert (meta["width"], meta["height"], meta["rotation"]) == (240, 320, 90)
    poster = _image(renditions[1].data)
    assert poster.size == (240, 320)
    # Counter-clockwise a quarter turn: the top-left marker ends up bottom-left.
    assert _is_red(poster.getpixel((3, poster.height - 4)))
    assert not _is_red(poster.getpixel((3, 3)))


def test_anamorphic_pixels_are_shown_wide(tmp_path: Path) -> None:
    path = corpus.video(
        tmp_path / "dv.mp4", seconds=1, width=360, height=240, pixel_aspect=Fraction(4, 3)
    )
    analysis, renditions = media.process(path)
    assert (analysis.metadata["width"], analysis.metadata["height"]) == (480, 240)
    assert (renditions[1].width, renditions[1].height) == (480, 240)


@pytest.mark.parametrize(
    ("name", "codec", "options", "content_type", "codec_name"),
    [
        ("song.mp3", "libmp3lame", {}, "audio/mpeg", "mp3"),
        ("song.flac", "flac", {}, "audio/flac", "flac"),
        ("song.wav", "pcm_s16le", {}, "audio/wav", "pcm_s16le"),
        ("song.m4a", "aac", {"container_format": "ipod"}, "audio/mp4", "aac"),
        ("song.ogg", "libopus", {"rate": 48000}, "audio/ogg", "opus"),
    ],
)
def test_audio_duration_codec_bitrate_tags(
    tmp_path: Path,
    name: str,
    codec: str,
    options: dict[str, object],
    content_type: str,
    codec_name: str,
) -> None:
    tags = {"title": "Blue in Green", "artist": "Miles Davis", "album": "Kind of Blue"}
    path = corpus.audio(tmp_path / name, codec, seconds=2.0, tags=tags, **options)  # type: ignore[arg-type]
    analysis, renditions = media.process(path, filename=name)
    assert (analysis.content_type, analysis.kind, renditions) == (content_type, Kind.AUDIO, [])
    meta = analysis.metadata
    assert meta["duration"] == pytest.approx(2.0, abs=0.1)
    assert (meta["codec"], meta["channels"], meta["hasCover"]) == (codec_name, 2, False)
    assert meta["bitRate"] > 0
    assert meta["tags"]["title"] == "Blue in Green"
    assert meta["tags"]["artist"] == "Miles Davis"


def test_cover_art_is_the_picture_of_an_audio_file(tmp_path: Path) -> None:
    cover = corpus.photo(500, 500)
    path = corpus.audio(tmp_path / "album.mp3", "libmp3lame", tags={"title": "X"}, cover=cover)
    analysis, renditions = media.process(path)
    assert (analysis.kind, analysis.metadata["hasCover"]) == (Kind.AUDIO, True)
    assert [(r.width, r.height) for r in renditions] == [(256, 256), (500, 500), (500, 500)]
    assert _is_red(_image(renditions[0].data).getpixel((3, 3)))


def test_sound_only_mp4_is_audio(tmp_path: Path) -> None:
    path = corpus.audio(tmp_path / "voice.mp4", "aac", container_format="mp4")
    analysis = media.analyse(path, declared_type="video/mp4")
    assert (analysis.content_type, analysis.kind) == ("audio/mp4", Kind.AUDIO)
