"""The sniffer names a file from its first bytes, whatever it is called."""

from __future__ import annotations

import struct

import pytest

from domain.assets.media.sniff import sniff


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00" * 64


def _mp3_frames(count: int = 3) -> bytes:
    header = b"\xff\xfb\x90\x64"  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 417-byte frames
    return (header + b"\x00" * 413) * count


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (_ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (_ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
        (_ftyp(b"mif1", b"mif1", b"miaf"), "image/heif"),
        (_ftyp(b"avif", b"avif", b"mif1"), "image/avif"),
        (_ftyp(b"mif1", b"avif", b"mif1"), "image/avif"),
        (_ftyp(b"isom", b"isom", b"avc1"), "video/mp4"),
        (_ftyp(b"qt  ", b"qt  "), "video/quicktime"),
        (_ftyp(b"M4A ", b"M4A ", b"isom"), "audio/mp4"),
        (_ftyp(b"3gp5", b"3gp5"), "video/3gpp"),
        (b"\x1aE\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1fB\x86\x81\x01B\x82\x84webm", "video/webm"),
        (b"\x1aE\xdf\xa3\x01\x00\x00\x00B\x82\x88matroska", "video/x-matroska"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
        (_mp3_frames(), "audio/mpeg"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "audio/aac"),
        (b"fLaC\x00\x00\x00\x22", "audio/flac"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b"\x7fELF\x02\x01\x01", "application/x-executable"),
        (b"<!DOCTYPE html><html></html>", "text/html"),
        (b"  \n<html><body>hi</body></html>", "text/html"),
        (b"<script>alert(1)</script>", "text/html"),
        (b"<!-- note --><p>hello</p>", "text/html"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (b'<?xml version="1.0"?><!-- c --><!DOCTYPE svg [ ]><svg/>', "image/svg+xml"),
        (
            b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>',
            "application/xhtml+xml",
        ),
        (b'<?xml version="1.0"?><catalog><book/></catalog>', "application/xml"),
        (b'{"a": 1}', "application/json"),
        (b"#!/bin/sh\nrm -rf /\n", "text/x-shellscript"),
        (b"<?php system($_GET['c']); ?>", "application/x-php"),
        ("Åsa; Malmö\n".encode("cp1252"), "text/plain"),
        ("héllo\n".encode("utf-16"), "text/plain"),  # the BOM looks like an MPEG frame sync
        (b"\x00\x01\x02\x03binary", "application/octet-stream"),
        (b"MZ is how this sentence starts, and it is text.", "text/plain"),
    ],
)
def test_sniff_names_the_bytes(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


def test_sniff_empty_is_empty() -> None:
    assert sniff(b"") == "application/x-empty"


def test_a_lone_frame_sync_is_not_mp3() -> None:
    # Two bytes that look like a sync, then nothing that confirms a second frame.
    assert sniff(b"\xff\xfb\x90\x64" + b"text that follows") != "audio/mpeg"
