"""What a file claims to be (its declared type and its extension) against what its bytes are.

The claim matters even when the bytes are fine: in services mode the object is stored, and served
back, with the declared Content-Type, so a PNG declared as text/html would be served as a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from domain.assets.media.errors import MediaRejected, Verdict
from domain.assets.media.sniff import EXECUTABLE_TYPES, OCTET_STREAM


@dataclass(frozen=True)
class Claim:
    source: str  # "declared type" or "extension", for the message
    content_type: str
    label: str  # what the user wrote: "image/png" or ".png"


# Claims that assert nothing: browsers send these when they do not know.
GENERIC = {
    "",
    "application/octet-stream",
    "binary/octet-stream",
    "application/binary",
    "application/unknown",
    "application/x-unknown",
    "unknown/unknown",
    "application/force-download",
    "application/download",
    "*/*",
}

# Types a browser (or a web server) would execute, whatever the bytes.
ACTIVE = {
    "text/html",
    "application/xhtml+xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/ecmascript",
    "application/ecmascript",
    "text/vbscript",
    "application/hta",
    "application/x-php",
    "application/x-httpd-php",
    "text/x-php",
    "text/x-shellscript",
    "application/x-sh",
}

_ISO_BMFF = {
    "video/mp4",
    "video/quicktime",
    "video/x-m4v",
    "video/3gpp",
    "video/3gpp2",
    "audio/mp4",
    "audio/x-m4a",
    "audio/m4a",
    "audio/x-m4b",
    "audio/3gpp",
    "audio/3gpp2",
    "audio/aac",
}
_HEIF = {"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"}
_MATROSKA = {"video/webm", "audio/webm", "video/x-matroska", "audio/x-matroska"}
_OGG = {"audio/ogg", "video/ogg", "application/ogg", "audio/opus", "audio/vorbis", "audio/x-ogg"}
_ZIP_BASED = {
    "application/zip",
    "application/x-zip-compressed",
    "application/x-zip",
    "application/epub+zip",
    "application/java-archive",
    "application/vnd.android.package-archive",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/vnd.google-earth.kmz",
    "model/vnd.usdz+zip",
}
_OLE = {
    "application/x-ole-storage",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.ms-outlook",
    "application/x-msi",
}
_ZIP_ALIASES = {
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
}
_XML = {"application/xml", "text/xml"}

# For each type the bytes can be, the claims that agree with it.
ACCEPTED: dict[str, set[str]] = {
    "image/jpeg": {"image/jpeg", "image/jpg", "image/pjpeg"},
    "image/png": {"image/png", "image/x-png", "image/apng"},
    "image/gif": {"image/gif"},
    "image/webp": {"image/webp"},
    "image/tiff": {"image/tiff", "image/x-tiff", "image/tiff-fx"},
    "image/bmp": {"image/bmp", "image/x-bmp", "image/x-ms-bmp"},
    "image/heic": _HEIF,
    "image/heif": _HEIF,
    "image/avif": {"image/avif", "image/avif-sequence"},
    "image/svg+xml": {"image/svg+xml"} | _XML,
    "image/jxl": {"image/jxl"},
    "image/jp2": {"image/jp2", "image/jpx", "image/jpm"},
    "image/vnd.adobe.photoshop": {"image/vnd.adobe.photoshop", "image/x-photoshop", "image/psd"},
    "image/x-canon-cr3": {"image/x-canon-cr3"},
    "application/pdf": {"application/pdf", "application/x-pdf"},
    "video/mp4": _ISO_BMFF,
    "video/quicktime": _ISO_BMFF,
    "video/3gpp": _ISO_BMFF,
    "audio/mp4": _ISO_BMFF,
    "video/webm": _MATROSKA,
    "video/x-matroska": _MATROSKA,
    "audio/ogg": _OGG,
    "audio/mpeg": {"audio/mpeg", "audio/mp3", "audio/x-mp3", "audio/mpeg3", "audio/x-mpeg"},
    "audio/aac": {"audio/aac", "audio/x-aac", "audio/aacp", "audio/x-hx-aac-adts"},
    "audio/wav": {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"},
    "audio/flac": {"audio/flac", "audio/x-flac"},
    "audio/aiff": {"audio/aiff", "audio/x-aiff"},
    "audio/amr": {"audio/amr", "audio/3gpp"},
    "audio/midi": {"audio/midi", "audio/x-midi", "audio/mid"},
    "video/x-msvideo": {"video/x-msvideo", "video/avi", "video/msvideo"},
    "video/x-ms-asf": {"video/x-ms-asf", "video/x-ms-wmv", "audio/x-ms-wma", "video/x-ms-wma"},
    "video/mp2t": {"video/mp2t"},
    "video/mpeg": {"video/mpeg"},
    "video/x-flv": {"video/x-flv"},
    "application/zip": _ZIP_BASED,
    "application/x-ole-storage": _OLE,
    "application/gzip": {"application/gzip", "application/x-gzip"},
    "application/x-tar": {"application/x-tar"},
    "application/x-7z-compressed": {"application/x-7z-compressed"},
    "application/vnd.rar": {"application/vnd.rar", "application/x-rar-compressed"},
    "application/x-xz": {"application/x-xz"},
    "application/x-bzip2": {"application/x-bzip2"},
    "application/zstd": {"application/zstd"},
    "application/rtf": {"application/rtf", "text/rtf"},
    "application/postscript": {"application/postscript"},
    "application/vnd.sqlite3": {"application/vnd.sqlite3", "application/x-sqlite3"},
}
TEXT_SNIFFED = {"text/plain", "application/json", "application/xml"}
# Text claims a text file may keep as its content type (they say how to read it).
_REFINED_TEXT = {
    "text/plain": "text/plain",
    "text/csv": "text/csv",
    "application/csv": "text/csv",
    "text/x-csv": "text/csv",
    "text/comma-separated-values": "text/csv",
    "text/tab-separated-values": "text/tab-separated-values",
    "application/json": "application/json",
    "text/json": "application/json",
    "application/x-ndjson": "application/x-ndjson",
    "text/markdown": "text/markdown",
    "text/x-markdown": "text/markdown",
    "application/xml": "application/xml",
    "text/xml": "application/xml",
}
# Excel on Windows labels every .csv it owns as this.
_TEXT_TOO = {"application/vnd.ms-excel", "application/x-yaml", "application/yaml"}
_RECOGNISED = set().union(*ACCEPTED.values()) | set(_REFINED_TEXT)

_EXTENSIONS = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg", "jfif": "image/jpeg",
    "png": "image/png", "apng": "image/png", "gif": "image/gif", "webp": "image/webp",
    "tif": "image/tiff", "tiff": "image/tiff", "bmp": "image/bmp", "heic": "image/heic",
    "heif": "image/heif", "hif": "image/heif", "avif": "image/avif", "svg": "image/svg+xml",
    "jxl": "image/jxl", "jp2": "image/jp2", "psd": "image/vnd.adobe.photoshop",
    "pdf": "application/pdf",
    "mp4": "video/mp4", "m4v": "video/mp4", "mov": "video/quicktime", "qt": "video/quicktime",
    "3gp": "video/3gpp", "3g2": "video/3gpp2", "m4a": "audio/mp4", "m4b": "audio/mp4",
    "webm": "video/webm", "mkv": "video/x-matroska", "mka": "audio/x-matroska",
    "ogg": "audio/ogg", "oga": "audio/ogg", "ogv": "video/ogg", "opus": "audio/opus",
    "mp3": "audio/mpeg", "aac": "audio/aac", "wav": "audio/wav", "flac": "audio/flac",
    "aif": "audio/aiff", "aiff": "audio/aiff", "amr": "audio/amr", "mid": "audio/midi",
    "midi": "audio/midi", "avi": "video/x-msvideo", "wmv": "video/x-ms-wmv",
    "wma": "audio/x-ms-wma", "asf": "video/x-ms-asf", "ts": "video/mp2t", "mpg": "video/mpeg",
    "mpeg": "video/mpeg", "flv": "video/x-flv",
    "txt": "text/plain", "text": "text/plain", "log": "text/plain", "csv": "text/csv",
    "tsv": "text/tab-separated-values", "tab": "text/tab-separated-values",
    "json": "application/json", "ndjson": "application/x-ndjson", "jsonl": "application/x-ndjson",
    "md": "text/markdown", "markdown": "text/markdown", "xml": "application/xml",
    "zip": "application/zip",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation", "epub": "application/epub+zip",
    "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint", "gz": "application/gzip", "tgz": "application/gzip",
    "tar": "application/x-tar", "7z": "application/x-7z-compressed", "rar": "application/vnd.rar",
    "xz": "application/x-xz", "bz2": "application/x-bzip2", "zst": "application/zstd",
    "rtf": "application/rtf", "ps": "application/postscript", "eps": "application/postscript",
    "sqlite": "application/vnd.sqlite3", "db": "application/vnd.sqlite3",
    "html": "text/html", "htm": "text/html", "shtml": "text/html", "xhtml": "application/xhtml+xml",
    "xht": "application/xhtml+xml", "js": "text/javascript", "mjs": "text/javascript",
    "hta": "application/hta", "php": "application/x-php", "phtml": "application/x-php",
    "sh": "text/x-shellscript",
}  # fmt: skip


def normalise(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def collect(declared_type: str, filename: str) -> list[Claim]:
    """The declared type first (it is what S3 will serve), then the extension."""
    claims = []
    declared = normalise(declared_type)
    if declared not in GENERIC:
        claims.append(Claim("declared type", declared, declared))
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")
    if suffix in _EXTENSIONS:
        claims.append(Claim("extension", _EXTENSIONS[suffix], f".{suffix}"))
    return claims


def active_claim(claims: list[Claim]) -> Claim | None:
    return next((claim for claim in claims if claim.content_type in ACTIVE), None)


def is_text_claim(content_type: str) -> bool:
    return (
        content_type.startswith("text/")
        or content_type in _REFINED_TEXT
        or content_type in _TEXT_TOO
        or content_type.endswith(("+json", "+xml"))
    )


@dataclass(frozen=True)
class Reconciled:
    content_type: str
    # True when the bytes were not recognised and a media claim still needs a decoder's word.
    needs_probe: bool = False


def reconcile(sniffed: str, claims: list[Claim]) -> Reconciled:
    """The content type to keep, or CONTENT_TYPE_MISMATCH / UNSUPPORTED_TYPE."""
    for claim in claims:
        if not _agrees(sniffed, claim.content_type):
            raise MediaRejected(
                Verdict.CONTENT_TYPE_MISMATCH,
                f"The {claim.source} says {claim.label}, but the bytes are {_describe(sniffed)}.",
            )
    if sniffed in EXECUTABLE_TYPES:
        raise MediaRejected(Verdict.UNSUPPORTED_TYPE, "Executable programs are not accepted.")
    if sniffed == OCTET_STREAM:
        media = next(
            (c.content_type for c in claims if c.content_type.startswith(("audio/", "video/"))),
            None,
        )
        return Reconciled(media, needs_probe=True) if media else Reconciled(OCTET_STREAM)
    return Reconciled(_refine(sniffed, claims))


def _agrees(sniffed: str, claim: str) -> bool:
    if claim.endswith("/*"):
        return sniffed.startswith(claim[:-1])
    if claim in ACCEPTED.get(sniffed, {sniffed}):
        return True
    if sniffed in TEXT_SNIFFED:
        return is_text_claim(claim)
    if sniffed == OCTET_STREAM:
        # Bytes we do not know may be a format we do not know; but not one we would have known,
        # except audio and video, whose rarer containers a decoder may still recognise.
        return claim not in _RECOGNISED or claim.startswith(("audio/", "video/"))
    return False


def _refine(sniffed: str, claims: list[Claim]) -> str:
    if sniffed in TEXT_SNIFFED:
        for claim in claims:
            refined = _REFINED_TEXT.get(claim.content_type)
            if claim.content_type == "application/vnd.ms-excel":
                refined = "text/csv"
            if refined and (refined != "application/xml" or sniffed == "application/xml"):
                return refined
        return sniffed
    if sniffed in ("application/zip", "application/x-ole-storage"):
        # Office documents are zip or OLE files; the claim names which, and it agreed.
        for claim in claims:
            if claim.content_type in ACCEPTED[sniffed]:
                return _ZIP_ALIASES.get(claim.content_type, claim.content_type)
    return sniffed


def _describe(sniffed: str) -> str:
    if sniffed == OCTET_STREAM:
        return "not a format Depot recognises"
    if sniffed == "text/plain":
        return "plain text"
    return sniffed
