"""Text, CSV and JSON: encoding, line and row counts, CSV columns, JSON's shape.

Everything streams: a file is read in chunks, never whole, except JSON small enough to parse
(json has no streaming parser in the standard library, and parsed JSON takes many times its
size in memory). charset-normalizer guesses legacy encodings, from a sample, only when the file
is not valid UTF-8 (most are, and a strict UTF-8 pass over the file is cheap and certain).
"""

from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes

from domain.assets.media.errors import MediaRejected, Verdict, corrupt
from domain.assets.media.sniff import text_encoding_from_bom

CHUNK = 1024 * 1024
SAMPLE_BYTES = 1024 * 1024
CSV_SNIFF_CHARS = 16 * 1024
JSON_PARSE_LIMIT = 4 * 1024 * 1024
EXCERPT_CHARS = 500
MAX_COLUMNS_SHOWN = 200
MAX_KEYS_SHOWN = 50
CSV_TYPES = {"text/csv", "text/tab-separated-values"}
_PREFERRED_LEGACY = ("cp1252", "iso8859-1", "iso8859-15")


def analyse_text(
    path: Path, content_type: str, *, json_claimed: bool
) -> tuple[str, dict[str, Any]]:
    """The (possibly corrected) content type and the facts; JSON that does not parse is
    CORRUPT_FILE when it was declared JSON, and plain text when only its first byte said so."""
    encoding = detect_encoding(path)
    metadata: dict[str, Any] = {"encoding": encoding, **_lines(path, encoding)}
    if content_type in CSV_TYPES:
        metadata.update(_table(path, encoding, tabs=content_type == "text/tab-separated-values"))
    elif content_type == "application/json":
        try:
            metadata.update(_json(path, encoding))
        except MediaRejected:
            if json_claimed:
                raise
            content_type = "text/plain"
    return content_type, metadata


def detect_encoding(path: Path) -> str:
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
        bom = text_encoding_from_bom(sample)
        if bom:
            return bom
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        ascii_only = True
        try:
            while chunk := handle.read(CHUNK):
                decoder.decode(chunk)
                ascii_only = ascii_only and chunk.isascii()
            decoder.decode(b"", final=True)
            return "ascii" if ascii_only else "utf-8"
        except UnicodeDecodeError:
            pass
    return _guess_legacy(sample)


def _guess_legacy(sample: bytes) -> str:
    matches = from_bytes(sample)
    best = matches.best()
    if best is None:
        return "cp1252"
    # A short sample fits several code pages equally well; prefer the one most files use.
    tied = {
        codecs.lookup(match.encoding).name
        for match in matches
        if match.chaos <= best.chaos and match.coherence >= best.coherence
    }
    for preferred in _PREFERRED_LEGACY:
        if preferred in tied:
            return preferred
    return codecs.lookup(best.encoding).name


def _lines(path: Path, encoding: str) -> dict[str, Any]:
    lines = carriage_returns = 0
    last = ""
    excerpt = ""
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        while chunk := handle.read(CHUNK):
            if len(excerpt) < EXCERPT_CHARS:
                excerpt += chunk[: EXCERPT_CHARS - len(excerpt)]
            lines += chunk.count("\n")
            carriage_returns += chunk.count("\r")
            last = chunk[-1]
    if lines == 0 and carriage_returns:
        lines = carriage_returns  # classic Mac line ends
    if last and last not in "\r\n":
        lines += 1  # the last line has no line end
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in excerpt).strip()
    return {"lineCount": lines, "textExcerpt": cleaned} if cleaned else {"lineCount": lines}


def _table(path: Path, encoding: str, *, tabs: bool) -> dict[str, Any]:
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        sample = handle.read(CSV_SNIFF_CHARS)
        if len(sample) == CSV_SNIFF_CHARS and "\n" in sample:
            sample = sample[: sample.rindex("\n") + 1]  # whole rows only
        handle.seek(0)
        sniffer = csv.Sniffer()
        dialect: Any
        try:
            dialect = sniffer.sniff(sample, delimiters="\t" if tabs else ",;\t|")
        except csv.Error:
            dialect = csv.excel_tab if tabs else csv.excel
        try:
            has_header = sniffer.has_header(sample)
        except csv.Error:
            has_header = True
        rows, ragged, header = 0, 0, None
        try:
            for row in csv.reader(handle, dialect):
                if not row:
                    continue
                if header is None:
                    header = row
                    if has_header:
                        continue
                rows += 1
                ragged += len(row) != len(header)
        except csv.Error as error:
            raise corrupt("CSV file", f"row {rows + 1}: {error}") from error
    width = len(header or ())
    found: dict[str, Any] = {
        "delimiter": dialect.delimiter,
        "hasHeader": has_header,
        "rowCount": rows,
        "columnCount": width,
        "raggedRows": ragged,
    }
    if has_header and header is not None:
        found["columns"] = [name.strip()[:100] for name in header[:MAX_COLUMNS_SHOWN]]
    return found


def _json(path: Path, encoding: str) -> dict[str, Any]:
    if path.stat().st_size > JSON_PARSE_LIMIT:
        with path.open(encoding=encoding, errors="replace") as handle:
            first = handle.read(4096).lstrip("\ufeff \t\r\n")[:1]
        return {"jsonType": {"{": "object", "[": "array"}.get(first, "value"), "validated": False}
    try:
        with path.open(encoding=encoding) as handle:
            value = json.load(handle)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        message = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise MediaRejected(
            Verdict.CORRUPT_FILE, f"The JSON file does not parse: {message[:200]}"
        ) from error
    found: dict[str, Any] = {"validated": True}
    if isinstance(value, dict):
        found.update(jsonType="object", keyCount=len(value))
        found["keys"] = [str(key)[:100] for key in list(value)[:MAX_KEYS_SHOWN]]
    elif isinstance(value, list):
        found.update(jsonType="array", length=len(value))
    else:
        found["jsonType"] = "value"
    return found
