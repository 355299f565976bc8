"""Spherical k-means over L2-normalised vectors: the centroids of ColBERT's token index
(PLAID candidate generation, residual compression) and of ColBERT-PRF's feedback tokens."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

#: rows per matrix product in k-means assignment: bounds the (rows x centroids) scores' memory
_ASSIGN_CHUNK = 16_384


def normalize_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def assign_centroids(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid (largest dot product) of each vector, as int64."""
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), _ASSIGN_CHUNK):
        chunk = np.asarray(vectors[start : start + _ASSIGN_CHUNK], dtype=np.float32)
        out[start : start + len(chunk)] = (chunk @ centroids.T).argmax(axis=1)
    return out


def train_centroids(
    sample: np.ndarray,
    k: int,
    *,
    iterations: int = 8,
    seed: int = 0,
    init: Literal["random", "k-means++"] = "random",
) -> np.ndarray:
    """Spherical k-means (Lloyd iterations, normalised means) over ``sample``; ``(k, dim)``
    float32. Deterministic for a given sample and seed; an emptied cluster keeps its centroid.

    ``init="random"`` seeds with ``k`` sampled vectors (cheap: the index's many centroids);
    ``"k-means++"`` (Arthur & Vassilvitskii 2007) spreads the seeds, so a few clusters over a
    small sample do not start two seeds in one group (ColBERT-PRF's feedback tokens)."""
    sample = np.asarray(sample, dtype=np.float32)
    k = max(1, min(k, len(sample)))
    rng = np.random.default_rng(seed)
    if init == "k-means++":
        centroids = _kmeans_plus_plus(sample, k, rng)
    else:
        centroids = sample[rng.choice(len(sample), size=k, replace=False)].copy()
    for _ in range(iterations):
        labels = assign_centroids(sample, centroids)
        one_hot = sp.csr_matrix(
            (np.ones(len(labels), np.float32), (labels, np.arange(len(labels)))),
            shape=(k, len(labels)),
        )
        sums = np.asarray(one_hot @ sample)
        filled = np.bincount(labels, minlength=k) > 0
        centroids[filled] = normalize_rows(sums[filled])
    return centroids


def _kmeans_plus_plus(sample: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Seeds drawn with probability proportional to their squared distance from the nearest
    seed so far (distance on the unit sphere: ``2 - 2 cos``)."""
    chosen = [int(rng.integers(len(sample)))]
    distance = np.maximum(2.0 - 2.0 * (sample @ sample[chosen[0]]), 0.0).astype(np.float64)
    for _ in range(1, k):
        total = float(distance.sum())
        if total <= 0:  # every vector sits on a seed: the rest are duplicates anyway
            pick = int(rng.integers(len(sample)))
        else:
            pick = int(rng.choice(len(sample), p=distance / total))
        chosen.append(pick)
        distance = np.minimum(distance, np.maximum(2.0 - 2.0 * (sample @ sample[pick]), 0.0))
    return sample[chosen].copy()
