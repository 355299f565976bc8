"""PLAID candidate generation: which rows of a multi-vector index a query scores exactly.

Santhanam et al., "PLAID: An Efficient Engine for Late Interaction Retrieval", CIKM 2022.

Every token carries the id of its nearest centroid (spherical k-means over the token vectors).
An inverted list maps each centroid to the documents holding a token assigned to it
(:func:`inverted_lists`). A query token probes its ``nprobe`` best centroids; a document's
approximate score is, summed over query tokens, the best centroid score among the probed
centroids it holds (PLAID's centroid interaction with pruning). The ``ndocs`` best approximate
documents (:func:`centroid_candidates`) are then scored exactly by MaxSim over their decoded
tokens, by :class:`~rag_retrievers.index.multivector.MultiVectorIndex`.

Rows are laid out as in the index: row ``r`` holds tokens ``starts[r] .. starts[r] +
lengths[r] - 1`` (:func:`token_ranges`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rag_retrievers.scoring.maxsim import maxsim_batch_from_scores


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


def inverted_lists(
    codes: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    live: np.ndarray,
    n_centroids: int,
) -> tuple[np.ndarray, np.ndarray]:
    """centroid -> live rows holding a token of it, as CSR (``indptr``, rows).

    ``codes``: the centroid id of every stored token (int64); ``live``: the rows not deleted.
    """
    n_rows = len(starts)
    owner = np.full(len(codes), -1, dtype=np.int64)
    live_rows = np.flatnonzero(live)
    owner[token_ranges(starts[live_rows], lengths[live_rows])] = np.repeat(
        live_rows, lengths[live_rows]
    )
    held = owner >= 0
    pairs = np.unique(codes[held] * n_rows + owner[held])
    cells, rows = pairs // max(n_rows, 1), pairs % max(n_rows, 1)
    indptr = np.searchsorted(cells, np.arange(n_centroids + 1))
    return indptr, rows


def centroid_candidates(
    query: np.ndarray,
    centroids: np.ndarray,
    lists: tuple[np.ndarray, np.ndarray],
    allowed: np.ndarray,
    *,
    nprobe: int,
    ndocs: int,
    row_codes: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Up to ``ndocs`` allowed rows with the best approximate scores, ascending.

    Stage 1: rows in the inverted lists (``lists``, from :func:`inverted_lists`) of each query
    token's ``nprobe`` best centroids, scored with those centroids only; the best ``4 * ndocs``
    go on. Stage 2: those rows scored with every token's centroid (MaxSim over centroid scores);
    the best ``ndocs``. ``row_codes(rows)`` gives the centroid ids of those rows' tokens back to
    back, and how many tokens each row has.
    """
    indptr, list_rows = lists
    scores = np.asarray(query, np.float32) @ centroids.T  # (query tokens, centroids)
    nprobe = min(nprobe, len(centroids))
    probes = np.argpartition(-scores, nprobe - 1, axis=1)[:, :nprobe]
    tokens = np.repeat(np.arange(len(query)), nprobe)
    cells = probes.ravel()
    sizes = indptr[cells + 1] - indptr[cells]
    rows = list_rows[token_ranges(indptr[cells], sizes)]
    values = np.repeat(scores[tokens, cells], sizes)
    token_of = np.repeat(tokens, sizes)
    keep = allowed[rows]
    rows, values, token_of = rows[keep], values[keep], token_of[keep]
    if not len(rows):
        return rows
    # per (row, query token): the best probed centroid; then summed over query tokens
    key = rows * len(query) + token_of
    order = np.lexsort((-values, key))
    key, values = key[order], values[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    row_of = key[first] // len(query)
    found, start = np.unique(row_of, return_index=True)
    found = _best(found, np.add.reduceat(values[first], start), 4 * ndocs)
    if len(found) <= ndocs:
        return found
    codes, lengths = row_codes(found)
    approx = maxsim_batch_from_scores(scores[:, codes], lengths)
    return _best(found, approx, ndocs)
