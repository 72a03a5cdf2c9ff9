"""PDF, text, CSV and JSON: the facts a listing shows, read without loading whole files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from domain.assets import media
from domain.assets.media import Kind, MediaRejected, Verdict
from tests.domain.media import corpus


def test_pdf_pages_info_text_and_first_page(tmp_path: Path) -> None:
    path = corpus.pdf(
        tmp_path / "report.pdf",
        ["Quarterly results (draft)", "Second page text", "Third page"],
        title="Annual Report",
        author="Ann Author",
    )
    analysis, renditions = media.process(
        path, declared_type="application/pdf", filename="report.pdf"
    )
    assert (analysis.content_type, analysis.kind) == ("application/pdf", Kind.PDF)
    meta = analysis.metadata
    assert (meta["pageCount"], meta["title"], meta["author"]) == (3, "Annual Report", "Ann Author")
    assert meta["createdAt"] == "2024-05-01T12:30:00+02:00"
    assert meta["textExcerpt"].startswith("Quarterly results (draft) Second page text")
    assert (meta["pageWidth"], meta["pageHeight"]) == (612, 792)
    assert [(r.width, r.height) for r in renditions] == [(198, 256), (792, 1024), (792, 1024)]
    page = Image.open(io.BytesIO(renditions[1].data)).convert("L")
    assert page.crop((0, 0, 10, 10)).getextrema() == (255, 255)  # white paper
    darkest, _ = page.crop((90, 60, 500, 110)).getextrema()
    assert isinstance(darkest, int)
    assert darkest < 100  # the heading's ink


def test_pdf_renders_at_the_size_asked_not_larger(tmp_path: Path) -> None:
    path = corpus.pdf(tmp_path / "a.pdf", ["x"], title="T", author="A")
    analysis = media.analyse(path)
    assert analysis.picture is not None
    width, height = analysis.picture.load(400).size
    assert height == 400
    assert width in (309, 310)  # PDFium rounds the scaled width up


def _text(path: Path, declared_type: str = "", filename: str = "") -> media.Analysis:
    analysis = media.analyse(path, declared_type=declared_type, filename=filename)
    assert analysis.kind == Kind.TEXT
    return analysis


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),
        ("cp1252", "cp1252"),
        ("shift_jis", "cp932"),  # Windows' superset of Shift JIS: what such files really use
    ],
)
def test_text_encoding_and_lines(tmp_path: Path, encoding: str, expected: str) -> None:
    lines = (
        ["これは日本語のテキストです。", "二行目です。", "三行目"]
        if encoding == "shift_jis"
        else ["Smörgåsbord à la carte, naïve café", "second line", "third, with no end"]
    )
    path = corpus.write(tmp_path / "notes.txt", "\r\n".join(lines), encoding)
    analysis = _text(path, declared_type="text/plain", filename="notes.txt")
    assert analysis.content_type == "text/plain"
    assert analysis.metadata["encoding"] == expected
    assert analysis.metadata["lineCount"] == 3
    assert analysis.metadata["textExcerpt"].startswith(lines[0])


def test_ascii_is_named_ascii(tmp_path: Path) -> None:
    path = corpus.write(tmp_path / "a.txt", corpus.lines(["plain", "ascii"]))
    assert _text(path).metadata == {
        "encoding": "ascii",
        "lineCount": 2,
        "textExcerpt": "plain\nascii",
    }


def test_csv_columns_and_rows(tmp_path: Path) -> None:
    rows = ["name,city,age", "Åsa,Malmö,31", '"Bob, Jr.",Paris,40', "Chen,Beijing,28"]
    path = corpus.write(tmp_path / "people.csv", corpus.lines(rows), "cp1252")
    analysis = _text(path, declared_type="text/csv", filename="people.csv")
    meta = analysis.metadata
    assert analysis.content_type == "text/csv"
    assert meta["encoding"] == "cp1252"
    assert (meta["columns"], meta["rowCount"], meta["columnCount"]) == (
        ["name", "city", "age"],
        3,
        3,
    )
    assert (meta["delimiter"], meta["hasHeader"], meta["raggedRows"]) == (",", True, 0)


def test_csv_with_semicolons_from_excel(tmp_path: Path) -> None:
    rows = ["Produkt;Preis;Menge"] + [f"Artikel {i};{i},50;{i * 3}" for i in range(50)]
    path = corpus.write(tmp_path / "export.csv", corpus.lines(rows), "utf-8-sig")
    analysis = _text(path, declared_type="application/vnd.ms-excel", filename="export.csv")
    meta = analysis.metadata
    assert analysis.content_type == "text/csv"
    assert (meta["delimiter"], meta["columns"], meta["rowCount"]) == (
        ";",
        ["Produkt", "Preis", "Menge"],
        50,
    )


def test_tsv_columns(tmp_path: Path) -> None:
    rows = ["id\tscore", "1\t9.5", "2\t7.25", "3"]
    path = corpus.write(tmp_path / "scores.tsv", corpus.lines(rows))
    meta = _text(path, filename="scores.tsv").metadata
    assert (meta["columns"], meta["rowCount"], meta["raggedRows"]) == (["id", "score"], 3, 1)


def test_json_shape(tmp_path: Path) -> None:
    path = corpus.write(tmp_path / "data.json", '{"name": "Depot", "tags": [1, 2], "ok": true}')
    analysis = _text(path, declared_type="application/json", filename="data.json")
    assert analysis.content_type == "application/json"
    assert analysis.metadata["keys"] == ["name", "tags", "ok"]
    assert analysis.metadata["jsonType"] == "object"
    array = corpus.write(tmp_path / "list.json", "[1, 2, 3]")
    assert _text(array).metadata["length"] == 3


def test_declared_json_that_does_not_parse_is_corrupt(tmp_path: Path) -> None:
    path = corpus.write(tmp_path / "bad.json", '{"name": "Depot",')
    with pytest.raises(MediaRejected) as caught:
        media.analyse(path, declared_type="application/json")
    assert caught.value.code == Verdict.CORRUPT_FILE


def test_deeply_nested_json_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    path = corpus.write(tmp_path / "deep.json", "[" * 200_000 + "]" * 200_000)
    with pytest.raises(MediaRejected) as caught:
        media.analyse(path, filename="deep.json")
    assert caught.value.code == Verdict.CORRUPT_FILE


def test_text_that_only_starts_like_json_stays_text(tmp_path: Path) -> None:
    path = corpus.write(tmp_path / "notes", "{braces} are how this note starts\n")
    assert _text(path).content_type == "text/plain"


def test_a_large_text_file_is_counted_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("w", encoding="utf-8") as out:
        for index in range(300_000):
            out.write(f"2024-05-01 12:00:{index % 60:02d} line {index} — ok\n")
    meta = _text(path).metadata
    assert (meta["encoding"], meta["lineCount"]) == ("utf-8", 300_000)
