"""Parent-document retrieval: search small chunks, return the documents they were cut from.

Small chunks match a query precisely; their parents give a generator the context around the
match. ``Parent(base)`` splits each document it is given (a *parent*) into chunks, indexes the
chunks in ``base`` (any retriever: BM25, Dense, Splade, ColBERT, Hybrid, PRF) and keeps the
parents itself. A search asks ``base`` for ``depth`` chunks (more if they hold fewer than ``k``
parents), maps each chunk to its parent and returns each parent once, scored by its best chunk,
in the order of the best chunks; each :class:`ParentHit` lists the chunks that found it. As
LangChain's ``ParentDocumentRetriever``, with any of our retrievers as the chunk index.

>>> from rag_retrievers import BM25, Document
>>> bread = ("Knead the dough for ten minutes. Let it rise for an hour in a warm place. "
...          "Bake it at 220 degrees until golden.")
>>> parent = Parent(BM25(), chunk_size=50, chunk_overlap=0)
>>> parent.add([Document(id="bread", text=bread, metadata={"source": "bread.md"}),
...             Document(id="tennis", text="A tie-break decides a set at six games all.")])
>>> hit = parent.search("let the dough rise", k=1)[0]
>>> hit.id, hit.document.metadata
('bread', {'source': 'bread.md'})
>>> [(c.document.text, c.document.metadata["start"]) for c in hit.chunks]
[('Let it rise for an hour in a warm place.', 33), ('Knead the dough for ten minutes.', 0)]

``add`` takes parents and ready-made chunks. A document without ``parent_id`` in its metadata
is a parent: the splitter cuts it into chunks ``"{id}#0"``, ``"{id}#1"``... holding the parent's
metadata plus ``parent_id`` and their character offsets ``start``/``end`` (shifted by the
parent's own ``start`` if it has one). A document with ``parent_id`` is a chunk cut elsewhere
(the ingest schema: ``source``, ``page``, ``heading``, ``start``, ``end``, ``parent_id``,
``content_hash``), indexed as given; its parent, if given in the same call, is kept as given and
not split, else it is assembled from its chunks (by ``start``, overlaps dropped; metadata: what
they share, less ``parent_id``, with the span of their offsets). A parent is replaced as a whole:
adding it, or chunks naming it, again replaces all its chunks, so one ``add`` call (one write)
gives all of a parent's chunks. ``delete`` takes parent ids; ``len`` counts parents. Filters go to
``base``, whose chunks carry their parent's metadata (and ``parent_id``).

``returns="chunks"``: the base's ``k`` best chunks instead, grouped by parent (the parent of the
best chunk first, with its chunks among the ``k``, then the next); ranks follow that order and
each score is the chunk's own, so scores fall within a parent, not across parents.

The default splitter is a sentence- and paragraph-aware ``RecursiveCharacterTextSplitter``
(``langchain-text-splitters``, extra ``ingest``) of ``chunk_size`` characters, ``chunk_overlap``
shared; its sizes are saved. ``splitter=`` takes any LangChain ``TextSplitter`` (anything with
``split_text``, e.g. a token-aware ``from_huggingface_tokenizer(...)``) or a function
``str -> list[str]``. Code cannot be saved in a manifest: a collection saved with one records
only that it had it, and ``Parent.open(path, splitter=...)`` must give it again (so such a
Parent cannot be reopened inside a Hybrid or PRF, which open their members without options).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import ValidationError
from rag_retrievers.adapters.member_files import members_manifest, read_member, write_members
from rag_retrievers.adapters.members import build_retriever, member_search, retriever_spec
from rag_retrievers.adapters.parent_chunks import (
    Splitter,
    TextSplitter,
    assemble,
    builtin_splitter,
    check_splitter,
    split_document,
)

from rag_retrievers.base import ComparedByConfig, Retriever
from rag_retrievers.errors import (
    CollectionError,
    CorruptCollectionError,
    DuplicateIdError,
    InvalidDocumentError,
    InvalidInputError,
)
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.records import Document, Hit, validation_message
from rag_retrievers.registry import register_retriever

__all__ = ["Parent", "ParentHit", "Returns", "Splitter", "TextSplitter"]

Returns = Literal["parents", "chunks"]
_CHUNK_SIZE, _CHUNK_OVERLAP = 400, 50
_PARENTS_FILE = "parents.jsonl"
_ROW_KEYS = {"document", "chunks", "assembled"}


def _check_int(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidInputError(f"{name} must be an int >= {least}, got {value!r}")


class ParentHit(Hit):
    """A parent found through its chunks: ``score`` is its best chunk's; ``chunks`` are its
    chunks that the base ranked, best first, with the base's ranks, scores and source."""

    chunks: tuple[Hit, ...] = ()


@register_retriever("parent")
class Parent(ComparedByConfig, Retriever):
    """Chunks searched in ``base``, their parents returned (see the module docstring).

    - ``base``: an empty retriever (or registered name or spec) that will hold the chunks.
    - ``splitter``: None for the built-in splitter, else a ``TextSplitter`` or a function.
    - ``chunk_size``, ``chunk_overlap``: the built-in splitter's sizes, in characters.
    - ``returns``: ``"parents"`` (each parent once) or ``"chunks"`` (grouped by parent).
    - ``depth``: chunks fetched from ``base`` per query (at least ``k``; more while they hold
      fewer than ``k`` parents and ``base`` has more).
    """

    config_keys = frozenset("base splitter chunk_size chunk_overlap returns depth".split())
    #: one add() is one write: a parent and all its chunks are replaced together
    add_batch_size: ClassVar[int] = sys.maxsize

    def __init__(
        self,
        base: Retriever | dict[str, Any] | str,
        splitter: Splitter | None = None,
        *,
        chunk_size: int = _CHUNK_SIZE,
        chunk_overlap: int = _CHUNK_OVERLAP,
        returns: Returns = "parents",
        depth: int = 100,
    ) -> None:
        super().__init__()
        self._configure(build_retriever(base, "base"), splitter, chunk_size, chunk_overlap)
        self._options(returns, depth)
        if len(self.base):
            raise InvalidInputError(
                f"Parent needs an empty base: {self.base!r} holds {len(self.base)} documents "
                "that Parent cannot map to parents; add through Parent.add"
            )

    def _configure(
        self, base: Retriever, splitter: Splitter | None, chunk_size: int, chunk_overlap: int
    ) -> None:
        if splitter is not None:
            check_splitter(splitter)
            if (chunk_size, chunk_overlap) != (_CHUNK_SIZE, _CHUNK_OVERLAP):
                raise InvalidInputError(
                    "chunk_size and chunk_overlap size the built-in splitter; a splitter given "
                    "as splitter= has its own sizes"
                )
        _check_int("chunk_size", chunk_size, 1)
        _check_int("chunk_overlap", chunk_overlap, 0)
        if chunk_overlap >= chunk_size:
            raise InvalidInputError(
                f"chunk_overlap must be less than chunk_size ({chunk_size}), got {chunk_overlap}"
            )
        self.base, self._splitter = base, splitter
        self.chunk_size, self.chunk_overlap = chunk_size, chunk_overlap
        self._builtin: TextSplitter | None = None  # made on first use: the extra may be absent
        self._parents: dict[str, Document] = {}
        self._children: dict[str, list[str]] = {}  # parent id -> its chunk ids, in order
        self._owner: dict[str, str] = {}  # chunk id -> parent id
        self._assembled: set[str] = set()  # parents built from their chunks, not given

    def _options(self, returns: Returns, depth: int) -> None:
        if returns not in ("parents", "chunks"):
            raise InvalidInputError(f"returns must be 'parents' or 'chunks', got {returns!r}")
        _check_int("depth", depth, 1)
        self.returns, self.depth = returns, depth

    # -- value semantics -----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "base": retriever_spec(self.base),
            "splitter": None if self._splitter is None else "custom",
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "returns": self.returns,
            "depth": self.depth,
        }

    def __repr__(self) -> str:
        config = self._changed_config()
        config.pop("base", None)
        if self._splitter is not None:
            config["splitter"] = self._splitter
        options = "".join(f", {key}={value!r}" for key, value in config.items())
        return f"{type(self).__name__}({self.base!r}{options})"

    def __eq__(self, other: object) -> bool:
        same = super().__eq__(other)
        if same is NotImplemented or not same or not isinstance(other, Parent):
            return same
        return bool(self._splitter == other._splitter)  # a custom splitter: the same object

    __hash__ = ComparedByConfig.__hash__

    # -- splitting -----------------------------------------------------------------------------

    def split(self, document: Document) -> list[Document]:
        """The chunks ``add`` indexes for a parent ``document`` (ids, texts, metadata)."""
        if self._splitter is not None:
            return split_document(document, self._splitter, overlap=0)
        if self._builtin is None:
            self._builtin = builtin_splitter(self.chunk_size, self.chunk_overlap)
        return split_document(document, self._builtin, overlap=self.chunk_overlap)

    # -- the adapter's methods -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._parents)

    def _metadata_fields(self) -> set[str] | None:
        return self.base._metadata_fields()

    def _check_documents(self, documents: list[Document]) -> None:
        for doc in documents:
            if "parent_id" in doc.metadata:
                value = doc.metadata["parent_id"]
                if not (isinstance(value, str) and value):
                    raise InvalidDocumentError(
                        f"document {doc.id!r}: metadata['parent_id'] must be the non-empty id "
                        f"of its parent, got {value!r}"
                    )

    def _add(self, documents: list[Document]) -> None:
        given: dict[str, Document] = {}  # parents given, by id
        chunks: dict[str, list[Document]] = {}  # chunks given, by parent id
        for doc in documents:
            if "parent_id" in doc.metadata:
                chunks.setdefault(doc.metadata["parent_id"], []).append(doc)
            else:
                given[doc.id] = doc
        chunk_ids = {c.id for group in chunks.values() for c in group}
        groups: dict[str, tuple[Document, bool, list[Document]]] = {}
        for doc in documents:  # in the order given, so that the base's rows follow it
            pid = doc.metadata.get("parent_id", doc.id)
            if pid in groups:
                continue
            if pid in chunk_ids:
                raise InvalidInputError(
                    f"{pid!r} is named as a parent_id but is itself a chunk (it has a parent_id)"
                )
            if pid in given and pid not in chunks:
                groups[pid] = (given[pid], False, self.split(given[pid]))
            elif pid in given or (pid in self._parents and pid not in self._assembled):
                groups[pid] = (given.get(pid) or self._parents[pid], False, chunks[pid])
            else:
                groups[pid] = (assemble(pid, chunks[pid]), True, chunks[pid])
        owners: dict[str, str] = {}
        for pid, (_, _, group) in groups.items():
            for chunk in group:
                if chunk.id in owners:
                    raise DuplicateIdError(
                        f"chunk id {chunk.id!r} occurs in parents {owners[chunk.id]!r} and {pid!r}"
                    )
                owner = self._owner.get(chunk.id)
                if owner is not None and owner not in groups:
                    raise InvalidInputError(
                        f"chunk id {chunk.id!r} belongs to parent {owner!r}; delete that parent "
                        "first or give the chunk another id"
                    )
                owners[chunk.id] = pid
        # all checks passed: the base upserts the new chunks, then loses the replaced ones
        new = [chunk for _, _, group in groups.values() for chunk in group]
        if new:
            self.base.add(new, show_progress=False)
        stale = [c for pid in groups for c in self._children.get(pid, ()) if c not in owners]
        if stale:
            self.base.delete(stale)
        for chunk_id in stale:
            del self._owner[chunk_id]
        for pid, (parent, assembled, group) in groups.items():
            self._parents[pid] = parent
            self._children[pid] = [chunk.id for chunk in group]
            (self._assembled.add if assembled else self._assembled.discard)(pid)
        self._owner.update(owners)

    def _delete(self, ids: list[str]) -> int:
        found = [pid for pid in ids if pid in self._parents]
        chunk_ids = [chunk_id for pid in found for chunk_id in self._children[pid]]
        if chunk_ids:
            self.base.delete(chunk_ids)
        for pid in found:
            del self._parents[pid]
            self._assembled.discard(pid)
            for chunk_id in self._children.pop(pid):
                del self._owner[chunk_id]
        return len(found)

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        n_chunks = len(self._owner)
        if not n_chunks:
            return [[] for _ in queries]
        if self.returns == "chunks":
            return [self._chunk_hits(hits) for hits in member_search(self.base, queries, k, filter)]
        results: dict[int, list[Hit]] = {}
        pending = list(range(len(queries)))
        fetch = min(max(self.depth, k), n_chunks)
        while pending:  # each query fetches deeper until its chunks hold k parents
            found = member_search(self.base, [queries[i] for i in pending], fetch, filter)
            deeper = []
            for i, hits in zip(pending, found, strict=True):
                groups = self._groups(hits)
                if len(groups) >= k or len(hits) < fetch or fetch >= n_chunks:
                    results[i] = self._parent_hits(groups, k)
                else:
                    deeper.append(i)
            pending, fetch = deeper, min(fetch * 4, n_chunks)
        return [results[i] for i in range(len(queries))]

    def _groups(self, hits: list[Hit]) -> dict[str, list[Hit]]:
        """Chunk hits by parent, parents in the order of their best chunk."""
        groups: dict[str, list[Hit]] = {}
        for hit in hits:
            pid = self._owner.get(hit.id)
            if pid is not None:  # else a document put in the base behind Parent's back
                groups.setdefault(pid, []).append(hit)
        return groups

    def _parent_hits(self, groups: dict[str, list[Hit]], k: int) -> list[Hit]:
        return [
            ParentHit(
                id=pid,
                score=chunks[0].score,
                rank=rank,
                document=self._parents[pid],
                source=self.name,
                chunks=tuple(chunks),
            )
            for rank, (pid, chunks) in enumerate(islice(groups.items(), k), 1)
        ]

    def _chunk_hits(self, hits: list[Hit]) -> list[Hit]:
        grouped = [hit for chunks in self._groups(hits).values() for hit in chunks]
        return [
            hit.model_copy(update={"rank": rank, "source": self.name})
            for rank, hit in enumerate(grouped, 1)
        ]

    # -- persistence ---------------------------------------------------------------------------

    def _write_data(self, folder: Path) -> None:
        self._snapshot()(folder)

    def _snapshot(self) -> Callable[[Path], None]:
        with self.base._lock.read():
            base_writer = self.base._snapshot()
        rows = [
            (doc, list(self._children[pid]), pid in self._assembled)
            for pid, doc in self._parents.items()
        ]
        return partial(_write, base_writer=base_writer, rows=rows)

    def _manifest_extra(self) -> dict[str, Any]:
        return members_manifest([self.base])

    @classmethod
    def _read_data(
        cls, folder: Path, manifest: dict[str, Any], splitter: Splitter | None = None
    ) -> Self:
        config = dict(manifest["config"])
        spec, members = config.pop("base", None), manifest.get("members")
        if not (isinstance(spec, dict) and isinstance(members, list) and len(members) == 1):
            raise CorruptCollectionError(f"{folder}: the manifest does not describe the base")
        recorded = config.pop("splitter")
        if recorded not in (None, "custom"):
            raise CorruptCollectionError(f"{folder}: unknown splitter {recorded!r} in the manifest")
        if (recorded == "custom") != (splitter is not None):
            raise CollectionError(
                f"{folder.parent} was saved with a custom splitter, which a manifest cannot hold: "
                "pass it again, Parent.open(path, splitter=...)"
                if splitter is None
                else f"{folder.parent} splits with the built-in splitter (its sizes are in the "
                "manifest): open it without splitter="
            )
        if splitter is not None:
            try:
                check_splitter(splitter)
            except InvalidInputError as exc:  # the caller's argument, not the manifest's
                raise CollectionError(f"open(splitter=...): {exc}") from None
        base = read_member(folder, manifest, spec, members[0])
        parent = cls.__new__(cls)
        Retriever.__init__(parent)
        parent._configure(base, splitter, config.pop("chunk_size"), config.pop("chunk_overlap"))
        parent._options(config.pop("returns"), config.pop("depth"))
        parent._read_parents(folder / _PARENTS_FILE)
        if len(base) != len(parent._owner):
            raise CorruptCollectionError(
                f"{folder}: the base holds {len(base)} chunks, the parents list "
                f"{len(parent._owner)}"
            )
        return parent

    def _read_parents(self, path: Path) -> None:
        if not path.is_file():
            raise CorruptCollectionError(f"{path.parent}: {_PARENTS_FILE} is missing")
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                where = f"{path}:{number}"
                try:
                    row = json.loads(line)
                    if not (isinstance(row, dict) and set(row) == _ROW_KEYS):
                        raise CorruptCollectionError(f"{where}: not a parent row ({_ROW_KEYS})")
                    doc = Document.model_validate(row["document"])
                except ValidationError as exc:
                    raise CorruptCollectionError(f"{where}: {validation_message(exc)}") from None
                except (ValueError, RecursionError) as exc:
                    raise CorruptCollectionError(f"{where}: {exc}") from None
                chunk_ids, assembled = row["chunks"], row["assembled"]
                if not (
                    isinstance(chunk_ids, list)
                    and all(isinstance(c, str) and c and c not in self._owner for c in chunk_ids)
                    and len(set(chunk_ids)) == len(chunk_ids)
                    and isinstance(assembled, bool)
                    and doc.id not in self._parents
                ):
                    raise CorruptCollectionError(f"{where}: malformed or repeated ids")
                self._parents[doc.id] = doc
                self._children[doc.id] = chunk_ids
                self._owner.update(dict.fromkeys(chunk_ids, doc.id))
                if assembled:
                    self._assembled.add(doc.id)


def _write(
    folder: Path,
    base_writer: Callable[[Path], None],
    rows: list[tuple[Document, list[str], bool]],
) -> None:
    write_members(folder, names=["base"], writers=[base_writer])
    with (folder / _PARENTS_FILE).open("w", encoding="utf-8") as f:
        for doc, chunk_ids, assembled in rows:
            row = {"document": doc.model_dump(), "chunks": chunk_ids, "assembled": assembled}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
