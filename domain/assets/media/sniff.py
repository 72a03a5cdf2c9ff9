"""The real content type of a file, from its bytes: never from its name or from what it claims.

Signatures, every ISO-BMFF brand that matters (HEIC, AVIF, MP4, MOV, M4A, 3GP), MPEG audio
without an ID3 tag, Matroska vs WebM, executables, text in legacy encodings, and HTML, XHTML,
SVG and scripts recognised the way a browser would.
"""

from __future__ import annotations

import re
from pathlib import Path

HEAD_BYTES = 4096
# An XML prolog, comments and a DOCTYPE can push the root element far down; a browser reads on.
XML_ROOT_BYTES = 64 * 1024

OCTET_STREAM = "application/octet-stream"
EXECUTABLE_TYPES = {
    "application/x-executable",
    "application/x-msdownload",
    "application/x-mach-binary",
    "application/java-vm",
    "application/wasm",
}

_SIGNATURES: list[tuple[bytes, int, str]] = [
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"II+\x00", 0, "image/tiff"),  # BigTIFF
    (b"MM\x00+", 0, "image/tiff"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "image/jxl"),
    (b"\xff\x0a", 0, "image/jxl"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "image/jp2"),
    (b"8BPS", 0, "image/vnd.adobe.photoshop"),
    (b"%PDF-", 0, "application/pdf"),
    (b"OggS", 0, "audio/ogg"),
    (b"fLaC", 0, "audio/flac"),
    (b"ID3", 0, "audio/mpeg"),
    (b"#!AMR", 0, "audio/amr"),
    (b"MThd", 0, "audio/midi"),
    (b"FLV\x01", 0, "video/x-flv"),
    (b"\x00\x00\x01\xba", 0, "video/mpeg"),
    (b"\x00\x00\x01\xb3", 0, "video/mpeg"),
    (b"0&\xb2u\x8ef\xcf\x11", 0, "video/x-ms-asf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"PK\x05\x06", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", 0, "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", 0, "application/vnd.rar"),
    (b"\xfd7zXZ\x00", 0, "application/x-xz"),
    (b"BZh", 0, "application/x-bzip2"),
    (b"\x28\xb5\x2f\xfd", 0, "application/zstd"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "application/x-ole-storage"),
    (b"SQLite format 3\x00", 0, "application/vnd.sqlite3"),
    (b"{\\rtf", 0, "application/rtf"),
    (b"%!PS", 0, "application/postscript"),
    (b"\x7fELF", 0, "application/x-executable"),
    (b"MZ", 0, "application/x-msdownload"),
    (b"\xfe\xed\xfa\xce", 0, "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", 0, "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", 0, "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", 0, "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", 0, "application/java-vm"),
    (b"\x00asm", 0, "application/wasm"),
    (b"ustar", 257, "application/x-tar"),
]

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AUDIO_MP4_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_3GP_BRANDS = {b"3gp4", b"3gp5", b"3gp6", b"3gp7", b"3gs7", b"3ge6", b"3ge7", b"3gg6", b"3g2a"}

# Browsers treat a body as HTML when it starts (after whitespace) with one of these
# (WHATWG MIME Sniffing, "identifying a resource with an unknown MIME type").
_HTML_STARTS = re.compile(
    rb"(?:<!doctype\s+html|<html|<head|<script|<iframe|<h1|<div|<font|<table|<a|<style"
    rb"|<title|<b|<body|<br|<p)[\s>]|<!--",
    re.IGNORECASE,
)
_XML_ROOT = re.compile(
    rb"<(?![?!])(?:[a-z_][\w.-]*:)?([a-z_][\w.-]*)",
    re.IGNORECASE,
)


def sniff_file(path: Path) -> str:
    """The content type of the file at `path`, reading only its first few kilobytes."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        content_type = sniff(head)
        if content_type in ("application/xml", "text/html") and len(head) == HEAD_BYTES:
            # The root element may sit after a long prolog: look further before deciding.
            head += handle.read(XML_ROOT_BYTES - HEAD_BYTES)
            content_type = sniff(head)
    return content_type


def sniff(head: bytes) -> str:
    """Best-known content type for a file that starts with `head` (give it HEAD_BYTES)."""
    if not head:
        return "application/x-empty"
    for signature, offset, content_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if content_type == "application/x-msdownload" and not _looks_like_pe(head):
                continue
            return content_type
    if text_encoding_from_bom(head):
        # Checked before MPEG audio: a UTF-16 byte order mark looks like a frame sync.
        return _sniff_text(head)
    return _sniff_containers(head) or _sniff_mpeg_audio(head) or _sniff_text(head)


def _sniff_containers(head: bytes) -> str | None:
    if head[:4] == b"RIFF":
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(
            head[8:12], OCTET_STREAM
        )
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head[4:8] == b"ftyp":
        return _ftyp(head)
    if head[:4] == b"\x1aE\xdf\xa3":
        # Matroska and WebM share EBML; the DocType element says which.
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head[:2] == b"BM" and len(head) > 18 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return "image/bmp"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "video/mp2t"
    return None


def _ftyp(head: bytes) -> str:
    size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    # Compatible brands follow the minor version; a HEIC may carry its brand only there.
    brands = {major} | {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "image/avif"
    if brands & _HEIC_BRANDS:
        return "image/heic"
    if major in _HEIF_BRANDS:
        return "image/heif"
    if major in _AUDIO_MP4_BRANDS:
        return "audio/mp4"
    if major == b"qt  ":
        return "video/quicktime"
    if major in _3GP_BRANDS:
        return "video/3gpp"
    if major == b"crx ":
        return "image/x-canon-cr3"
    return "video/mp4"


def _looks_like_pe(head: bytes) -> bool:
    # "MZ" alone is two letters a text file may start with; a PE header is where MZ points.
    if len(head) < 64:
        return False
    pe_offset = int.from_bytes(head[60:64], "little")
    return head[pe_offset : pe_offset + 4] == b"PE\x00\x00" or pe_offset >= len(head)


def _sniff_mpeg_audio(head: bytes) -> str | None:
    """MPEG audio or ADTS AAC without a container: two frame headers in a row to be sure."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    if head[1] & 0x06 == 0:  # layer bits 00: ADTS
        return "audio/aac" if head[1] & 0xF6 == 0xF0 else None
    version = (head[1] >> 3) & 0x03
    layer = (head[1] >> 1) & 0x03
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0x03
    if version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    length = _mpeg_frame_length(version, layer, bitrate_index, rate_index, (head[2] >> 1) & 1)
    following = head[length : length + 2]
    if len(following) < 2 or following[0] != 0xFF or following[1] & 0xE0 != 0xE0:
        return None
    return "audio/mpeg"


_MPEG1_L3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_L3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG1_L2_KBPS = (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384)
_MPEG1_L1_KBPS = (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448)
_MPEG2_L1_KBPS = (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256)
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(version: int, layer: int, bitrate: int, rate: int, padding: int) -> int:
    mpeg1 = version == 3
    sample_rate = _SAMPLE_RATES[version][rate]
    if layer == 3:  # Layer I
        kbps = (_MPEG1_L1_KBPS if mpeg1 else _MPEG2_L1_KBPS)[bitrate]
        return (12 * kbps * 1000 // sample_rate + padding) * 4
    if layer == 2:  # Layer II
        kbps = (_MPEG1_L2_KBPS if mpeg1 else _MPEG2_L3_KBPS)[bitrate]
        return 144 * kbps * 1000 // sample_rate + padding
    kbps = (_MPEG1_L3_KBPS if mpeg1 else _MPEG2_L3_KBPS)[bitrate]
    return (144 if mpeg1 else 72) * kbps * 1000 // sample_rate + padding


def text_encoding_from_bom(head: bytes) -> str | None:
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return None


def _sniff_text(head: bytes) -> str:
    encoding = text_encoding_from_bom(head)
    if encoding in ("utf-16", "utf-32"):
        # Wide encodings are full of NULs: look at them as characters instead.
        text = head.decode(encoding, errors="ignore").encode("utf-8", errors="replace")
    elif _looks_binary(head):
        return OCTET_STREAM
    else:
        text = head
    return _classify_text(text.lstrip(b"\xef\xbb\xbf \t\r\n\x0c"))


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    # Control characters other than tab, newlines, form feed and escape do not occur in text
    # in any encoding we accept; legacy 8-bit encodings (cp1252, latin-1) stay "text".
    controls = sum(1 for byte in head if byte < 0x20 and byte not in (9, 10, 12, 13, 27))
    return controls > len(head) // 100


def _classify_text(text: bytes) -> str:
    lowered = text[:1024].lower()
    if lowered.startswith(b"#!"):
        return "text/x-shellscript"
    if lowered.startswith(b"<?php") or lowered.startswith(b"<?="):
        return "application/x-php"
    if lowered.startswith(b"<?xml") or lowered.startswith(b"<!doctype svg"):
        return _xml_root_type(text) or "application/xml"
    if lowered.startswith((b"<svg", b"<!--")) or _HTML_STARTS.match(lowered):
        # A comment first: what follows decides; a browser sniffing it would say HTML.
        return _xml_root_type(text) or "text/html"
    if lowered.startswith((b"{", b"[")):
        return "application/json"
    return "text/plain"


def _xml_root_type(text: bytes) -> str | None:
    body = re.sub(rb"<!--.*?-->", b"", text, flags=re.DOTALL)
    body = re.sub(rb"<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", b"", body, flags=re.DOTALL | re.IGNORECASE)
    root = _XML_ROOT.search(body)
    if root is None:
        return None
    name = root.group(1).lower()
    if name == b"svg":
        return "image/svg+xml"
    if name == b"html":
        declares_namespace = b"xmlns" in body[root.start() : root.start() + 512]
        return "application/xhtml+xml" if declares_namespace else "text/html"
    return "application/xml" if body.lstrip().lower().startswith(b"<?xml") else None
