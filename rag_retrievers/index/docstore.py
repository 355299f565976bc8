"""Documents by row: the id <-> row mapping, texts and metadata of an index's documents."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from rag_retrievers.errors import CorruptCollectionError
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.records import Document, Hit, validation_message

_MAX_CACHED_MASKS = 64


class DocumentStore:
    """Rows in insertion order; a deleted row keeps its slot (``None``) until compaction."""

    def __init__(self) -> None:
        self._docs: list[Document | None] = []
        self._rows: dict[str, int] = {}
        self._fields: Counter[str] = Counter()
        # filter -> rows mask; applications repeat the same few filters, and evaluating one is
        # a Python call per document. Cleared on every write. A CompiledFilter compares its
        # operands with their kind (bool, number, str, None), so {"n": 1} and {"n": True}, equal
        # and alike in hash to Python, are two keys.
        self._masks: dict[CompiledFilter, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._rows

    @property
    def n_rows(self) -> int:
        return len(self._docs)

    def row(self, doc_id: str) -> int | None:
        """The row of a live document, or ``None``."""
        return self._rows.get(doc_id)

    def live_document(self, row: int) -> Document:
        """The document in ``row``, which must not have been deleted."""
        doc = self._docs[row]
        if doc is None:
            raise LookupError(f"row {row} holds a deleted document")
        return doc

    def hits(self, rows: np.ndarray, scores: np.ndarray, source: str) -> list[Hit]:
        """Ranked hits for live ``rows`` and their ``scores``, already in rank order."""
        return [
            Hit(id=doc.id, score=score, rank=rank, document=doc, source=source)
            for rank, (doc, score) in enumerate(
                zip(map(self.live_document, rows.tolist()), scores.tolist(), strict=True), 1
            )
        ]

    def get(self, doc_id: str) -> Document | None:
        row = self._rows.get(doc_id)
        return None if row is None else self._docs[row]

    def append(self, documents: list[Document]) -> list[int]:
        """Give each document a new row at the end; ids must not be present."""
        start = len(self._docs)
        self._docs.extend(documents)
        for i, doc in enumerate(documents):
            self._rows[doc.id] = start + i
            self._fields.update(doc.metadata.keys())
        self._masks = {}
        return list(range(start, start + len(documents)))

    def remove(self, doc_id: str) -> int | None:
        row = self._rows.pop(doc_id, None)
        if row is not None:
            doc = self.live_document(row)  # a row in _rows is live
            self._docs[row] = None
            self._fields.subtract(doc.metadata.keys())
            self._fields += Counter()  # drop fields no live document has any more
            self._masks = {}
        return row

    def metadata_fields(self) -> set[str]:
        return set(self._fields)

    def metadatas(self) -> list[dict[str, Any] | None]:
        return [None if d is None else d.metadata for d in self._docs]

    def filter_mask(self, filter: CompiledFilter) -> np.ndarray:
        """Which rows hold a live document matching ``filter`` (cached until the next write)."""
        mask = self._masks.get(filter)
        if mask is None:
            mask = filter.mask(self.metadatas())
            if len(self._masks) >= _MAX_CACHED_MASKS:
                self._masks.clear()
            self._masks[filter] = mask
        return mask

    def live_documents(self) -> Iterator[Document]:
        return (d for d in self._docs if d is not None)

    def live_rows(self) -> tuple[list[Document], list[int]]:
        """The live documents in row order, and their rows (what an engine is synced to)."""
        live = [(row, d) for row, d in enumerate(self._docs) if d is not None]
        return [d for _, d in live], [row for row, _ in live]

    # -- files ---------------------------------------------------------------------------------

    def write_jsonl(self, path: Path) -> None:
        """Live documents in row order, one JSON object a line."""
        write_documents(path, list(self.live_documents()))

    @classmethod
    def read_jsonl(cls, path: Path) -> DocumentStore:
        store = cls()
        docs = []
        seen: set[str] = set()
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    doc = Document.model_validate_json(line)
                except ValidationError as exc:
                    raise CorruptCollectionError(
                        f"{path}:{number}: {validation_message(exc)}"
                    ) from None
                except ValueError as exc:
                    raise CorruptCollectionError(
                        f"{path}:{number}: {' '.join(str(exc).split())}"
                    ) from None
                if doc.id in seen:  # rows are found by id: a second row would shadow the first
                    raise CorruptCollectionError(f"{path}:{number}: id {doc.id!r} occurs twice")
                seen.add(doc.id)
                docs.append(doc)
        store.append(docs)
        return store


def write_documents(path: Path, documents: list[Document]) -> None:
    """Documents as JSONL, one object a line, in the order given."""
    with path.open("w", encoding="utf-8") as f:
        for doc in documents:
            f.write(json.dumps(doc.model_dump(), ensure_ascii=False))
            f.write("\n")
