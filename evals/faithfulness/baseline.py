"""``baseline``: the floor every other judge is compared with.

Split context and answer into sentences, embed them with a dense model (MiniLM by default), and
score the answer by its least supported sentence: the minimum over answer sentences of the best
cosine to any context sentence (clipped to [0, 1]).
"""

from __future__ import annotations

import os

import numpy as np
from rag_retrievers.evals.faithfulness.base import (
    ClaimEvidence,
    FaithfulnessJudge,
    JudgeResult,
    register_judge,
)
from rag_retrievers.evals.faithfulness.embeddings import SentenceEmbedder
from rag_retrievers.evals.faithfulness.text import split_sentences


@register_judge("baseline")
class BaselineJudge(FaithfulnessJudge):
    """Minimum over answer sentences of the best cosine to a context sentence.

    >>> judge = BaselineJudge()  # doctest: +SKIP
    >>> judge.judge("Paris is in France.", "Paris is in France.").score  # doctest: +SKIP
    1.0
    """

    default_threshold = 0.5

    def __init__(
        self, *, model: str = "minilm", cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.embedder = SentenceEmbedder(model, cache_dir=cache_dir)

    def describe(self) -> str:
        return f"baseline (min over answer sentences of the best {self.embedder.model_name} cosine)"

    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]:
        split = [(split_sentences(c), split_sentences(a)) for c, a in pairs]
        texts = sorted({s for ctx, ans in split for s in (*ctx, *ans)})
        vectors = self.embedder.embed(texts, progress=progress)
        row = {t: i for i, t in enumerate(texts)}
        results = []
        for ctx, ans in split:
            if not ctx:
                results.append(JudgeResult.abstain("empty context"))
                continue
            if not ans:
                results.append(JudgeResult.abstain("no sentences in the answer"))
                continue
            sims = vectors[[row[s] for s in ans]] @ vectors[[row[s] for s in ctx]].T
            best = sims.argmax(axis=1)
            scores = np.clip(sims.max(axis=1), 0.0, 1.0)
            claims = tuple(
                ClaimEvidence(claim=a, span=ctx[int(j)], score=float(s))
                for a, j, s in zip(ans, best, scores, strict=True)
            )
            results.append(JudgeResult(score=float(scores.min()), claims=claims))
        return results
