"""Pseudo-relevance feedback maths: pure functions on term vectors, embeddings and token vectors.

:class:`~rag_retrievers.adapters.prf.PRF` calls these; they are usable on their own too (an
evaluation suite can refine queries offline from saved feedback documents).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from rag_retrievers.scoring.kmeans import normalize_rows, train_centroids

TermVector = Mapping[str, float]
_TERM = re.compile(r"[^\W_]+")


def prune(vector: TermVector, size: int) -> dict[str, float]:
    """The ``size`` largest entries (ties by term), as Anserini's ``FeatureVector.pruneToSize``."""
    return dict(sorted(vector.items(), key=lambda item: (-item[1], item[0]))[:size])


def l1_normalised(vector: TermVector) -> dict[str, float]:
    total = math.fsum(abs(v) for v in vector.values())
    return {t: v / total for t, v in vector.items()} if total > 0 else dict(vector)


def l2_normalised(vector: TermVector) -> dict[str, float]:
    norm = math.sqrt(math.fsum(v * v for v in vector.values()))
    return {t: v / norm for t, v in vector.items()} if norm > 0 else dict(vector)


def feedback_term_filter(
    document_fraction: Callable[[str], float], max_df: float
) -> Callable[[str], bool]:
    """Anserini's feedback-term filter: 2-20 characters, letters and digits only, in at most
    ``max_df`` of the documents (Anserini uses 0.1 in place of a stopword list; its PR #289).
    Letters of any script count, where Anserini keeps ``[a-z0-9]`` only."""

    def keep(term: str) -> bool:
        return (
            2 <= len(term) <= 20
            and _TERM.fullmatch(term) is not None
            and document_fraction(term) <= max_df
        )

    return keep


def rm3(
    query: TermVector,
    feedback: Sequence[tuple[TermVector, float]],
    *,
    fb_terms: int = 10,
    original_weight: float = 0.5,
) -> dict[str, float]:
    """RM3: ``original_weight * P(t|Q) + (1 - original_weight) * P_RM1(t)``.

    ``query`` holds the query's term counts (``P(t|Q)`` is their L1 normalisation); ``feedback``
    holds ``(document term vector, retrieval score)`` pairs, best first, already filtered.
    As Anserini's ``Rm3Reranker``: each document vector is pruned to its ``fb_terms`` largest
    entries, ``P(t|D) = tf(t, D) / sum(pruned D)``, the relevance model is
    ``sum_D P(t|D) * score(D)``, pruned to ``fb_terms`` terms and L1-normalised (so scores act as
    weights normalised to sum 1). Non-positive scores (possible with dense or z-scored bases)
    fall back to equal document weights.

    >>> rm3({"onion": 1}, [({"onion": 2, "heat": 2}, 1.0), ({"heat": 4}, 1.0)], fb_terms=2)
    {'onion': 0.625, 'heat': 0.375}
    """
    scores = [s for _, s in feedback]
    if any(s <= 0 or not math.isfinite(s) for s in scores):
        scores = [1.0] * len(feedback)
    relevance: dict[str, float] = {}
    for (vector, _), score in zip(feedback, scores, strict=True):
        pruned = prune(vector, fb_terms)
        norm = math.fsum(pruned.values())
        if norm <= 0:
            continue
        for term, value in pruned.items():
            relevance[term] = relevance.get(term, 0.0) + value / norm * score
    relevance = l1_normalised(prune(relevance, fb_terms))
    q = l1_normalised(query)
    lam = original_weight
    return {
        t: lam * q.get(t, 0.0) + (1 - lam) * relevance.get(t, 0.0)
        for t in dict.fromkeys([*q, *relevance])
    }


def rocchio(
    query: TermVector,
    feedback: Sequence[TermVector],
    *,
    fb_terms: int = 10,
    alpha: float = 1.0,
    beta: float = 0.75,
) -> dict[str, float]:
    """Rocchio on sparse vectors: ``alpha * q + beta * mean(d)`` with ``q`` and every ``d``
    L2-normalised and the mean pruned to its ``fb_terms`` largest entries (as Anserini's
    ``RocchioReranker``, whose defaults are alpha 1, beta 0.75).

    >>> rocchio({"a": 1}, [{"a": 3, "b": 4}], fb_terms=1, alpha=1.0, beta=1.0)
    {'a': 1.0, 'b': 0.8}
    """
    mean: dict[str, float] = {}
    for vector in feedback:
        for term, value in l2_normalised(vector).items():
            mean[term] = mean.get(term, 0.0) + value / len(feedback)
    expansion = prune(mean, fb_terms)
    q = l2_normalised(query)
    return {
        t: alpha * q.get(t, 0.0) + beta * expansion.get(t, 0.0)
        for t in dict.fromkeys([*q, *expansion])
    }


def vector_rocchio(
    query: np.ndarray, feedback: np.ndarray, *, alpha: float = 1.0, beta: float = 0.75
) -> np.ndarray:
    """Vector PRF by Rocchio: ``alpha * q + beta * mean(feedback rows)`` (Li et al. 2021).

    >>> vector_rocchio(np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.0, 3.0]]), beta=0.5)
    array([1., 1.])
    """
    if not len(feedback):
        return alpha * query
    return alpha * query + beta * feedback.mean(axis=0)


def colbert_prf(
    feedback_tokens: np.ndarray,
    idf: Callable[[np.ndarray], np.ndarray],
    *,
    n_clusters: int = 24,
    fb_embs: int = 10,
    beta: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """ColBERT-PRF's expansion embeddings (Wang et al. 2021, "Pseudo-relevance feedback for
    multiple representation dense retrieval", ICTIR): k-means over the feedback documents'
    token vectors, the ``fb_embs`` centroids with the highest ``idf`` kept, each weighted
    ``beta * idf``. Returns ``(vectors, weights)``, best first; MaxSim is linear in a query
    token's scale, so ``vectors * weights[:, None]`` appended to the query tokens scores them.

    ``idf`` maps centroids to their inverse document frequency (the paper looks up the token
    nearest each centroid; :meth:`MultiVectorIndex.centroid_idf` uses the index's centroids).

    >>> tokens = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    >>> vectors, weights = colbert_prf(tokens, lambda c: 1.0 + c[:, 1], n_clusters=2, fb_embs=1)
    >>> vectors.round(2).tolist(), weights.round(2).tolist()
    ([[0.0, 1.0]], [2.0])
    """
    dimension = feedback_tokens.shape[1] if feedback_tokens.ndim == 2 else 0
    if len(feedback_tokens) == 0 or fb_embs == 0 or n_clusters == 0:
        return np.empty((0, dimension), np.float32), np.empty(0, np.float32)
    centroids = normalize_rows(train_centroids(feedback_tokens, n_clusters, init="k-means++"))
    weights = np.asarray(idf(centroids), dtype=np.float32)
    order = np.lexsort((np.arange(len(centroids)), -weights))[:fb_embs]
    return centroids[order], (beta * weights[order]).astype(np.float32)
