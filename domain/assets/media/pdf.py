"""PDF: page count, document info, a text excerpt, and the first page rendered on demand.

pypdfium2 (PDFium, Chrome's PDF engine, in a self-contained wheel) does all of it: it opens the
file by path without reading it into memory, renders a page at exactly the scale asked, and
extracts text. PDFium is not thread-safe and the embedded worker runs jobs in threads, so every
call into it holds one lock.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from domain.assets.media.errors import corrupt

EXCERPT_CHARS = 1000
EXCERPT_PAGES = 5
_LOCK = threading.Lock()
_INFO_KEYS = {
    "Title": "title",
    "Author": "author",
    "Subject": "subject",
    "Keywords": "keywords",
    "Creator": "creator",
    "Producer": "producer",
}
_PDF_DATE = re.compile(
    r"D?:?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?([Zz+-])?(\d{2})?'?(\d{2})?"
)


def analyse_pdf(path: Path) -> tuple[dict[str, Any], PdfPagePicture | None]:
    with _LOCK:
        try:
            document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as error:
            if getattr(error, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
                # A protected document is a legitimate upload; it just cannot be looked into.
                return {"encrypted": True}, None
            raise corrupt("PDF", error) from error
        try:
            return _read(document, path)
        except pdfium.PdfiumError as error:
            raise corrupt("PDF", error) from error
        finally:
            document.close()


def _read(document: pdfium.PdfDocument, path: Path) -> tuple[dict[str, Any], PdfPagePicture | None]:
    pages = len(document)
    metadata: dict[str, Any] = {"pageCount": pages, "version": _version(document)}
    info = document.get_metadata_dict(skip_empty=True)
    for key, name in _INFO_KEYS.items():
        value = _clean(info.get(key, ""))
        if value:
            metadata[name] = value[:500]
    for key, name in (("CreationDate", "createdAt"), ("ModDate", "modifiedAt")):
        moment = _date(info.get(key, ""))
        if moment:
            metadata[name] = moment
    if pages == 0:
        return metadata, None
    width, height = document.get_page_size(0)
    metadata["pageWidth"], metadata["pageHeight"] = round(width, 2), round(height, 2)
    excerpt = _excerpt(document, pages)
    if excerpt:
        metadata["textExcerpt"] = excerpt
    return metadata, PdfPagePicture(path=path, index=0, width=round(width), height=round(height))


def _excerpt(document: pdfium.PdfDocument, pages: int) -> str:
    parts: list[str] = []
    length = 0
    for index in range(min(pages, EXCERPT_PAGES)):
        page = document[index]
        try:
            textpage = page.get_textpage()
            text = _clean(textpage.get_text_range())
            textpage.close()
        finally:
            page.close()
        if text:
            parts.append(text)
            length += len(text) + 1
        if length >= EXCERPT_CHARS:
            break
    return " ".join(parts)[:EXCERPT_CHARS]


def _clean(text: str) -> str:
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _version(document: pdfium.PdfDocument) -> str | None:
    version = document.get_version()
    return f"{version // 10}.{version % 10}" if version else None


def _date(value: str) -> str | None:
    """A PDF date (D:YYYYMMDDHHmmSSOHH'mm') as ISO 8601, or None if it is not one."""
    match = _PDF_DATE.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, sign, zone_h, zone_m = match.groups()
    try:
        moment = datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0),
        )  # fmt: skip
        if sign in ("Z", "z"):
            moment = moment.replace(tzinfo=UTC)
        elif sign in ("+", "-"):
            offset = timedelta(hours=int(zone_h or 0), minutes=int(zone_m or 0))
            moment = moment.replace(tzinfo=timezone(offset if sign == "+" else -offset))
    except ValueError:
        return None
    return moment.isoformat()


@dataclass
class PdfPagePicture:
    path: Path
    index: int
    width: int  # in points, as PDFium reports it (page rotation applied)
    height: int

    def load(self, max_side: int) -> Image.Image:
        # Vector pages render at exactly the size wanted: no reduction step, no upscaling blur.
        with _LOCK:
            try:
                document = pdfium.PdfDocument(str(self.path))
                try:
                    page = document[self.index]
                    width, height = page.get_size()
                    scale = max_side / max(width, height, 1.0)
                    bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255))
                    image = bitmap.to_pil().convert("RGB")
                    bitmap.close()
                    page.close()
                finally:
                    document.close()
            except pdfium.PdfiumError as error:
                raise corrupt("PDF", error) from error
        return image
