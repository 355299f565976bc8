"""BM25 term weights as pure functions, one registered entry per variant.

Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond" (2009);
Kamphuis et al., "Which BM25 Do You Mean? A Large-Scale Reproducibility Study" (ECIR 2020)
for the variants:

- ``lucene`` (default): idf = ln(1 + (N - df + 0.5) / (df + 0.5)) (never negative),
  tf part = tf / (tf + k1 (1 - b + b dl / avgdl)), as in Lucene >= 8, Anserini and Pyserini.
- ``okapi``: idf = ln((N - df + 0.5) / (df + 0.5)) with negative values replaced by
  ``epsilon`` times the mean idf, tf part = tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)),
  exactly as ``rank_bm25.BM25Okapi``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rag_retrievers.name_registry import Registry


def lucene_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def okapi_idf(df: np.ndarray, n_docs: int, epsilon: float = 0.25) -> np.ndarray:
    """Robertson-Sparck Jones idf; negative values floored at ``epsilon`` x the mean idf over
    terms that occur (``rank_bm25``'s rule, so frequent terms still count a little)."""
    df = np.asarray(df, dtype=np.float64)
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    present = df > 0
    if present.any():
        floor = epsilon * idf[present].mean()
        idf = np.where(idf < 0, floor, idf)
    return np.where(present, idf, 0.0)


def _length_norm(doc_len: np.ndarray, avg_len: float, k1: float, b: float) -> np.ndarray:
    return k1 * (1.0 - b + b * doc_len / (avg_len or 1.0))


def lucene_tf(
    tf: np.ndarray, doc_len: np.ndarray, avg_len: float, k1: float, b: float
) -> np.ndarray:
    return tf / (tf + _length_norm(doc_len, avg_len, k1, b))


def okapi_tf(
    tf: np.ndarray, doc_len: np.ndarray, avg_len: float, k1: float, b: float
) -> np.ndarray:
    return tf * (k1 + 1.0) / (tf + _length_norm(doc_len, avg_len, k1, b))


@dataclass(frozen=True)
class BM25Variant:
    name: str
    idf: Callable[..., np.ndarray]
    tf: Callable[..., np.ndarray]


#: the BM25 variants :class:`~rag_retrievers.adapters.bm25.BM25` takes by name
BM25_VARIANTS: Registry[BM25Variant] = Registry("BM25 variant")
BM25_VARIANTS.register(
    "lucene", BM25Variant("lucene", lambda df, n, epsilon: lucene_idf(df, n), lucene_tf)
)
BM25_VARIANTS.register("okapi", BM25Variant("okapi", okapi_idf, okapi_tf))
#: the variant registered as a name; the error lists the valid names
bm25_variant = BM25_VARIANTS.get
