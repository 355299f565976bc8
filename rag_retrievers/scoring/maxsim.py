"""Late interaction as pure functions: MaxSim scores and token pooling.

MaxSim (Khattab & Zaharia, "ColBERT", SIGIR 2020): a document's score for a query is the sum,
over the query's token vectors, of the largest dot product with any of the document's token
vectors. With L2-normalised vectors each term is a cosine in [-1, 1].

>>> import numpy as np
>>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
>>> d = np.array([[0.6, 0.8], [1.0, 0.0]])
>>> float(maxsim(q, d))  # max(0.6, 1.0) + max(0.8, 0.0)
1.8
"""

from __future__ import annotations

import numpy as np

from rag_retrievers.errors import InvalidInputError


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """MaxSim of one query ``(q, dim)`` and one document ``(t, dim)``; 0 for an empty document."""
    if len(document) == 0 or len(query) == 0:
        return 0.0
    return float((query @ document.T).max(axis=1).sum())


def maxsim_batch(queries: list[np.ndarray], tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """MaxSim of each query against documents laid out one after another.

    ``tokens`` ``(sum(lengths), dim)`` holds the documents' vectors back to back, ``lengths``
    how many each has. Returns ``(len(queries), len(lengths))`` float32; an empty document
    scores 0.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(tokens) != int(lengths.sum()):
        raise InvalidInputError(f"{len(tokens)} token vectors, but lengths sum to {lengths.sum()}")
    out = np.zeros((len(queries), len(lengths)), dtype=np.float32)
    nonempty = lengths > 0
    if not len(queries) or not nonempty.any():
        return out
    stacked = np.concatenate(queries).astype(np.float32, copy=False)
    sims = stacked @ np.asarray(tokens, dtype=np.float32).T  # (all query tokens, tokens)
    bounds = np.cumsum([0, *(len(q) for q in queries)])
    for i in range(len(queries)):
        out[i] = maxsim_batch_from_scores(sims[bounds[i] : bounds[i + 1]], lengths)
    return out


def maxsim_batch_from_scores(similarities: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """MaxSim per document from one query's token similarities ``(query tokens, tokens)`` to
    documents laid out back to back (``lengths`` tokens each); an empty document scores 0."""
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(lengths), dtype=np.float32)
    nonempty = lengths > 0
    if not nonempty.any() or not len(similarities):
        return out
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    out[nonempty] = np.maximum.reduceat(similarities, starts, axis=1).sum(axis=0)
    return out


def pool_tokens(vectors: np.ndarray, pool_factor: int, protected: int = 1) -> np.ndarray:
    """Fewer vectors for one document: cluster similar tokens and keep each cluster's mean.

    Token pooling (Clavié, Chaffin & Adams, "Reducing the Footprint of Multi-Vector Retrieval
    with Minimal Performance Impact via Token Pooling", 2024), as PyLate does it: Ward
    hierarchical clustering on cosine distances cut at ``len // pool_factor`` clusters; the first
    ``protected`` vectors (``[CLS]`` and the marker) are kept as they are. Means are
    L2-normalised again. ``pool_factor`` 2 halves the storage at little cost in quality.
    """
    if isinstance(pool_factor, bool) or not isinstance(pool_factor, int) or pool_factor < 1:
        raise InvalidInputError(f"pool_factor must be an int >= 1, got {pool_factor!r}")
    head, rest = vectors[:protected], np.asarray(vectors[protected:], dtype=np.float64)
    clusters = max(len(rest) // pool_factor, 1)
    if pool_factor == 1 or clusters >= len(rest):
        return np.asarray(vectors, dtype=np.float32)
    from scipy.cluster import hierarchy

    distances = np.clip(1.0 - rest @ rest.T, 0.0, None)[np.triu_indices(len(rest), k=1)]
    labels = hierarchy.fcluster(
        hierarchy.linkage(distances, method="ward"), t=clusters, criterion="maxclust"
    )
    labels -= 1
    sums = np.zeros((labels.max() + 1, rest.shape[1]))
    np.add.at(sums, labels, rest)
    sums = sums[np.bincount(labels) > 0]
    pooled = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return np.concatenate([np.asarray(head, np.float32), pooled.astype(np.float32)])
