"""Blocked, summarised posting lists for approximate learned-sparse retrieval: the build steps of
Seismic (Bruch, Nardini, Rulli and Venturini, "Efficient Inverted Indexes for Approximate
Retrieval over Learned Sparse Representations", SIGIR 2024, arXiv:2404.18812).

1. **Static pruning** (:func:`prune_columns`): each term keeps the ``keep`` postings with the
   largest values; learned-sparse vectors concentrate a term's mass in few documents.
2. **Blocking** (:func:`cluster_lists`): each pruned list is split into blocks of similar
   documents: ``fraction`` x its length random members become centroids, every member joins the
   centroid with the largest inner product (Seismic's random k-means, one assignment pass).
   Inner products are estimated in a seeded Gaussian random projection (:func:`sketch`, Johnson
   and Lindenstrauss) so that each list is one matrix product; documents that are near
   duplicates land in one block either way.
3. **Summaries** (:func:`block_summaries`): a block's summary is the term-wise maximum of its
   documents' vectors (each document cut to its ``doc_terms`` largest entries), pruned to the
   largest entries that hold ``energy`` of its L1 mass and quantised to 8 bits per block
   (rounded up, so a stored value never falls below the maximum it stands for).

A query scores a block's summary instead of its documents and skips the block when that score
falls short of the current k-th best (see :mod:`rag_retrievers.index.sparse_blocks`).

Everything is numpy and scipy: one Python step per term list or per batch of blocks, none per
posting. Results depend only on the values and the order of the rows, not on row numbers: an
index rebuilt after its deleted rows are compacted away has the same blocks.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

#: (block, term) entries gathered per step of the summary build: bounds its memory
_SUMMARY_BATCH = 1 << 22
#: rows per step of the per-row cut: bounds the padded (rows x longest row) buffer
_ROW_BATCH = 1 << 15


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``arange(s, s + n)`` for each start and length, without a loop.

    >>> ranges(np.array([5, 0, 9]), np.array([2, 0, 3])).tolist()
    [5, 6, 9, 10, 11]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    offsets = np.repeat(np.asarray(starts, dtype=np.int64) - (ends - lengths), lengths)
    return offsets + np.arange(total, dtype=np.int64)


def segment_sums(values: np.ndarray, pointers: np.ndarray) -> np.ndarray:
    """The sum of ``values[pointers[i]:pointers[i + 1]]`` for each ``i`` (empty segments: 0).

    >>> segment_sums(np.array([True, False, True, True]), np.array([0, 2, 2, 4, 4])).tolist()
    [1, 0, 2, 0]
    """
    cumulative = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    return cumulative[pointers[1:]] - cumulative[pointers[:-1]]


def prune_columns(matrix: sp.csc_matrix, keep: int) -> sp.csc_matrix:
    """Each column's ``keep`` largest entries (static pruning); the row order within a column is
    kept. Ties at the cut are broken by position, deterministically.

    >>> m = sp.csc_matrix(np.array([[3.0, 1.0], [1.0, 0.0], [2.0, 5.0]]))
    >>> prune_columns(m, 2).toarray().tolist()
    [[3.0, 1.0], [0.0, 0.0], [2.0, 5.0]]
    """
    lengths = np.diff(matrix.indptr)
    kept = np.ones(matrix.nnz, dtype=bool)
    for col in np.flatnonzero(lengths > keep).tolist():
        a, b = int(matrix.indptr[col]), int(matrix.indptr[col + 1])
        # stable sort on the negated values: the largest first, ties by position
        drop = np.argsort(-matrix.data[a:b], kind="stable")[keep:]
        kept[a + drop] = False
    indptr = np.concatenate([[0], np.cumsum(segment_sums(kept, matrix.indptr))])
    return sp.csc_matrix(
        (matrix.data[kept], matrix.indices[kept], indptr), shape=matrix.shape, copy=False
    )


def prune_globally(matrix: sp.csc_matrix, average: int, cap: int) -> sp.csc_matrix:
    """Seismic's static pruning: the ``average`` x columns largest entries overall (entries tied
    with the smallest kept value are kept too), then each column cut to its ``cap`` largest
    (:func:`prune_columns`). Lists of terms with many large values keep more than ``average``.

    >>> m = sp.csc_matrix(np.array([[9.0, 1.0], [8.0, 0.0], [7.0, 2.0]]))
    >>> prune_globally(m, 1, 2).toarray().tolist()
    [[9.0, 0.0], [8.0, 0.0], [0.0, 0.0]]
    """
    budget = average * matrix.shape[1]
    if budget < matrix.nnz:
        threshold = np.partition(matrix.data, matrix.nnz - budget)[matrix.nnz - budget]
        kept = matrix.data >= threshold
        indptr = np.concatenate([[0], np.cumsum(segment_sums(kept, matrix.indptr))])
        matrix = sp.csc_matrix(
            (matrix.data[kept], matrix.indices[kept], indptr), shape=matrix.shape, copy=False
        )
    return prune_columns(matrix, cap)


def top_per_row(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row cut to its ``keep`` largest entries (a row with ties at the cut keeps them all).

    >>> m = sp.csr_matrix(np.array([[3.0, 1.0, 2.0], [0.0, 4.0, 0.0]]))
    >>> top_per_row(m, 2).toarray().tolist()
    [[3.0, 0.0, 2.0], [0.0, 4.0, 0.0]]
    """
    lengths = np.diff(matrix.indptr)
    if not len(lengths) or int(lengths.max()) <= keep:
        return matrix
    kept = np.ones(matrix.nnz, dtype=bool)
    for start in range(0, len(lengths), _ROW_BATCH):
        rows = np.arange(start, min(start + _ROW_BATCH, len(lengths)))
        long = rows[lengths[rows] > keep]
        if not len(long):
            continue
        width = int(lengths[long].max())
        padded = np.full((len(long), width), -np.inf, dtype=np.float64)
        where = ranges(matrix.indptr[long], lengths[long])
        local = np.repeat(np.arange(len(long)), lengths[long])
        position = where - np.repeat(matrix.indptr[long], lengths[long])
        padded[local, position] = matrix.data[where]
        threshold = -np.partition(-padded, keep - 1, axis=1)[:, keep - 1]
        kept[where] = matrix.data[where] >= threshold[local]
    indptr = np.concatenate([[0], np.cumsum(segment_sums(kept, matrix.indptr))])
    return sp.csr_matrix(
        (matrix.data[kept], matrix.indices[kept], indptr), shape=matrix.shape, copy=False
    )


def sketch(matrix: sp.csr_matrix, dim: int, seed: int = 0) -> np.ndarray:
    """Rows projected to ``dim`` dimensions by a seeded Gaussian matrix scaled by
    ``1/sqrt(dim)``: the dot product of two sketches estimates that of the rows (float32)."""
    rng = np.random.default_rng(seed)
    projection = rng.standard_normal((matrix.shape[1], dim), dtype=np.float32)
    projection /= np.float32(np.sqrt(dim))
    out = matrix.astype(np.float32) @ projection
    return np.ascontiguousarray(out, dtype=np.float32)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread inside the block (with threadpoolctl where installed): the
    blocking's many small products run several times faster so, above all on a busy machine."""
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def cluster_lists(
    postings: sp.csc_matrix,
    sketches: np.ndarray,
    fraction: float,
    min_size: int = 2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split each column's postings into blocks of similar rows.

    Returns ``(rows, list_blocks, block_starts)``: ``rows`` holds every posting's row, grouped
    by column and, within a column, by block; column ``t``'s blocks are ``list_blocks[t]`` to
    ``list_blocks[t + 1]``; block ``b``'s rows are ``rows[block_starts[b]:block_starts[b+1]]``.
    A column of ``n`` postings gets ``max(1, int(fraction * n))`` random members as centroids;
    a cluster smaller than ``min_size`` gives its members to the other centroids.
    """
    rng = np.random.default_rng(seed)
    n_cols = postings.shape[1]
    indptr, indices = postings.indptr, postings.indices
    rows = np.empty(postings.nnz, dtype=np.int32)
    list_blocks = np.zeros(n_cols + 1, dtype=np.int64)
    sizes: list[np.ndarray] = []
    for col in range(n_cols):
        a, b = int(indptr[col]), int(indptr[col + 1])
        n = b - a
        members = indices[a:b]
        n_centroids = max(1, int(fraction * n))
        if n == 0:
            list_blocks[col + 1] = list_blocks[col]
            continue
        if n_centroids == 1:
            rows[a:b] = members
            sizes.append(np.asarray([n], dtype=np.int64))
            list_blocks[col + 1] = list_blocks[col] + 1
            continue
        centroids = rng.choice(n, n_centroids, replace=False)
        mine = sketches[members]
        scores = mine @ mine[centroids].T
        assigned = scores.argmax(axis=1)
        counts = np.bincount(assigned, minlength=n_centroids)
        small = counts < min_size
        if small.any() and not small.all():
            scores[:, small] = -np.inf
            assigned = scores.argmax(axis=1)
            counts = np.bincount(assigned, minlength=n_centroids)
        order = np.argsort(assigned, kind="stable")
        rows[a:b] = members[order]
        counts = counts[counts > 0]
        sizes.append(counts)
        list_blocks[col + 1] = list_blocks[col] + len(counts)
    all_sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
    block_starts = np.concatenate([[0], np.cumsum(all_sizes)]).astype(np.int64)
    return rows, list_blocks, block_starts


def block_summaries(
    vectors: sp.csr_matrix,
    rows: np.ndarray,
    block_starts: np.ndarray,
    energy: float,
    block_terms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One summary per block: the term-wise maximum of its rows of ``vectors``, quantised to
    ``uint8`` levels with one scale per block (``maximum / 255``, levels rounded up), pruned to
    the highest levels that hold ``energy`` of its L1 mass (the level that crosses the share is
    kept whole). ``block_terms`` (one term per block, optional) names a term each block's
    summary keeps whatever its share: the term of the posting list the block belongs to, whose
    values put its rows in the list, so that a query on that term never scores the block 0.

    Returns ``(starts, terms, levels, scales)``: block ``b``'s summary is ``terms[s:e]`` (sorted)
    with values ``levels[s:e] * scales[b]``, where ``s, e = starts[b], starts[b + 1]``.

    >>> v = sp.csr_matrix(np.array([[4.0, 1.0, 0.0], [2.0, 0.0, 3.0]]))
    >>> starts, terms, levels, scales = block_summaries(v, np.array([0, 1]), np.array([0, 2]), 0.5)
    >>> starts.tolist(), terms.tolist(), (levels * scales).round(2).tolist()
    ([0, 1], [0], [4.0])
    """
    n_blocks = len(block_starts) - 1
    row_lengths = np.diff(vectors.indptr)
    entries = np.cumsum(row_lengths[rows]) if len(rows) else np.zeros(0, dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    block = 0
    while block < n_blocks:
        # the longest run of whole blocks whose rows hold at most _SUMMARY_BATCH entries
        first_posting = int(block_starts[block])
        before = int(entries[first_posting - 1]) if first_posting else 0
        limit = np.searchsorted(entries, before + _SUMMARY_BATCH, side="right")
        end = int(np.searchsorted(block_starts, limit, side="right")) - 1
        end = min(max(end, block + 1), n_blocks)
        own = None if block_terms is None else block_terms[block:end]
        parts.append(_summaries_of(vectors, rows, block_starts[block : end + 1], energy, own))
        block = end
    if not parts:
        empty = np.zeros(0, np.int64)
        return (
            np.zeros(1, np.int64),
            empty.astype(np.int32),
            empty.astype(np.uint8),
            np.zeros(0, np.float32),
        )
    counts = np.concatenate([p[0] for p in parts])
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    terms = np.concatenate([p[1] for p in parts]).astype(np.int32)
    levels = np.concatenate([p[2] for p in parts])
    scales = np.concatenate([p[3] for p in parts])
    return starts, terms, levels, scales


def _summaries_of(
    vectors: sp.csr_matrix,
    rows: np.ndarray,
    block_starts: np.ndarray,
    energy: float,
    own: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`block_summaries` of consecutive blocks: (entries per block, terms, levels, scales),
    in block order, terms ascending within a block. Linear time: no sort."""
    first, last = int(block_starts[0]), int(block_starts[-1])
    sizes = np.diff(block_starts)
    n_blocks, width = len(sizes), vectors.shape[1]
    block_of_row = np.repeat(np.arange(n_blocks), sizes)
    # a column-major copy lists each term's entries by row, so by block: runs are contiguous
    by_term = vectors[rows[first:last]].tocsc()
    blocks = block_of_row[by_term.indices]
    if not len(blocks):
        zero = np.zeros(0, np.int64)
        return (
            np.zeros(n_blocks, np.int64),
            zero,
            zero.astype(np.uint8),
            np.zeros(n_blocks, np.float32),
        )
    # a run (one block's entries of one term) starts where the block or the term changes
    change = np.empty(len(blocks), dtype=bool)
    change[0] = True
    np.not_equal(blocks[1:], blocks[:-1], out=change[1:])
    change[by_term.indptr[:-1][np.diff(by_term.indptr) > 0]] = True
    starts = np.flatnonzero(change)
    maxima = np.maximum.reduceat(by_term.data, starts).astype(np.float64)
    blocks = blocks[starts]
    terms = np.searchsorted(by_term.indptr, starts, side="right") - 1
    peak = np.zeros(n_blocks, dtype=np.float64)
    np.maximum.at(peak, blocks, maxima)
    scales = (peak / 255.0).astype(np.float32)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float64)
    levels = np.clip(np.ceil(maxima / safe[blocks] - 1e-6), 1, 255).astype(np.int64)
    # mass per (block, level), then per block the highest levels holding the energy share
    mass = np.bincount(blocks * 256 + levels, weights=maxima, minlength=n_blocks * 256)
    above = np.cumsum(mass.reshape(n_blocks, 256)[:, ::-1], axis=1)[:, ::-1]  # mass >= level
    enough = above >= energy * above[:, :1]
    lowest = np.where(enough.any(axis=1), 255 - np.argmax(enough[:, ::-1], axis=1), 1)
    kept = levels >= lowest[blocks]
    if own is not None:
        kept |= terms == own[blocks]
    blocks, terms, levels = blocks[kept], terms[kept], levels[kept]
    # runs are ordered by (term, block): scipy's counting sort by block keeps terms ascending
    by_block = sp.csr_matrix(
        (levels.astype(np.uint8), (blocks, terms)), shape=(n_blocks, width), dtype=np.uint8
    )
    counts = np.diff(by_block.indptr).astype(np.int64)
    return counts, by_block.indices, by_block.data, scales


def summaries_by_term(
    list_blocks: np.ndarray, starts: np.ndarray, terms: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Block-major summaries (:func:`block_summaries`) regrouped per list and term, as Seismic
    stores them: a query then touches only the entries of its own terms.

    Returns ``(list_pairs, pair_terms, pair_starts, entry_blocks, entry_levels)``: list ``l``'s
    terms are ``pair_terms[list_pairs[l]:list_pairs[l + 1]]`` (ascending); the blocks whose
    summary holds pair ``p``'s term are ``entry_blocks[pair_starts[p]:pair_starts[p + 1]]``,
    with levels ``entry_levels[...]``.

    >>> lists, terms, pairs, blocks, levels = summaries_by_term(
    ...     np.array([0, 2]), np.array([0, 2, 3]), np.array([4, 7, 4]), np.array([9, 8, 7]))
    >>> lists.tolist(), terms.tolist(), pairs.tolist(), blocks.tolist(), levels.tolist()
    ([0, 2], [4, 7], [0, 2, 3], [0, 1, 0], [9, 7, 8])
    """
    n_lists = len(list_blocks) - 1
    block_of_entry = np.repeat(np.arange(len(starts) - 1, dtype=np.int64), np.diff(starts))
    list_of_block = np.repeat(np.arange(n_lists, dtype=np.int64), np.diff(list_blocks))
    width = int(terms.max()) + 1 if len(terms) else 1
    keys = list_of_block[block_of_entry] * width + terms
    order = np.argsort(keys, kind="stable")  # blocks stay ascending within a (list, term)
    keys = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    pair_at = np.flatnonzero(first)
    pair_lists = keys[pair_at] // width
    list_pairs = np.searchsorted(pair_lists, np.arange(n_lists + 1)).astype(np.int64)
    pair_starts = np.concatenate([pair_at, [len(keys)]]).astype(np.int64)
    return (
        list_pairs,
        (keys[pair_at] % width).astype(np.int32),
        pair_starts,
        block_of_entry[order].astype(np.int32),
        levels[order],
    )


def row_scores(matrix: sp.csr_matrix, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``matrix[rows] @ query``: the dot product of each given row with a dense query.

    Calls scipy's own C routines for row gathering and the product directly, as
    ``matrix[rows] @ query`` does after its per-call checks (a quarter of a millisecond, more
    than the arithmetic for a round of candidates); the public expression where they are not
    there. ``rows`` must be valid row numbers (the caller's own).

    >>> m = sp.csr_matrix(np.array([[1.0, 0.0], [2.0, 3.0], [0.0, 4.0]], dtype=np.float32))
    >>> row_scores(m, np.array([2, 0]), np.array([1.0, 0.5], dtype=np.float32)).tolist()
    [2.0, 1.0]
    """
    if _csr_row_index is None or _csr_matvec is None:  # pragma: no cover - other scipy layouts
        return np.asarray(matrix[rows] @ query)
    indptr, dtype = matrix.indptr, matrix.indptr.dtype
    rows = rows.astype(dtype, copy=False)
    lengths = indptr[rows + 1] - indptr[rows]
    pointers = np.zeros(len(rows) + 1, dtype=dtype)
    np.cumsum(lengths, out=pointers[1:])
    total = int(pointers[-1])
    indices = np.empty(total, dtype=matrix.indices.dtype)
    data = np.empty(total, dtype=matrix.data.dtype)
    _csr_row_index(len(rows), rows, indptr, matrix.indices, matrix.data, indices, data)
    out = np.zeros(len(rows), dtype=np.result_type(data.dtype, query.dtype))
    _csr_matvec(len(rows), matrix.shape[1], pointers, indices, data, query.astype(out.dtype), out)
    return out


try:  # scipy's C routines behind csr[rows] and csr @ vector
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
    from scipy.sparse._sparsetools import csr_row_index as _csr_row_index
except ImportError:  # pragma: no cover - a scipy that moved them: the public path
    _csr_matvec = _csr_row_index = None
