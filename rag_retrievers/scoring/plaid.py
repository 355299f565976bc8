"""PLAID candidate generation: which rows of a multi-vector index a query scores exactly.

Santhanam et al., "PLAID: An Efficient Engine for Late Interaction Retrieval", CIKM 2022.

Every token carries the id of its nearest centroid (spherical k-means over the token vectors).
An inverted list maps each centroid to the documents holding a token assigned to it
(:func:`inverted_lists`). A query token probes its ``nprobe`` best centroids; a document's
approximate score is, summed over query tokens, the best centroid score among the probed
centroids it holds (PLAID's centroid interaction with pruning); the best ``4 * ndocs`` are
scored again with all the centroids they hold, and the ``ndocs`` best
(:func:`centroid_candidates`) are then scored exactly by MaxSim over their stored tokens, by
:class:`~rag_retrievers.index.multivector.MultiVectorIndex`.

Rows are laid out as in the index: row ``r`` holds tokens ``starts[r] .. starts[r] +
lengths[r] - 1`` (:func:`token_ranges`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def token_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The token indices ``start .. start + length - 1`` of each row, concatenated."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(np.asarray(starts, np.int64) - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


def _best(rows: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` rows with the largest scores, ascending by row."""
    if len(rows) <= n:
        return rows
    return np.sort(rows[np.argpartition(-scores, n - 1)[:n]])


@dataclass(frozen=True)
class CentroidLists:
    """Both directions of the token -> centroid assignment of the live rows, as CSR arrays:
    ``rows[indptr[c]:indptr[c + 1]]`` are the rows holding a token of centroid ``c``, and
    ``cells[row_indptr[r]:row_indptr[r + 1]]`` the distinct centroids of row ``r``'s tokens
    (both ascending). Built by :func:`centroid_lists`, after each write, once."""

    indptr: np.ndarray
    rows: np.ndarray
    row_indptr: np.ndarray
    cells: np.ndarray


def centroid_lists(
    codes: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    live: np.ndarray,
    n_centroids: int,
) -> CentroidLists:
    """The :class:`CentroidLists` of the live rows.

    ``codes``: the centroid id of every stored token (int64); ``live``: the rows not deleted.
    """
    n_rows = max(len(starts), 1)
    owner = np.full(len(codes), -1, dtype=np.int64)
    live_rows = np.flatnonzero(live)
    owner[token_ranges(starts[live_rows], lengths[live_rows])] = np.repeat(
        live_rows, lengths[live_rows]
    )
    held = owner >= 0
    pairs = np.unique(codes[held] * n_rows + owner[held])  # by centroid, then row
    cells, rows = pairs // n_rows, pairs % n_rows
    by_row = np.argsort(rows, kind="stable")  # by row, then centroid
    small = np.int32 if max(n_rows, n_centroids) < 2**31 else np.int64  # 4 bytes an entry
    return CentroidLists(
        indptr=np.searchsorted(cells, np.arange(n_centroids + 1)),
        rows=rows.astype(small),
        row_indptr=np.searchsorted(rows[by_row], np.arange(len(starts) + 1)),
        cells=cells[by_row].astype(small),
    )


def inverted_lists(
    codes: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    live: np.ndarray,
    n_centroids: int,
) -> tuple[np.ndarray, np.ndarray]:
    """centroid -> live rows holding a token of it, as CSR (``indptr``, rows)."""
    lists = centroid_lists(codes, starts, lengths, live, n_centroids)
    return lists.indptr, lists.rows


def centroid_candidates(
    scores: np.ndarray,
    lists: CentroidLists,
    allowed: np.ndarray,
    *,
    nprobe: int,
    ndocs: int,
) -> np.ndarray:
    """Up to ``ndocs`` allowed rows with the best approximate scores, ascending.

    ``scores``: the query's token x centroid scores ``(query tokens, centroids)``. Stage 1: rows
    in the inverted lists of each query token's ``nprobe`` best centroids, scored with those
    centroids only (per query token the best probed centroid a row holds, summed over query
    tokens); the best ``4 * ndocs`` go on. Stage 2: those rows scored with every centroid they
    hold (MaxSim over centroid scores, from each row's distinct centroids); the best ``ndocs``.
    Array operations over all probed list entries at once: no loop over rows or tokens.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n_query, n_centroids = scores.shape
    if not n_query or not n_centroids:
        return np.empty(0, dtype=np.int64)
    nprobe = min(nprobe, n_centroids)
    probes = np.argpartition(-scores, nprobe - 1, axis=1)[:, :nprobe]
    tokens = np.repeat(np.arange(n_query), nprobe)
    cells = probes.ravel()
    sizes = lists.indptr[cells + 1] - lists.indptr[cells]
    rows = lists.rows[token_ranges(lists.indptr[cells], sizes)]
    keep = allowed[rows]
    rows = rows[keep]
    if not len(rows):
        return rows
    values = np.repeat(scores[tokens, cells], sizes)[keep]
    token_of = np.repeat(tokens, sizes)[keep]
    # per (query token, row): the best probed centroid (-inf where none); then summed
    found, slot = np.unique(rows, return_inverse=True)
    best = np.full(n_query * len(found), -np.inf, dtype=np.float32)
    np.maximum.at(best, token_of * len(found) + slot, values)
    best[np.isneginf(best)] = 0.0
    approx = best.reshape(n_query, len(found)).sum(axis=0)
    found = _best(found, approx, 4 * ndocs)
    if len(found) <= ndocs:
        return found
    first = lists.row_indptr[found]
    counts = lists.row_indptr[found + 1] - first
    held = lists.cells[token_ranges(first, counts)]
    # (held centroids, query tokens): one contiguous row gathered per centroid a row holds
    per_cell = np.ascontiguousarray(scores.T)[held]
    per_row = np.maximum.reduceat(per_cell, np.cumsum(counts) - counts, axis=0)
    # summed over query tokens in their order, as MaxSim over (query tokens, tokens) sums
    return _best(found, np.ascontiguousarray(per_row.T).sum(axis=0), ndocs)
