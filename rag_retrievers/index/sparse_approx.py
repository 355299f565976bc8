"""Approximate search over a :class:`~rag_retrievers.index.sparse.SparseIndex`, kept in step with
its writes lazily.

:class:`ApproximateIndex` owns two things derived from the exact index, both rebuilt from it when
needed, never written to by the index itself:

- the **forward index**: every row's raw vector (CSR, rows x terms), the exact scorer of the
  candidates. Rows are only ever appended to a sparse index, so new rows are appended here on
  the next search; a deleted row stays and is masked out.
- the **block index** (:class:`~rag_retrievers.index.sparse_blocks.BlockIndex`) over the rows
  live when it was built. Rows added later (the tail) are scored exactly on the forward index;
  the block index is rebuilt on the next search once the tail exceeds 1/8 of the rows it covers
  or a quarter of those rows were deleted (the cost of scoring the tail exactly, traded against
  that of rebuilding).

It answers ``None`` where the exact index should answer instead: a collection smaller than
``min_documents``, a query with a negative weight (summaries bound positive contributions only),
and a result with fewer than ``k`` rows (a selective filter, a query whose few matches the
pruned lists missed), so that approximation never returns fewer hits than exact search would.
A filter that admits few rows is answered exactly by scoring just those rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rag_retrievers.index.sparse import SparseIndex
from rag_retrievers.index.sparse_blocks import ApproximateSearch, BlockIndex
from rag_retrievers.scoring.blocks import row_scores

#: rebuild the block index once the rows added after it exceed this share of the rows it covers
TAIL_SHARE = 1 / 8
#: ... or once this share of the rows it covers was deleted
DEAD_SHARE = 1 / 4
#: a filter admitting at most this many rows is answered by scoring them all, exactly
FILTERED_ROWS = 4096


class ApproximateIndex:
    """Seismic-style approximate top-k for one sparse index (see the module's docstring)."""

    def __init__(self, index: SparseIndex, search: ApproximateSearch) -> None:
        self.index = index
        self.settings = search
        self._forward: sp.csr_matrix | None = None
        self._blocks: BlockIndex | None = None
        self._lock = threading.Lock()
        self._scratch = threading.local()  # per thread: BlockIndex.search's ``seen`` array

    def applies(self, n_live: int) -> bool:
        """Whether a collection of ``n_live`` live rows is searched approximately."""
        return n_live >= max(self.settings.min_documents, 1)

    @property
    def blocks(self) -> BlockIndex | None:
        return self._blocks

    def adopt(self, blocks: BlockIndex) -> None:
        """Use a block index read back from a saved collection (its settings match)."""
        if blocks.settings == self.settings.build_settings():
            self._blocks = blocks

    def nbytes(self) -> int:
        """Bytes held beyond the exact index: the forward index and the block index."""
        forward = self._forward
        size = 0 if forward is None else forward.data.nbytes + forward.indices.nbytes
        size += 0 if forward is None else forward.indptr.nbytes
        return size + (self._blocks.nbytes if self._blocks is not None else 0)

    # -- keeping in step -----------------------------------------------------------------------

    def prepare(self) -> tuple[sp.csr_matrix, BlockIndex]:
        """The forward index over every row and an up-to-date block index (built or rebuilt
        here when due). Called under the owner's read lock: no write runs meanwhile."""
        with self._lock:
            forward = self._synced_forward()
            blocks = self._blocks
            live = self.index.live
            if blocks is None or self._stale(blocks, live):
                blocks = BlockIndex.build(forward, live, self.settings)
                self._blocks = blocks
            return forward, blocks

    def _synced_forward(self) -> sp.csr_matrix:
        index, forward = self.index, self._forward
        n_rows, width = index.n_rows, len(index.terms)
        if forward is None:
            forward = index.raw_csr(0, n_rows)
        else:
            if forward.shape[1] < width:
                forward = sp.csr_matrix(
                    (forward.data, forward.indices, forward.indptr), shape=(forward.shape[0], width)
                )
            if forward.shape[0] < n_rows:
                forward = sp.vstack([forward, index.raw_csr(forward.shape[0], n_rows)], "csr")
        self._forward = forward
        return forward

    @staticmethod
    def _stale(blocks: BlockIndex, live: np.ndarray) -> bool:
        tail = len(live) - blocks.n_rows
        covered = blocks.n_rows
        dead = covered - int(live[:covered].sum())
        return tail > TAIL_SHARE * covered or dead > DEAD_SHARE * max(covered, 1)

    # -- search --------------------------------------------------------------------------------

    def search(
        self, weights: dict[str, float], k: int, mask: np.ndarray | None, n_live: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows and exact scores of (approximately) the ``k`` best rows, best first, ties by
        row; ``None`` where the exact index should answer (see the module's docstring).
        ``mask`` (bool per row) restricts the rows; ``n_live`` is the index's live row count
        (the caller knows it without counting)."""
        if not self.applies(n_live):
            return None
        term_ids, values = self.index.query_vector(weights)
        if not len(values):
            return np.zeros(0, np.int64), np.zeros(0, self.index.dtype)
        if (values < 0).any():
            return None
        forward, blocks = self.prepare()
        n_rows, width = forward.shape
        query = np.zeros(width, dtype=forward.dtype)
        query[term_ids] = values
        allowed = self.index.live
        if mask is not None:
            allowed = allowed & mask[:n_rows]
            admitted = np.flatnonzero(allowed)
            if len(admitted) <= FILTERED_ROWS:
                return _best(admitted, row_scores(forward, admitted, query), k)

        def score_rows(rows: np.ndarray) -> np.ndarray:
            return row_scores(forward, rows, query)

        tail = self._tail(forward, blocks.n_rows, query, allowed)
        rows, scores = blocks.search(
            query,
            term_ids,
            values,
            k,
            score_rows,
            self.settings,
            allowed=None if mask is None and n_live == n_rows else allowed,
            seed=tail,
            seen=self._seen(blocks.n_rows),
        )
        rows, scores = _best(rows, scores, k)
        return (rows, scores) if len(rows) >= k else None

    def _seen(self, n_rows: int) -> np.ndarray:
        seen = getattr(self._scratch, "seen", None)
        if seen is None or len(seen) != n_rows:
            seen = self._scratch.seen = np.zeros(n_rows, dtype=bool)
        return seen

    @staticmethod
    def _tail(
        forward: sp.csr_matrix, start: int, query: np.ndarray, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        if start >= forward.shape[0]:
            return None
        scores = np.asarray(forward[start:] @ query)
        rows = np.flatnonzero((scores > 0) & allowed[start:])
        return rows + start, scores[rows]

    def snapshot(self) -> Callable[[Path], None] | None:
        """A writer of the block index renumbered as a saved collection holds its rows (live
        rows only), or ``None`` when none is built. The arrays are immutable: the writer can
        run after the lock is released."""
        blocks = self._blocks
        if blocks is None:
            return None
        compacted = blocks.compacted(np.asarray(self.index.live))
        return compacted.write


def _best(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best positive-scored rows, best first, ties by row."""
    positive = scores > 0
    rows, scores = rows[positive], scores[positive]
    if len(rows) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        kth = scores[part].min()
        above = scores > kth
        tied = np.flatnonzero(scores == kth)
        tied = tied[np.argsort(rows[tied], kind="stable")][: k - int(above.sum())]
        pick = np.concatenate([np.flatnonzero(above), tied])
        rows, scores = rows[pick], scores[pick]
    order = np.lexsort((rows, -scores))
    return rows[order].astype(np.int64, copy=False), scores[order]
