"""Active content: files a browser would run if it were served from Depot's (or S3's) origin.

HTML and XHTML are refused outright, however they are labelled, and so are claims of an active
type (the object would be served with it). SVG and XML are scanned, the whole file in chunks:
script elements, event-handler attributes, script URLs, elements that embed documents, internal
entities (a browser expands them, so they can assemble markup the scan would not see) and
stylesheets (XSLT can run script). Character references are decoded first, as a browser would.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from domain.assets.media.claims import Claim, active_claim
from domain.assets.media.errors import MediaRejected, Verdict
from domain.assets.media.sniff import text_encoding_from_bom

ALWAYS_ACTIVE = {
    "text/html": "an HTML page",
    "application/xhtml+xml": "an XHTML page",
    "text/x-shellscript": "a shell script",
    "application/x-php": "a PHP script",
}
SCANNED = {"image/svg+xml", "application/xml"}

CHUNK = 1024 * 1024
OVERLAP = 256
_ACTIVE_MARKUP = re.compile(
    r"<\s*(?:[\w.-]+:)?(?:script|iframe|embed|object|foreignobject|handler|listener)\b"
    r"|\s(?:[\w.-]+:)?on[a-z]+\s*="
    r"|(?:j\s*a\s*v\s*a|v\s*b)\s*s\s*c\s*r\s*i\s*p\s*t\s*:"
    r"|data\s*:\s*(?:text/html|application/xhtml)"
    r"|<!entity"
    r"|<\?xml-stylesheet",
    re.IGNORECASE,
)
_CHARACTER_REFERENCE = re.compile(r"&#(x[0-9a-f]{1,6}|[0-9]{1,7});?", re.IGNORECASE)


def check(path: Path, sniffed: str, claims: list[Claim]) -> None:
    """Raise ACTIVE_CONTENT if the file, or what it claims to be, would run in a browser."""
    if sniffed in ALWAYS_ACTIVE:
        posing = next((c for c in claims if c.content_type != sniffed), None)
        as_what = f" posing as {posing.label}" if posing else ""
        raise MediaRejected(
            Verdict.ACTIVE_CONTENT,
            f"The file is {ALWAYS_ACTIVE[sniffed]}{as_what}; files a browser would run are "
            "not accepted.",
        )
    claim = active_claim(claims)
    if claim is not None:
        raise MediaRejected(
            Verdict.ACTIVE_CONTENT,
            f"The {claim.source} {claim.label} would be run by a browser; it is not accepted.",
        )
    if sniffed in SCANNED:
        found = find_active_markup(path)
        if found:
            kind = "SVG" if sniffed == "image/svg+xml" else "XML"
            raise MediaRejected(
                Verdict.ACTIVE_CONTENT,
                f"The {kind} file contains script or active content ({found!r}); "
                "it is not accepted.",
            )


def find_active_markup(path: Path) -> str | None:
    """The first piece of active markup in the file, or None; reads it in chunks."""
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(0)
        encoding = text_encoding_from_bom(head) or "utf-8"
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        tail = ""
        while True:
            chunk = handle.read(CHUNK)
            text = tail + decoder.decode(chunk, final=not chunk)
            match = _ACTIVE_MARKUP.search(_decode_references(text))
            if match:
                return match.group(0).strip()[:40]
            if not chunk:
                return None
            # Keep the end: a marker may straddle two chunks.
            tail = text[-OVERLAP:]


def _decode_references(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        number = match.group(1)
        code = int(number[1:], 16) if number[0] in "xX" else int(number)
        return chr(code) if 0 < code <= 0x10FFFF else ""

    return _CHARACTER_REFERENCE.sub(replace, text)
