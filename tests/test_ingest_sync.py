"""Folder runs kept in step: only changed files are re-read and encoded (counted), chunks of
changed and deleted files go, failures are reported and skipped, a killed run leaves nothing
stale, and the record in the collection is read as untrusted input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rag_retrievers.adapters.bm25 import BM25

from rag_retrievers.base import Retriever
from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.ingest import state as state_module
from rag_retrievers.ingest.state import STATE, read_state
from rag_retrievers.ingest.sync import Failure, sync_folder
from rag_retrievers.records import Document

pytest.importorskip("langchain_text_splitters", reason="the ingest extra is not installed")

LONG = " ".join(
    f"The river {name} floods in spring number {i}." for i in range(40) for name in "ab"
)


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of every chunk BM25 indexes (encodes) from here on."""
    seen: list[str] = []
    original = BM25._add

    def counting(self: BM25, documents: list[Document]) -> None:
        seen.extend(doc.id for doc in documents)
        original(self, documents)

    monkeypatch.setattr(BM25, "_add", counting)
    return seen


def write_docs(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_text("Paris is the capital of France.", encoding="utf-8")
    (folder / "guide.md").write_text("# Guide\n\n## Install\n" + LONG, encoding="utf-8")
    (folder / "page.html").write_text("<h1>Bees</h1><p>Bees make honey.</p>", encoding="utf-8")


def ids_of(collection: Path) -> set[str]:
    """Every chunk id the collection holds (of the files these tests write)."""
    retriever = Retriever.open(collection)
    sources = ("a.txt", "guide.md", "page.html", "new.txt")
    ids = {f"{s}#{n}" for s in sources for n in range(100)}
    found = {i for i in ids if retriever.get(i) is not None}  # type: ignore[attr-defined]
    assert len(found) == len(retriever)
    return found


def test_change_one_file_of_three_encodes_only_its_chunks(
    tmp_path: Path, encoded: list[str]
) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    first = sync_folder(docs, col, chunk_size=32, chunk_overlap=4)
    assert (first.new, first.files, first.failures) == (3, 3, ())
    n_guide = sum(1 for i in encoded if i.startswith("guide.md#"))
    assert n_guide > 3
    assert first.chunks == len(encoded) == first.total == n_guide + 2

    encoded.clear()
    again = sync_folder(docs, col)  # the chunk sizes are the collection's own
    assert (again.unchanged, again.chunks, again.deleted, encoded) == (3, 0, 0, [])
    assert again.summary().endswith(f"nothing to do; the collection holds {first.total} documents")

    (docs / "a.txt").write_text("Lyon is a city in France. It has silk.", encoding="utf-8")
    third = sync_folder(docs, col)
    assert encoded == ["a.txt#0"]  # only the changed file's chunk was encoded
    assert (third.changed, third.unchanged, third.chunks, third.deleted) == (1, 2, 1, 1)
    retriever = Retriever.open(col)
    assert retriever.search("Lyon silk", k=1)[0].id == "a.txt#0"
    assert not retriever.search("Paris capital", k=5, filter={"source": "a.txt"})
    assert len(retriever) == first.total


def test_a_deleted_files_chunks_are_gone(tmp_path: Path) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    sync_folder(docs, col, chunk_size=32, chunk_overlap=4)
    assert any(i.startswith("guide.md#") for i in ids_of(col))
    (docs / "guide.md").unlink()
    report = sync_folder(docs, col)
    assert (report.removed, report.unchanged) == (1, 2)
    assert report.deleted > 3
    assert ids_of(col) == {"a.txt#0", "page.html#0"}
    assert set(read_state(col).files) == {"a.txt", "page.html"}  # type: ignore[union-attr]


def test_a_corrupt_pdf_is_reported_and_skipped(tmp_path: Path) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << garbage")
    (docs / "notes.docx").write_bytes(b"PK\x03\x04")
    seen: list[Failure] = []
    report = sync_folder(docs, col, on_failure=seen.append)
    assert [f.source for f in report.failures] == ["notes.docx", "broken.pdf"]
    assert seen == list(report.failures)
    line = str(report.failures[1])
    assert "\n" not in line
    assert line.startswith("skipped broken.pdf: ")
    assert "2 failed" in report.summary()
    assert report.new == 3
    assert "broken.pdf" not in read_state(col).files  # type: ignore[union-attr]
    # a failed file is tried again on the next run
    assert [f.source for f in sync_folder(docs, col).failures] == ["notes.docx", "broken.pdf"]


def test_a_file_that_becomes_unreadable_loses_its_old_chunks(tmp_path: Path) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    sync_folder(docs, col)
    (docs / "a.txt").write_bytes(b"\xff\xfe not utf-8 \xff")
    report = sync_folder(docs, col)
    assert [f.source for f in report.failures] == ["a.txt"]
    assert "a.txt#0" not in ids_of(col)


def test_changed_chunking_rereads_every_file(tmp_path: Path, encoded: list[str]) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    first = sync_folder(docs, col, chunk_size=32, chunk_overlap=4)
    encoded.clear()
    report = sync_folder(docs, col, chunk_size=64, chunk_overlap=8)
    assert report.reread is not None
    assert "chunking changed" in report.reread
    assert report.changed == 3
    assert report.total == len(encoded) < first.total
    assert len(Retriever.open(col)) == report.total  # no chunk of the old size is left


def test_a_collection_saved_by_something_else_is_reread_in_full(tmp_path: Path) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    first = sync_folder(docs, col, chunk_size=32, chunk_overlap=4)
    other = Retriever.open(col)
    other.add([Document(id="extra", text="An extra document about rivers.")])
    other.save()
    report = sync_folder(docs, col)
    assert report.reread is not None
    assert report.changed == 3
    assert len(Retriever.open(col)) == first.total + 1  # the extra one stays, nothing doubles


def test_a_run_killed_before_its_save_is_finished_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    sync_folder(docs, col, chunk_size=32, chunk_overlap=4)
    before = ids_of(col)
    (docs / "guide.md").write_text("# Guide\n\nShort now: rivers.", encoding="utf-8")

    def killed(self: Retriever, documents: object, **options: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(BM25, "add", killed)
        with pytest.raises(KeyboardInterrupt):
            sync_folder(docs, col)
    assert ids_of(col) == before  # the saved collection did not change
    assert read_state(col).pending  # type: ignore[union-attr]
    report = sync_folder(docs, col)
    assert report.changed == 1
    assert ids_of(col) == {"a.txt#0", "page.html#0", "guide.md#0"}


def test_a_run_killed_after_its_save_leaves_no_stale_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    sync_folder(docs, col, chunk_size=32, chunk_overlap=4)
    (docs / "guide.md").write_text("# Guide\n\nShort now: rivers.", encoding="utf-8")
    (docs / "new.txt").write_text(LONG, encoding="utf-8")
    calls = []
    write = state_module.write_state

    def dies_on_the_second_write(root: Path, state: object) -> None:
        calls.append(state)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write(root, state)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr("rag_retrievers.ingest.sync.write_state", dies_on_the_second_write)
        with pytest.raises(KeyboardInterrupt):
            sync_folder(docs, col)
    (docs / "new.txt").write_text("Now a single sentence.", encoding="utf-8")
    report = sync_folder(docs, col)
    assert report.reread is not None
    assert ids_of(col) == {"a.txt#0", "page.html#0", "guide.md#0", "new.txt#0"}


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    with pytest.raises(InvalidInputError, match="not a folder"):
        sync_folder(docs, col)
    docs.mkdir()
    (docs / "x.docx").write_bytes(b"PK")
    with pytest.raises(InvalidInputError, match="no file of a supported type"):
        sync_folder(docs, col)
    write_docs(docs)
    with pytest.raises(InvalidInputError, match="chunk overlap"):
        sync_folder(docs, col, chunk_size=10, chunk_overlap=10)
    assert not col.exists()
    sync_folder(docs, col)
    with pytest.raises(InvalidInputError, match="already holds a collection"):
        sync_folder(docs, col, retriever=BM25())
    opened = Retriever.open(col)
    assert sync_folder(docs, col, retriever=opened).unchanged == 3


def _tamper(col: Path, change: object) -> None:
    body = json.loads((col / STATE).read_text())
    change(body)  # type: ignore[operator]
    body.pop("state_sha256")
    body["state_sha256"] = state_module._digest(body)
    (col / STATE).write_text(json.dumps(body))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["files"].update({"../../etc/passwd": b["files"]["a.txt"]}), "malformed"),
        (lambda b: b["files"]["a.txt"].update(chunks=-1), "malformed"),
        (lambda b: b["pending"].update({"/abs": 3}), "malformed"),
        (lambda b: b.update(extra=1), "unexpected"),
        (lambda b: b.update(format_version=True), "format version"),
    ],
)
def test_a_tampered_record_is_refused_before_anything_changes(
    tmp_path: Path, change: object, message: str
) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    sync_folder(docs, col)
    (docs / "a.txt").write_text("Changed.", encoding="utf-8")
    manifest = (col / "manifest.json").read_bytes()
    _tamper(col, change)
    with pytest.raises(CorruptCollectionError, match=message):
        sync_folder(docs, col)
    assert (col / "manifest.json").read_bytes() == manifest


def test_a_record_that_breaks_its_digest_or_json_is_refused(tmp_path: Path) -> None:
    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    sync_folder(docs, col)
    text = (col / STATE).read_text()
    (col / STATE).write_text(text.replace('"chunks": 1', '"chunks": 2', 1))
    with pytest.raises(CorruptCollectionError, match="its own digest"):
        sync_folder(docs, col)
    (col / STATE).write_text('{"format": "rag-retrievers/ingest", "a": NaN}')
    with pytest.raises(CorruptCollectionError, match="not valid JSON"):
        sync_folder(docs, col)
    (col / STATE).unlink()
    (col / STATE).symlink_to(tmp_path / "docs" / "a.txt")
    with pytest.raises(CorruptCollectionError, match="symbolic link"):
        sync_folder(docs, col)


def test_a_collection_inside_its_input_folder_is_not_read(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_docs(docs)
    (docs / "odd\\name.txt").write_text("A name a record could not hold.", encoding="utf-8")
    report = sync_folder(docs, docs / "col")
    assert [(f.source, f.reason) for f in report.failures] == [
        ("odd\\name.txt", "a name with a backslash, NUL or empty part")
    ]
    again = sync_folder(docs, docs / "col")  # col/gen-*/documents.jsonl are not documents
    assert (again.new, again.unchanged, again.chunks) == (0, 3, 0)


def test_a_parent_retriever_is_kept_in_step_by_parent_ids(tmp_path: Path) -> None:
    from rag_retrievers.adapters.parent import Parent

    docs, col = tmp_path / "docs", tmp_path / "col"
    write_docs(docs)
    first = sync_folder(docs, col, retriever=Parent(BM25()), chunk_size=32, chunk_overlap=4)
    assert first.total == 3  # Parent counts parents: one section or file each
    (docs / "a.txt").unlink()
    (docs / "guide.md").write_text("# Guide\n\n## Install\nRivers flood.", encoding="utf-8")
    report = sync_folder(docs, col)
    assert (report.removed, report.changed, report.total) == (1, 1, 2)
    parent = Retriever.open(col)
    hits = parent.search("rivers flood Paris honey", k=5)
    assert sorted(hit.id for hit in hits) == ["guide.md#section-0", "page.html#section-0"]
    assert hits[0].document is not None
    assert "spring number" not in hits[0].document.text + hits[1].document.text  # type: ignore[operator]
