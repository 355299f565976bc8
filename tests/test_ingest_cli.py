"""``rag-retrievers index --input DIR`` and ``ask`` citing a file and page: the shipped
examples/docs folder answers offline with ``constitution.pdf p. 3``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag_retrievers.app.citations import cited_sources, source_label
from rag_retrievers.cli import main
from rag_retrievers.records import Answer, Document, Hit

pytest.importorskip("pypdf", reason="the ingest extra is not installed")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "docs"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(EXAMPLES, folder)
    return folder


def test_index_a_folder_then_again(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    col = tmp_path / "col"
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n%%EOF")
    assert main(["index", str(col), "--input", str(docs), "-q"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("rag-retrievers: skipped broken.pdf: ")
    assert len(err.strip().splitlines()) == 1
    assert "6 files (5 new, 1 failed): 4 pages read," in out
    assert "with BM25()" in out
    (docs / "gettysburg-address.txt").unlink()
    assert main(["index", str(col), "--input", str(docs), "-q"]) == 0
    out = capsys.readouterr().out
    assert "(4 unchanged, 1 removed, 1 failed): 3 deleted;" in out


def test_index_document_files_and_bad_combinations(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    col = tmp_path / "col"
    files = [str(docs / "bill-of-rights.html"), str(docs / "gettysburg-address.txt")]
    assert main(["index", str(col), "--input", *files, "--chunk-size", "64"]) == 0
    assert "2 files (2 new)" in capsys.readouterr().out
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "1", "text": "x"}\n', encoding="utf-8")
    assert main(["index", str(tmp_path / "c2"), "--input", str(corpus), "--chunk-size", "9"]) == 2
    assert "apply to folders and document files" in capsys.readouterr().err
    assert main(["index", str(tmp_path / "c3"), "--input", str(docs), str(docs)]) == 2
    assert "one folder, or document files" in capsys.readouterr().err
    assert main(["index", str(col), "--input", str(docs), "--chunk-size", "0"]) == 2
    assert "chunk size must be an int >= 1" in capsys.readouterr().err


def test_ask_cites_a_file_and_page(
    docs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    col = tmp_path / "col"
    assert main(["index", str(col), "--input", str(docs), "--retriever", "bm25", "-q"]) == 0
    capsys.readouterr()
    assert main(["ask", str(col), "How old must the President be?"]) == 0
    out = capsys.readouterr().out
    assert "thirty five Years" in out
    assert "  [1] constitution.pdf p. 3  " in out
    question = "What does the Fourth Amendment protect against?"
    assert main(["ask", str(col), question, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "unreasonable searches and seizures" in report["text"]
    (first, *_) = report["sources"]
    assert first["source"] == "bill-of-rights.html"
    assert first["heading"] == "The Bill of Rights > Amendment IV"
    assert first["label"] == "bill-of-rights.html, The Bill of Rights > Amendment IV"
    assert first["id"] in report["citations"]


def test_citation_labels() -> None:
    def hit(doc_id: str, **metadata: object) -> Hit:
        return Hit(
            id=doc_id, score=1.0, rank=1, document=Document(id=doc_id, text="t", metadata=metadata)
        )

    assert source_label(hit("a#0", source="a.txt")) == "a.txt"
    assert source_label(hit("a#0", source="a.md", heading="Guide > Install")) == (
        "a.md, Guide > Install"
    )
    assert source_label(hit("a#0", source="a.pdf", page=2, heading="x")) == "a.pdf p. 2"
    assert source_label(hit("plain", page=2)) == "plain"
    answer = Answer(
        text="x [2]", citations=["b#1"], contexts=[hit("a#0"), hit("b#1", source="b.pdf", page=9)]
    )
    (cited,) = cited_sources(answer)
    assert cited.to_json() == {
        "number": 2,
        "id": "b#1",
        "label": "b.pdf p. 9",
        "source": "b.pdf",
        "page": 9,
        "heading": None,
    }
