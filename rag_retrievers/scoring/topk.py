"""Exact top-k over a score array: best first, ties broken by index (deterministic)."""

from __future__ import annotations

import numpy as np


def top_k(
    scores: np.ndarray,
    k: int,
    mask: np.ndarray | None = None,
    *,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores, best first, ties by index.

    Without ``candidates`` (bool per index) only positive scores count; ``mask`` removes
    indices from consideration.

    >>> top_k(np.array([0.5, 2.0, 0.0, 2.0, 1.0]), k=3)
    (array([1, 3, 4]), array([2., 2., 1.]))
    """
    if candidates is None:
        candidates = scores > 0
    if mask is not None:
        candidates = candidates & mask
    candidates = np.flatnonzero(candidates)
    if len(candidates) > k:
        part = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        kth = scores[part].min()
        # argpartition picks arbitrary members of a tie at the k-th score: take them by index
        above = candidates[scores[candidates] > kth]
        tied = candidates[scores[candidates] == kth][: k - len(above)]
        candidates = np.concatenate([above, tied])
    order = np.lexsort((candidates, -scores[candidates]))
    rows = candidates[order]
    return rows, scores[rows]
