"""Loaders: each file type on small files the tests write (and the PDF the repo ships); corrupt,
unsupported and unreadable files are one-line errors; a missing library names the extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rag_retrievers.errors import MissingDependencyError
from rag_retrievers.ingest.loaders import (
    UnreadableFileError,
    list_files,
    load_bytes,
    load_file,
)

pytest.importorskip("pypdf", reason="the ingest extra is not installed")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "docs"


def make_pdf(pages: list[list[str]]) -> bytes:
    """A valid PDF whose pages hold these lines of text (Helvetica), written by hand."""

    def escape(line: str) -> str:
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        body = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({escape(x)}) Tj T*" for x in lines)
        stream = body + " ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream".encode())
        content = len(objects)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 "
            f"3 0 R >> >> /Contents {content} 0 R >>".encode()
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def test_pdf_one_unit_per_page_with_page_numbers() -> None:
    data = make_pdf([["Page one text."], [], ["Page three: Paris is in France."]])
    loaded = load_bytes(data, "guide.pdf", ".pdf")
    assert loaded.kind == "pdf"
    assert loaded.pages == 3
    assert [(u.page, u.parent_id) for u in loaded.units] == [
        (1, "guide.pdf#page-1"),  # page 2 has no text: no unit
        (3, "guide.pdf#page-3"),
    ]
    assert loaded.units[1].text == "Page three: Paris is in France."
    assert len(loaded.sha256) == 64


def test_the_shipped_pdf_has_four_pages_of_the_constitution() -> None:
    loaded = load_file(EXAMPLES / "constitution.pdf", EXAMPLES)
    assert loaded.source == "constitution.pdf"
    assert [u.page for u in loaded.units] == [1, 2, 3, 4]
    assert "thirty five Years" in loaded.units[2].text
    assert "To declare War" in loaded.units[1].text


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4\n1 0 obj garbage", "parsed|corrupt|no text"),
        (b"<html>not a pdf</html>", "not a PDF"),
        (make_pdf([[]]), "no text"),
    ],
)
def test_a_corrupt_or_empty_pdf_is_one_line(data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFileError, match=reason) as info:
        load_bytes(data, "broken.pdf", ".pdf")
    assert "\n" not in str(info.value)


def test_markdown_sections_carry_their_heading_path() -> None:
    text = (
        "Intro before any heading.\n\n"
        "# Guide\n\n"
        "## Install\nRun pip.\n\n```\n# a comment, not a heading\n```\n\n"
        "### Linux\nUse apt.\n\n"
        "## Empty\n"
        "Usage\n-----\nCall it.\n"
    )
    loaded = load_bytes(text.encode(), "docs/guide.md", ".md")
    assert [(u.heading, u.parent_id) for u in loaded.units] == [
        (None, "docs/guide.md#section-0"),
        ("Guide > Install", "docs/guide.md#section-1"),
        ("Guide > Install > Linux", "docs/guide.md#section-2"),
        ("Guide > Usage", "docs/guide.md#section-3"),  # a setext heading; "Empty" has no text
    ]
    assert "# a comment, not a heading" in loaded.units[1].text
    assert loaded.units[3].text == "Usage\n-----\nCall it."


def test_html_sections_drop_scripts_and_navigation() -> None:
    html = (
        "<html><head><title>Page</title><style>p {}</style></head><body>"
        "<nav>Home | About</nav><p>Lead   text\nhere.</p>"
        "<h1>Main</h1><p>First <b>bold</b> para.</p><script>var x = 1;</script>"
        "<h2>Sub</h2><ul><li>one</li><li>two</li></ul><pre>keep\n  this</pre>"
        "</body></html>"
    )
    loaded = load_bytes(html.encode(), "page.html", ".html")
    assert [(u.heading, u.text) for u in loaded.units] == [
        ("Page", "Lead text here."),
        ("Main", "Main\n\nFirst bold para."),
        ("Main > Sub", "Sub\n\none\n\ntwo\n\nkeep\n  this"),
    ]


def test_text_files_bom_line_ends_and_bad_encodings() -> None:
    loaded = load_bytes("\ufeffLine one\r\nLine two".encode(), "a.txt", ".txt")
    assert loaded.units[0].text == "Line one\nLine two"
    assert loaded.units[0].parent_id == "a.txt"
    with pytest.raises(UnreadableFileError, match="not UTF-8"):
        load_bytes("caf\xe9".encode("latin-1"), "b.txt", ".txt")
    with pytest.raises(UnreadableFileError, match="binary"):
        load_bytes(b"\x00\x01\x02", "c.txt", ".txt")
    with pytest.raises(UnreadableFileError, match="no text"):
        load_bytes(b"  \n ", "d.txt", ".txt")
    with pytest.raises(UnreadableFileError, match=r"unsupported file type \.docx"):
        load_bytes(b"PK", "e.docx", ".docx")


def test_jsonl_records_are_units_with_their_titles() -> None:
    data = (
        b'{"_id": "d1", "title": "Vitamin D", "text": "Sunlight makes it.", '
        b'"metadata": {"year": 2001, "tags": {"a": 1}}}\n\n{"id": 7, "text": "Seven."}\n'
    )
    loaded = load_bytes(data, "corpus.jsonl", ".jsonl")
    assert [(u.parent_id, u.heading, dict(u.metadata)) for u in loaded.units] == [
        ("corpus.jsonl#record-d1", "Vitamin D", {"year": 2001}),
        ("corpus.jsonl#record-7", None, {}),
    ]
    with pytest.raises(UnreadableFileError, match="line 1 is not valid JSON"):
        load_bytes(b"{nope", "x.jsonl", ".jsonl")


def test_list_files_reports_unsupported_files_and_links(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# B\ntext", encoding="utf-8")
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    (tmp_path / "c.docx").write_bytes(b"PK")
    (tmp_path / ".hidden.txt").write_text("h", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(tmp_path / "a.txt")
    found, skipped = list_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.txt", "sub/b.md"]
    assert skipped == [
        ("c.docx", "unsupported file type .docx"),
        ("link.txt", "a symbolic link (not followed)"),
    ]


def test_a_missing_library_names_the_ingest_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdf", None)  # import pypdf now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"rag-retrievers\[ingest\]"):
        load_bytes(make_pdf([["x"]]), "a.pdf", ".pdf")
    monkeypatch.setitem(sys.modules, "bs4", None)
    with pytest.raises(MissingDependencyError, match=r"beautifulsoup4 .*\[ingest\]"):
        load_bytes(b"<p>x</p>", "a.html", ".html")
