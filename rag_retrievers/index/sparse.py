"""An inverted index on scipy sparse matrices with exact top-k for any term-weight query.

Documents are rows, terms are columns. The index stores raw per-document values (term counts for
BM25, learned weights for SPLADE) and an optional ``doc_weighting`` turns them into the scored
values (BM25 saturation and length normalisation). Query vectors carry the term-side weights
(idf, query expansion weights), so one index serves BM25, SPLADE, RM3 and sparse Rocchio.

Adds append rows in segments merged like a log-structured merge tree: nothing already indexed is
re-analysed, and a merge only concatenates arrays. Deletes clear a row in place; a save writes
only the live rows, so a reopened index is compact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.index.docstore import DocumentStore, write_documents
from rag_retrievers.index.npy import load_npy
from rag_retrievers.scoring.topk import top_k

#: (raw values of postings, length of each posting's document, mean document length) -> scores
DocWeighting = Callable[[np.ndarray, np.ndarray, float], np.ndarray]

_MERGE_RATIO = 4  # merge the newest segment into the one before once it is >= 1/4 of its size
_INDEX_DTYPES = (np.int32, np.int64)  # what a saved index's indices and indptr may hold


@dataclass
class _Segment:
    offset: int  # global row of the segment's first row
    raw: sp.csc_matrix  # rows local to the segment, columns = term ids known when it was built
    scored: sp.csc_matrix | None = None  # raw after doc_weighting and deletions; rebuilt lazily
    signed: bool = False  # whether ``scored`` holds negative values


class SparseIndex:
    """Rows of term weights; ``search`` returns the exact top-k rows by dot product.

    >>> index = SparseIndex()
    >>> index.add_rows([{"apple": 2.0, "pie": 1.0}, {"apple": 1.0}])
    array([0, 1])
    >>> index.search({"pie": 1.0, "apple": 0.5}, k=2)
    (array([0, 1]), array([2. , 0.5], dtype=float32))
    """

    def __init__(self, doc_weighting: DocWeighting | None = None, dtype: str = "float32") -> None:
        if dtype not in ("float32", "float64"):
            raise InvalidInputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.doc_weighting = doc_weighting
        self.terms: list[str] = []
        self.term_ids: dict[str, int] = {}
        self._segments: list[_Segment] = []
        self._live = np.zeros(0, dtype=bool)
        self._doc_len = np.zeros(0, dtype=np.float64)  # sum of raw values per row
        self._df = np.zeros(0, dtype=np.int64)  # live rows with a non-zero value, per term
        self._mean_length: float | None = None
        self._weighted_since_write = 0  # postings weighted per query since the last write

    # -- statistics ----------------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        return len(self._live)

    @property
    def n_live(self) -> int:
        return int(self._live.sum())

    @property
    def document_frequency(self) -> np.ndarray:
        return self._df

    @property
    def mean_length(self) -> float:
        mean = self._mean_length
        if mean is None:
            n = self.n_live
            mean = float(self._doc_len[self._live].sum() / n) if n else 0.0
            self._mean_length = mean
        return mean

    def row_lengths(self) -> np.ndarray:
        return self._doc_len

    @property
    def live(self) -> np.ndarray:
        """Whether each row is live (not deleted); read-only view."""
        view = self._live.view()
        view.flags.writeable = False
        return view

    def raw_csr(self, start: int, stop: int) -> sp.csr_matrix:
        """Rows ``start..stop-1`` (deleted ones included) as one CSR matrix of raw values over
        every term known now: the forward index an approximate search scores rows with."""
        width = len(self.terms)
        parts = []
        for seg in self._segments:
            a, b = max(start, seg.offset), min(stop, seg.offset + seg.raw.shape[0])
            if a < b:
                part = seg.raw[a - seg.offset : b - seg.offset].tocsr()
                parts.append(sp.csr_matrix(part, shape=(b - a, width), dtype=self.dtype))
        if not parts:
            return sp.csr_matrix((max(stop - start, 0), width), dtype=self.dtype)
        matrix = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
        matrix.sort_indices()
        return matrix

    def raw_rows(self, rows: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The stored entries of each row, in the order asked: ``(term ids, raw values)``, term
        ids ascending (names in :attr:`terms`), values before any ``doc_weighting``.

        >>> index = SparseIndex()
        >>> index.add_rows([{"b": 2.0, "a": 1.0}, {"a": 3.0}])
        array([0, 1])
        >>> ids, values = index.raw_rows([0])[0]
        >>> [index.terms[t] for t in ids], values.tolist()
        (['b', 'a'], [2.0, 1.0])
        """
        wanted = np.asarray(rows, dtype=np.int64)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= self.n_rows):
            raise InvalidInputError(f"rows must be in 0..{self.n_rows - 1}, got {list(rows)}")
        found: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for seg in self._segments:
            mine = wanted[(wanted >= seg.offset) & (wanted < seg.offset + seg.raw.shape[0])]
            if not len(mine):
                continue
            sub = seg.raw[mine - seg.offset].tocsr()
            sub.sort_indices()
            for i, row in enumerate(mine.tolist()):
                a, b = sub.indptr[i], sub.indptr[i + 1]
                found[row] = (sub.indices[a:b].astype(np.int64), sub.data[a:b].astype(np.float64))
        return [found[row] for row in wanted.tolist()]

    # -- writes --------------------------------------------------------------------------------

    def add_rows(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Append one row per term->value mapping; returns the new rows' numbers."""
        lengths = [len(row) for row in rows]
        terms = list(chain.from_iterable(row.keys() for row in rows))
        values = np.fromiter(
            chain.from_iterable(row.values() for row in rows), np.float64, count=len(terms)
        )
        return self._add_flat(terms, values, lengths)

    def add_matrix(self, matrix: sp.spmatrix, terms: Sequence[str]) -> np.ndarray:
        """Append one row per row of ``matrix``, whose columns are the terms named by ``terms``
        (the bulk form of :meth:`add_rows`: no dict per row); returns the new rows' numbers.

        >>> index = SparseIndex()
        >>> index.add_matrix(sp.csr_matrix([[0.0, 2.0], [1.0, 0.0]]), ["a", "b"])
        array([0, 1])
        >>> index.search({"b": 1.0}, k=1)
        (array([0]), array([2.], dtype=float32))
        """
        if matrix.shape[1] != len(terms):
            raise InvalidInputError(f"{matrix.shape[1]} columns but {len(terms)} terms")
        new = [t for t in dict.fromkeys(terms) if t not in self.term_ids]
        first = len(self.terms)
        self.term_ids.update(zip(new, range(first, first + len(new)), strict=True))
        self.terms.extend(new)
        columns = np.fromiter(map(self.term_ids.__getitem__, terms), np.int64, count=len(terms))
        csr = sp.csr_matrix(matrix)
        n_before = self.n_rows
        remapped = sp.csr_matrix(
            (csr.data.astype(self.dtype), columns[csr.indices], csr.indptr),
            shape=(csr.shape[0], len(self.terms)),
        )
        self._append(remapped.tocsc())
        return np.arange(n_before, self.n_rows)

    def add_term_counts(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Append one row per token list, valued by how often each term occurs in it."""
        terms = list(chain.from_iterable(token_lists))
        return self._add_flat(terms, None, [len(tokens) for tokens in token_lists])

    def _add_flat(
        self, terms: list[str], values: np.ndarray | None, lengths: list[int]
    ) -> np.ndarray:
        n_before = self.n_rows
        new = [t for t in dict.fromkeys(terms) if t not in self.term_ids]  # first-seen order
        first = len(self.terms)
        self.term_ids.update(zip(new, range(first, first + len(new)), strict=True))
        self.terms.extend(new)
        cols = np.fromiter(map(self.term_ids.__getitem__, terms), np.int32, count=len(terms))
        rows = np.repeat(np.arange(len(lengths)), lengths)
        vals = np.ones(len(terms), self.dtype) if values is None else values.astype(self.dtype)
        shape = (len(lengths), len(self.terms))
        # COO -> CSC sums repeated (row, term) pairs: that is the term count
        self._append(sp.coo_matrix((vals, (rows, cols)), shape=shape).tocsc())
        return np.arange(n_before, self.n_rows)

    def _append(self, csc: sp.csc_matrix) -> None:
        csc.sum_duplicates()
        csc.eliminate_zeros()
        n_new = csc.shape[0]
        self._segments.append(_Segment(offset=self.n_rows, raw=csc))
        self._live = np.concatenate([self._live, np.ones(n_new, dtype=bool)])
        self._doc_len = np.concatenate([self._doc_len, np.asarray(csc.sum(axis=1)).ravel()])
        df_new = np.diff(csc.indptr)
        self._df = np.concatenate([self._df, np.zeros(len(self.terms) - len(self._df), np.int64)])
        self._df[: len(df_new)] += df_new
        self._merge_segments()
        self._invalidate()

    def delete_rows(self, rows: Sequence[int]) -> None:
        gone = np.unique(np.asarray(rows, dtype=np.int64))
        gone = gone[self._live[gone]]
        if not len(gone):
            return
        for seg in self._segments:
            local = gone[(gone >= seg.offset) & (gone < seg.offset + seg.raw.shape[0])] - seg.offset
            if len(local):
                cols = seg.raw[local].tocsc()  # the deleted rows' terms
                self._df[: cols.shape[1]] -= np.diff(cols.indptr)
        self._live[gone] = False
        self._invalidate()

    def _merge_segments(self) -> None:
        segs = self._segments
        while len(segs) > 1 and segs[-1].raw.shape[0] * _MERGE_RATIO >= segs[-2].raw.shape[0]:
            last, prev = segs.pop(), segs.pop()
            width = len(self.terms)
            merged = sp.vstack([_widen(prev.raw, width), _widen(last.raw, width)], format="csc")
            segs.append(_Segment(offset=prev.offset, raw=merged))

    def _invalidate(self) -> None:
        # doc_weighting depends on the mean length: every scored value may have changed
        for seg in self._segments:
            seg.scored = None
        self._mean_length = None
        self._weighted_since_write = 0

    def _scored(self, seg: _Segment) -> sp.csc_matrix:
        if seg.scored is None:
            raw = seg.raw
            data = self._weighted(raw.data, raw.indices + seg.offset)
            seg.signed = bool(len(data)) and bool(data.min() < 0)
            seg.scored = sp.csc_matrix((data, raw.indices, raw.indptr), shape=raw.shape)
        return seg.scored

    def _weighted(self, data: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Raw values of postings in global ``rows`` as scored: weighted, deleted rows zero."""
        if self.doc_weighting is not None:
            data = self.doc_weighting(data, self._doc_len[rows], self.mean_length)
        return np.where(self._live[rows], data, 0).astype(self.dtype, copy=False)

    def _postings(self, seg: _Segment) -> tuple[sp.csc_matrix, bool]:
        """The segment's matrix and whether its values are already weighted. Right after a
        write, raw values are weighted per query (only the query's postings); once the postings
        weighted that way add up to the index's size, the whole segment is weighted once and
        cached: a busy writer never makes a search pay for the whole index, and a quiet index
        costs at most twice the work of weighting it eagerly (the ski-rental bound)."""
        if seg.scored is not None or self._weighted_since_write >= self._stored:
            return self._scored(seg), True
        return seg.raw, False

    @property
    def _stored(self) -> int:
        return sum(seg.raw.nnz for seg in self._segments)

    # -- search --------------------------------------------------------------------------------

    def query_vector(self, weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """Term -> weight dict as (term ids, weights), dropping terms the index has never seen."""
        known = [(self.term_ids[t], w) for t, w in weights.items() if t in self.term_ids and w]
        if not known:
            return np.zeros(0, np.int64), np.zeros(0, self.dtype)
        ids, ws = zip(*known, strict=True)
        return np.asarray(ids, np.int64), np.asarray(ws, self.dtype)

    def scores(
        self, term_ids: np.ndarray, weights: np.ndarray, touched: np.ndarray | None = None
    ) -> np.ndarray:
        """Dot product of the query vector with every row (zeros for rows it does not touch).

        With ``touched`` (bool per row), also mark the rows that share a query term.
        """
        return self._scores(term_ids, weights, touched)[0]

    def _scores(
        self, term_ids: np.ndarray, weights: np.ndarray, touched: np.ndarray | None
    ) -> tuple[np.ndarray, bool]:
        """:meth:`scores`, and whether any posting it scored holds a negative value."""
        scores = np.zeros(self.n_rows, dtype=self.dtype)
        signed = False
        for seg in self._segments:
            m, weighted = self._postings(seg)
            signed |= weighted and seg.signed
            indptr, indices, data = m.indptr, m.indices, m.data
            end_row = seg.offset + m.shape[0]
            target = scores[seg.offset : end_row]
            marks = touched[seg.offset : end_row] if touched is not None else None
            for tid, w in zip(term_ids.tolist(), weights.tolist(), strict=True):
                if tid >= m.shape[1]:
                    continue
                start, end = indptr[tid], indptr[tid + 1]
                if start != end:
                    rows, values = indices[start:end], data[start:end]
                    if not weighted:
                        values = self._weighted(values, rows + seg.offset)
                        self._weighted_since_write += len(values)
                        signed |= bool(values.min() < 0)
                    # row indices within one column are unique, so fancy += is exact
                    target[rows] += w * values
                    if marks is not None:
                        marks[rows] = True
        return scores, signed

    def search(
        self, weights: dict[str, float], k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the ``k`` best rows that share a term with the query, best first.

        Ties are broken by row number, so results are deterministic. ``mask`` (bool per row)
        restricts the candidates. Scores may be negative (negative query weights, as in
        Rocchio, or negative idf); when every weight and value is positive, the rows the query
        touches are exactly those with a positive score, and no marking is needed.
        """
        term_ids, ws = self.query_vector(weights)
        # rows that share a query term need marking only where a score can be negative
        settled = all(seg.scored is not None and not seg.signed for seg in self._segments)
        touched = None if settled and not (ws < 0).any() else np.zeros(self.n_rows, dtype=bool)
        scores, signed = self._scores(term_ids, ws, touched)
        if touched is None or (not (ws < 0).any() and not signed):
            return top_k(scores, k, mask)
        touched &= self._live
        if mask is not None:
            touched &= mask
        return top_k(scores, k, candidates=touched)

    # -- persistence ---------------------------------------------------------------------------

    def compacted_raw(self) -> sp.csc_matrix:
        """All live rows in row order, one CSC matrix of raw values."""
        width = len(self.terms)
        parts = [_widen(seg.raw, width) for seg in self._segments]
        if not parts:
            return sp.csc_matrix((0, width), dtype=self.dtype)
        matrix = sp.vstack(parts, format="csr")[np.flatnonzero(self._live)]
        return matrix.tocsc()

    def write(self, folder: Path, prefix: str = "sparse") -> None:
        self.snapshot()(folder, prefix)

    def snapshot(self) -> Callable[[Path, str], None]:
        """A writer of the live rows as they are now; later writes to the index do not reach it
        (the compacted matrix and the term list are copies)."""
        raw, terms, dtype = self.compacted_raw(), list(self.terms), self.dtype

        def write(folder: Path, prefix: str = "sparse") -> None:
            np.save(folder / f"{prefix}_data.npy", raw.data.astype(dtype, copy=False))
            np.save(folder / f"{prefix}_indices.npy", raw.indices.astype(np.int32, copy=False))
            np.save(folder / f"{prefix}_indptr.npy", raw.indptr.astype(np.int64, copy=False))
            # JSON, not lines: a term may hold any character, line separators included
            (folder / f"{prefix}_terms.json").write_text(json.dumps(terms), encoding="utf-8")

        return write

    @classmethod
    def read(
        cls,
        folder: Path,
        n_rows: int,
        prefix: str = "sparse",
        doc_weighting: DocWeighting | None = None,
        dtype: str = "float32",
    ) -> SparseIndex:
        index = cls(doc_weighting, dtype)
        try:
            terms = json.loads((folder / f"{prefix}_terms.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CorruptCollectionError(f"{folder}: sparse index unreadable: {exc}") from None
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise CorruptCollectionError(
                f"{folder}/{prefix}_terms.json is not a JSON list of strings"
            )
        if len(set(terms)) != len(terms):
            raise CorruptCollectionError(f"{folder}/{prefix}_terms.json repeats a term")
        # each array's header is checked against the file's size before anything is allocated
        indptr = load_npy(
            folder / f"{prefix}_indptr.npy", dtypes=_INDEX_DTYPES, shape=(len(terms) + 1,)
        )
        indices = load_npy(folder / f"{prefix}_indices.npy", dtypes=_INDEX_DTYPES, shape=(None,))
        data = load_npy(folder / f"{prefix}_data.npy", dtypes=index.dtype, shape=(len(indices),))
        _check_csc(folder, prefix, indptr, indices, data, n_rows)
        raw = sp.csc_matrix((data, indices, indptr), shape=(n_rows, len(terms)))
        index.terms = terms
        index.term_ids = {t: i for i, t in enumerate(terms)}
        index._append(raw)
        return index


def snapshot_collection(documents: DocumentStore, index: SparseIndex) -> Callable[[Path], None]:
    """A writer of a sparse-index collection (documents.jsonl + the index) as it is now, for
    :meth:`Retriever._snapshot`: documents are immutable records and the index snapshot copies
    its arrays, so the writer can run after the lock is released."""
    docs = list(documents.live_documents())
    write_index = index.snapshot()

    def write(folder: Path) -> None:
        write_documents(folder / "documents.jsonl", docs)
        write_index(folder, "sparse")

    return write


def _check_csc(
    folder: Path,
    prefix: str,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_rows: int,
) -> None:
    """Raise :class:`CorruptCollectionError` unless the arrays form a valid CSC matrix of
    ``n_rows`` rows with finite values: what a search relies on to index without checking."""
    where = f"{folder}: sparse index {prefix}"
    if indptr[0] != 0 or indptr[-1] != len(indices):
        raise CorruptCollectionError(
            f"{where}: column pointers run from {indptr[0]} to {indptr[-1]}; expected 0 to "
            f"{len(indices)} (the entries stored)"
        )
    if (np.diff(indptr) < 0).any():
        raise CorruptCollectionError(f"{where}: column pointers decrease")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_rows):
        raise CorruptCollectionError(
            f"{where}: row numbers {indices.min()}..{indices.max()} outside 0..{n_rows - 1} "
            f"({n_rows} documents)"
        )
    if not np.isfinite(data).all():
        raise CorruptCollectionError(f"{where}: values that are not finite numbers")


def _widen(m: sp.csc_matrix, width: int) -> sp.csc_matrix:
    """The same matrix with empty columns appended up to ``width`` (terms added later)."""
    if m.shape[1] == width:
        return m
    indptr = np.concatenate([m.indptr, np.full(width - m.shape[1], m.indptr[-1])])
    return sp.csc_matrix((m.data, m.indices, indptr), shape=(m.shape[0], width))
