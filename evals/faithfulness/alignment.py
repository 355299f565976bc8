"""Token alignment between an answer and its context, BERTScore-style, for the offline judge.

A sentence vector blurs a claim into one point; aligning its tokens one by one with the
context's keeps the words the context never echoes visible. Every answer token is matched to its
most similar context token (cosine of the dense model's contextual token vectors, the same
vectors the ColBERT stand-in scores with) and the other way round:

- ``align_recall``: the mean over answer tokens of the best match (BERTScore's recall: how much
  of the answer the context covers);
- ``align_precision``: the same over context tokens (how much of the context the answer is
  about);
- ``align_f1``: their harmonic mean;
- ``align_worst`` and ``align_low_quartile``: the worst-matched answer token and the mean of
  the worst quarter (one unsupported word in an otherwise echoed claim).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rag_retrievers.evals.faithfulness.embeddings import (
    VectorShards,
    cache_folder,
    local_model_identity,
    stable_digest,
    text_key,
)

if TYPE_CHECKING:
    from rag_retrievers.encoders.colbert import ColBERTEncoder

#: the signals of :func:`token_alignment`, in order
ALIGNMENT_FEATURES = (
    "align_recall",
    "align_precision",
    "align_f1",
    "align_worst",
    "align_low_quartile",
)


def token_alignment(answer_tokens: np.ndarray, context_tokens: np.ndarray) -> list[float]:
    """:data:`ALIGNMENT_FEATURES` of two ``(tokens, dim)`` arrays of unit token vectors.

    >>> a = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> c = np.array([[1.0, 0.0]])
    >>> [round(v, 2) for v in token_alignment(a, c)]
    [0.5, 1.0, 0.67, 0.0, 0.0]
    """
    if len(answer_tokens) == 0 or len(context_tokens) == 0:
        return [0.0] * len(ALIGNMENT_FEATURES)
    sims = np.asarray(answer_tokens, dtype=np.float64) @ np.asarray(context_tokens).T
    recall_each = sims.max(axis=1)
    recall = float(recall_each.mean())
    precision = float(sims.max(axis=0).mean())
    f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    worst = np.sort(recall_each)[: max(1, len(recall_each) // 4)]
    return [recall, precision, f1, float(recall_each.min()), float(worst.mean())]


class TokenAligner:
    """:data:`ALIGNMENT_FEATURES` of (answer, context) pairs from a dense model's token vectors,
    memoised per pair in memory and on disk (a re-run of a labelled set never loads the model).

    >>> aligner = TokenAligner("minilm", cache_dir=None)  # doctest: +SKIP
    >>> pair = ("Paris is in France.", "Paris is the capital of France.")
    >>> aligner.align([pair]).shape  # doctest: +SKIP
    (1, 5)
    """

    def __init__(
        self, model: str = "minilm", *, cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.model_name = model
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._encoder: ColBERTEncoder | None = None
        self._store: VectorShards | None = None

    @property
    def encoder(self) -> ColBERTEncoder:
        if self._encoder is None:
            from rag_retrievers.encoders.colbert import ColBERTEncoder

            self._encoder = ColBERTEncoder(self.model_name)
        return self._encoder

    def identity(self) -> dict[str, Any]:
        known = local_model_identity(self.model_name)
        return {**(known or self.encoder.identity()), "features": ALIGNMENT_FEATURES}

    @property
    def _shards(self) -> VectorShards:
        if self._store is None:
            folder = None
            if self.cache_dir is not None:
                folder = cache_folder(self.cache_dir, "alignment", self.model_name, self.identity())
            self._store = VectorShards(folder)
        return self._store

    def token_vectors(self, texts: Sequence[str], progress: bool | None) -> list[np.ndarray]:
        """One ``(tokens, dim)`` array of unit vectors per text."""
        return self.encoder.encode_documents(list(texts), show_progress=progress)

    def align(
        self, pairs: Sequence[tuple[str, str]], *, progress: bool | None = None
    ) -> np.ndarray:
        """``(len(pairs), 5)``: :data:`ALIGNMENT_FEATURES` of each ``(answer, context)``."""
        keys = [stable_digest([text_key(a), text_key(c)]) for a, c in pairs]
        todo = self._shards.missing(keys)
        if todo:
            pair_of = dict(zip(keys, pairs, strict=True))
            texts = sorted({t for k in todo for t in pair_of[k]})
            vectors = dict(zip(texts, self.token_vectors(texts, progress), strict=True))
            rows = [token_alignment(vectors[pair_of[k][0]], vectors[pair_of[k][1]]) for k in todo]
            self._shards.put(todo, np.array(rows, dtype=np.float64))
        if not keys:
            return np.empty((0, len(ALIGNMENT_FEATURES)))
        return self._shards.get(keys).astype(np.float64)
