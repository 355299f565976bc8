"""Documents and their dense vectors in row order, held in this process and searched exactly.

:class:`~rag_retrievers.adapters.dense.Dense` keeps a float32 copy of every vector next to its
documents (``4 x dimension`` bytes a document): a small collection is searched exactly by one
matrix product, an engine's approximate candidates are rescored exactly, a selective filter is
answered by brute force over the matching rows, and a save writes the vectors without asking the
engine for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.index.docstore import DocumentStore
from rag_retrievers.records import Document


def similarities(vectors: np.ndarray, queries: np.ndarray, *, cosine: bool) -> np.ndarray:
    """Dot products, one row per query; with ``cosine``, divided by both norms (0 for a zero
    vector), for vectors stored unnormalised.

    >>> similarities(np.array([[3.0, 4.0]]), np.array([[1.0, 0.0]]), cosine=True)
    array([[0.6]])
    """
    scores = queries @ vectors.T
    if cosine:
        norms = np.outer(np.linalg.norm(queries, axis=1), np.linalg.norm(vectors, axis=1))
        scores = np.divide(scores, norms, out=np.zeros_like(scores), where=norms > 0)
    return scores


def best_rows(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of ``rows`` by ``scores`` (aligned), best first, ties by row.

    >>> best_rows(np.array([7, 3, 5]), np.array([0.5, 0.9, 0.5]), 2)
    (array([3, 5]), array([0.9, 0.5]))
    """
    if rows.size > k:  # keep every row tied with the k-th score, then order exactly
        kth = np.partition(scores, rows.size - k)[rows.size - k]
        keep = scores >= kth
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:k]
    return rows[order], scores[order]


class VectorRows:
    """A :class:`~rag_retrievers.index.docstore.DocumentStore` and a float32 matrix, a row each.

    Re-adding a document gives it a new row; its old row, like a deleted document's, stays dead
    until :meth:`compact_if_sparse`. ``cosine``: the vectors are not normalised and scores are
    cosines (else dot products).

    >>> rows = VectorRows(2)
    >>> rows.append([Document(id="a", text="x"), Document(id="b", text="y")],
    ...             np.array([[1, 0], [0, 1]], dtype=np.float32))
    >>> [(r.tolist(), s.tolist()) for r, s in rows.top_k(rows.live_rows(), np.eye(2), 1)]
    [([0], [1.0]), ([1], [1.0])]
    """

    def __init__(self, dimension: int, *, cosine: bool = False) -> None:
        self.dimension, self.cosine = dimension, cosine
        self.docs = DocumentStore()
        self.matrix = np.empty((0, dimension), dtype=np.float32)  # capacity >= docs.n_rows

    def __len__(self) -> int:
        return len(self.docs)

    def restore(self, docs: DocumentStore, vectors: np.ndarray) -> None:
        """Hold a saved snapshot: ``vectors`` has a row per row of ``docs``."""
        self.docs, self.matrix = docs, np.ascontiguousarray(vectors)

    def append(self, documents: list[Document], vectors: np.ndarray) -> None:
        """Store ``documents`` with their ``vectors`` (a row each), replacing same-id ones."""
        for doc in documents:
            self.docs.remove(doc.id)
        n = self.docs.n_rows  # rows before the append
        need = n + len(vectors)
        if need > len(self.matrix):
            grown = np.empty((max(need, 2 * len(self.matrix), 64), self.dimension), np.float32)
            grown[:n] = self.matrix[:n]
            self.matrix = grown
        self.matrix[n:need] = vectors
        self.docs.append(documents)

    def vectors(self, doc_ids: Sequence[str]) -> np.ndarray:
        """The stored vectors of these documents, one row each (ids must be present)."""
        rows = [self.docs.row(doc_id) for doc_id in doc_ids]
        if any(row is None for row in rows):
            missing = [d for d, r in zip(doc_ids, rows, strict=True) if r is None]
            raise InvalidInputError(f"no stored vector for {missing[0]!r}")
        return self.matrix[np.asarray(rows, dtype=np.int64)]

    def live_rows(self) -> np.ndarray:
        if len(self.docs) == self.docs.n_rows:  # nothing deleted since the last compaction
            return np.arange(self.docs.n_rows)
        return np.fromiter(
            (m is not None for m in self.docs.metadatas()), dtype=bool, count=self.docs.n_rows
        ).nonzero()[0]

    def live_matrix(self) -> np.ndarray:
        """The live documents' vectors, in the order of ``docs.live_documents()``."""
        return np.ascontiguousarray(self.matrix[self.live_rows()])

    def compact_if_sparse(self, min_dead: int) -> None:
        """Drop dead rows once they number more than ``min_dead`` and than the live ones (keeps
        memory bounded)."""
        dead = self.docs.n_rows - len(self.docs)
        if dead <= max(min_dead, len(self.docs)):
            return
        live = self.live_rows()
        store = DocumentStore()
        store.append(list(self.docs.live_documents()))
        self.matrix = np.ascontiguousarray(self.matrix[live])
        self.docs = store

    def top_k(
        self, rows: np.ndarray, queries: np.ndarray, k: int, *, block_scores: int = 1 << 24
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: the best ``k`` of ``rows`` and their scores, all scored exactly, one matrix
        product per block of queries (at most ``block_scores`` scores held at once)."""
        vectors = self.matrix[rows]
        out: list[tuple[np.ndarray, np.ndarray]] = []
        block = max(1, block_scores // max(1, rows.size))
        for start in range(0, len(queries), block):
            scores = similarities(vectors, queries[start : start + block], cosine=self.cosine)
            out.extend(best_rows(rows, row_scores, k) for row_scores in scores)
        return out
