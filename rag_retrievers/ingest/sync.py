"""Index a folder of files into a collection, and keep it in step as the files change.

:func:`sync_folder` is the whole run: list the folder's files, hash each one, load and chunk only
the files that are new or whose content hash changed, delete the chunks of changed and vanished
files, add the new chunks (the only text encoded), save the collection and the record of what it
holds (:mod:`.state`). Unchanged files are not read past their hash, and their chunks are not
touched. A file that cannot be loaded is reported (:class:`Failure`, one line) and skipped; if it
was indexed before, its old chunks go, since its content changed. The run ends with a
:class:`SyncReport` (``report.summary()``: files, pages, chunks, failures).

>>> import tempfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> (tmp / "docs").mkdir()
>>> _ = (tmp / "docs" / "a.txt").write_text("Paris is the capital of France.", encoding="utf-8")
>>> sync_folder(tmp / "docs", tmp / "col").summary()
'1 file (1 new): 1 chunk added; the collection holds 1 document'
>>> sync_folder(tmp / "docs", tmp / "col").summary()
'1 file (1 unchanged): nothing to do; the collection holds 1 document'

Bad input (a missing folder, a chunk size the model cannot read, a corrupt record, an existing
collection that is not the retriever given) raises before anything changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.index.storage import (
    DIGEST,
    MANIFEST,
    check_writable,
    collection_path,
    read_manifest,
)
from rag_retrievers.ingest.chunking import Chunker
from rag_retrievers.ingest.loaders import (
    UnreadableFileError,
    list_files,
    load_bytes,
    read_bytes,
    sha256_bytes,
    source_name,
    supported_suffixes,
)
from rag_retrievers.ingest.state import (
    FileRecord,
    Held,
    IngestState,
    read_state,
    valid_source,
    write_state,
)
from rag_retrievers.progress import progress_bar

if TYPE_CHECKING:
    from rag_retrievers.base import Retriever
    from rag_retrievers.records import Document


@dataclass(frozen=True)
class Failure:
    """A file that was skipped, and why (one line)."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.source}: {self.reason}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class SyncReport:
    """What a run did. ``files`` counts the files the run considered (a failed one included);
    ``pages`` and ``chunks`` what it read and added; ``deleted`` the chunks it removed;
    ``total`` the documents the collection holds after it (``len``: its chunks, or for
    ``Parent`` its parents); ``reread`` why every file was re-read
    (``None``: only new and changed ones were)."""

    collection: Path
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    pages: int = 0
    chunks: int = 0
    deleted: int = 0
    total: int = 0
    failures: tuple[Failure, ...] = ()
    reread: str | None = None

    @property
    def files(self) -> int:
        return self.new + self.changed + self.unchanged + len(self.failures)

    def summary(self) -> str:
        """One line: files by what happened to them, pages, chunks added and deleted, total."""
        kinds = [
            f"{n} {what}"
            for n, what in (
                (self.new, "new"),
                (self.changed, "changed"),
                (self.unchanged, "unchanged"),
                (self.removed, "removed"),
                (len(self.failures), "failed"),
            )
            if n
        ]
        done = []
        if self.pages:
            done.append(f"{_plural(self.pages, 'page')} read")
        if self.chunks:
            done.append(f"{_plural(self.chunks, 'chunk')} added")
        if self.deleted:
            done.append(f"{self.deleted} deleted")
        line = f"{_plural(self.files, 'file')} ({', '.join(kinds) or 'none'}): "
        line += ", ".join(done) or "nothing to do"
        return line + f"; the collection holds {_plural(self.total, 'document')}"


@dataclass
class _Plan:
    """What the run found, file by file, before it changes anything."""

    documents: list[Document] = field(default_factory=list)
    records: dict[str, FileRecord] = field(default_factory=dict)
    delete: dict[str, Held] = field(default_factory=dict)  # source -> the ids of it to go
    failures: list[Failure] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    pages: int = 0


def _open_or_create(root: Path, retriever: Retriever | None) -> tuple[Retriever, bool]:
    from rag_retrievers.base import Retriever

    exists = (root / MANIFEST).exists()
    if retriever is not None and not isinstance(retriever, Retriever):
        raise InvalidInputError(
            f"retriever must be a rag_retrievers Retriever, got {type(retriever).__name__}"
        )
    if exists:
        if retriever is None:
            return Retriever.open(root), True
        if retriever.path is None or Path(retriever.path).resolve() != root.resolve():
            raise InvalidInputError(
                f"{root} already holds a collection: pass retriever=None to open it, or the "
                "retriever opened from it (Retriever.open), not a new one"
            )
        return retriever, True
    if retriever is None:
        from rag_retrievers.registry import create_retriever

        retriever = create_retriever("bm25")
    return retriever, False


def sync_folder(
    folder: str | os.PathLike[str],
    collection: str | os.PathLike[str],
    *,
    retriever: Retriever | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    show_progress: bool | None = None,
    on_failure: Callable[[Failure], None] | None = None,
) -> SyncReport:
    """Bring the collection at ``collection`` in step with the files under ``folder``.

    A new collection is built with ``retriever`` (default: BM25); an existing one is opened
    (or pass the retriever opened from it). ``chunk_size``/``chunk_overlap`` default to the
    collection's own (or :class:`~.chunking.Chunker`'s defaults); other values re-chunk every
    file. ``on_failure`` is called for each skipped file as it is found.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a folder")
    paths, skipped = list_files(root)
    if not paths:
        raise InvalidInputError(
            f"{root} holds no file of a supported type ({', '.join(supported_suffixes())})"
        )
    inside = collection_path(collection).resolve()
    sources = []
    early = [Failure(name, reason) for name, reason in skipped]
    for path in paths:
        if path.resolve().is_relative_to(inside):  # the collection's own files
            continue
        try:
            sources.append((source_name(path, root), path))
        except UnreadableFileError as exc:
            early.append(Failure(str(path.relative_to(root)), str(exc)))
    return sync_files(
        sources,
        collection,
        complete=True,
        retriever=retriever,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        show_progress=show_progress,
        on_failure=on_failure,
        skipped=early,
    )


def sync_files(
    files: Sequence[tuple[str, Path]],
    collection: str | os.PathLike[str],
    *,
    complete: bool = False,
    retriever: Retriever | None = None,
    chunk_size: int | None = None,
    chunk_overlap: int | None = None,
    show_progress: bool | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    skipped: Iterable[Failure] = (),
) -> SyncReport:
    """:func:`sync_folder` for ``(source, path)`` pairs: with ``complete``, the pairs are all
    the files there are, and the chunks of indexed files not among them are deleted; without,
    only these files are brought in step."""
    early = list(skipped)
    kept = []
    for source, path in files:
        if valid_source(source):
            kept.append((source, path))
        else:  # it could not be recorded, so it could never be kept in step
            early.append(Failure(source, "a name with a backslash, NUL or empty part"))
    files, skipped = kept, early
    names = [source for source, _ in files]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})[0]
        raise InvalidInputError(f"two input files have the same name {twice!r}")
    root = collection_path(collection)
    check_writable(root)  # a foreign target fails now
    retriever, exists = _open_or_create(root, retriever)
    state = read_state(root) if exists else None
    digest = read_manifest(root, verify=False)[DIGEST] if exists else None
    known: dict[str, FileRecord] = dict(state.files) if state else {}
    uncertain: dict[str, Held] = dict(state.pending) if state else {}
    reread = None
    if state is not None and state.manifest_sha256 != digest:
        reread = "the collection was saved by something else since the last run"
        uncertain = _merge(uncertain, {s: r.held for s, r in known.items()})
        known = {}
    saved_chunking = dict(state.chunking) if state else {}
    chunker = _chunker(retriever, chunk_size, chunk_overlap, saved_chunking)
    if known and saved_chunking != chunker.identity():
        reread = f"the chunking changed (was {saved_chunking}, now {chunker.identity()})"
        uncertain = _merge(uncertain, {s: r.held for s, r in known.items()})
        known = {}

    plan = _Plan(failures=list(skipped))
    for failure in plan.failures:
        if on_failure is not None:
            on_failure(failure)
    _read_files(files, chunker, known, uncertain, plan, show_progress, on_failure)
    if complete:  # files indexed before and gone now
        present = set(names)
        for source in sorted((set(known) | set(uncertain)) - present):
            plan.delete[source] = _held(known, uncertain, source)
            plan.removed += 1
    keep = {s: r for s, r in known.items() if s not in plan.delete and s not in plan.records}
    report = SyncReport(
        collection=root,
        new=plan.new,
        changed=plan.changed,
        unchanged=plan.unchanged,
        removed=plan.removed,
        pages=plan.pages,
        failures=tuple(plan.failures),
        reread=reread,
    )
    if state is not None and not (plan.delete or plan.documents or uncertain or reread):
        return replace(report, total=len(retriever))  # nothing changed: nothing is saved

    if digest is None:  # a new collection: a manifest first, for the record to start from
        retriever.save(root)
        digest = read_manifest(root, verify=False)[DIGEST]
    pending = _merge(uncertain, plan.delete)
    pending = _merge(pending, {s: r.held for s, r in plan.records.items()})
    write_state(root, IngestState(digest, chunker.identity(), keep, pending))
    ids = [i for source, held in plan.delete.items() for i in held.ids(source)]
    deleted = retriever.delete(ids) if ids else 0
    if plan.documents:
        retriever.add(plan.documents, show_progress=show_progress)
    retriever.save(root)
    digest = read_manifest(root, verify=False)[DIGEST]
    write_state(root, IngestState(digest, chunker.identity(), {**keep, **plan.records}, {}))
    return replace(report, chunks=len(plan.documents), deleted=deleted, total=len(retriever))


def _merge(a: dict[str, Held], b: dict[str, Held]) -> dict[str, Held]:
    out = dict(a)
    for source, held in b.items():
        out[source] = out.get(source, Held()) | held
    return out


def _held(known: dict[str, FileRecord], uncertain: dict[str, Held], source: str) -> Held:
    """What ``source`` may have in the collection: its record's chunks and parents, and what a
    killed run may have left."""
    record = known.get(source)
    return (record.held if record is not None else Held()) | uncertain.get(source, Held())


def _chunker(
    retriever: Retriever, size: int | None, overlap: int | None, saved: dict[str, object]
) -> Chunker:
    """The chunker for this run: the sizes given, else the collection's own, else defaults."""
    probe = Chunker.for_retriever(retriever, size, overlap)
    if saved.get("unit") != probe.unit:
        return probe
    saved_size, saved_overlap = saved.get("size"), saved.get("overlap")
    size = size if size is not None else saved_size if isinstance(saved_size, int) else None
    if (
        overlap is None
        and isinstance(saved_overlap, int)
        and (size is None or saved_overlap < size)
    ):
        overlap = saved_overlap
    return Chunker(size, overlap, limits=probe.limits)


def _read_files(
    files: Sequence[tuple[str, Path]],
    chunker: Chunker,
    known: dict[str, FileRecord],
    uncertain: dict[str, Held],
    plan: _Plan,
    show_progress: bool | None,
    on_failure: Callable[[Failure], None] | None,
) -> None:
    """Hash every file; load and chunk the new and changed ones into ``plan``."""
    bar = progress_bar(len(files), "files", "file", show_progress)
    try:
        for source, path in files:
            previous = known.get(source)
            try:
                data = read_bytes(path)
                digest = sha256_bytes(data)
                if previous is not None and previous.sha256 == digest and source not in uncertain:
                    plan.unchanged += 1
                    continue
                loaded = load_bytes(data, source, path.suffix)
                documents = chunker.chunk(loaded)
            except (UnreadableFileError, InvalidInputError) as exc:
                failure = Failure(source, str(exc).removeprefix("invalid document: "))
                plan.failures.append(failure)
                if on_failure is not None:
                    on_failure(failure)
                if previous is not None or source in uncertain:
                    plan.delete[source] = _held(known, uncertain, source)
                continue
            finally:
                if bar is not None:
                    bar.update(1)
            if previous is None and source not in uncertain:
                plan.new += 1
            else:
                plan.changed += 1
                plan.delete[source] = _held(known, uncertain, source)
            plan.pages += loaded.pages
            plan.documents.extend(documents)
            parents = tuple(dict.fromkeys(unit.parent_id for unit in loaded.units))
            plan.records[source] = FileRecord(
                digest, len(documents), loaded.pages, loaded.kind, parents
            )
    finally:
        if bar is not None:
            bar.close()
