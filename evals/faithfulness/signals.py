"""Answer-level signals of the offline judge beyond its per-claim checks, and the context-length
gate its learned combination reads them through.

- **Negation contrast**: the claim's cosine to its best span minus the cosine of the claim's
  rough negation (:func:`~rag_retrievers.evals.faithfulness.text.negate`) to that span. A
  dense model barely separates a statement from its negation, but a span that contradicts the
  claim sits relatively closer to the negated claim than a span that supports it.
- **Style of the answer**: a quoted answer (someone's opinion) and sweeping words (all, never,
  only) are less often supported by any evidence; the answer's and the context's lengths.
- **The gate**: short contexts (a sentence or two: claim-verification evidence) and long ones
  (abstracts, retrieved passages) weigh the same signals differently, so every signal enters the
  logistic regression twice, once as is and once multiplied by ``long_context`` (the context has
  more than :data:`LONG_CONTEXT_WORDS` words): one weight set per kind of context, fitted at once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from rag_retrievers.evals.faithfulness.text import words

ABSOLUTE_WORDS = frozenset(
    "all every always never only none no entire entirely completely totally nothing any".split()
)
LONG_CONTEXT_WORDS = 60
_QUOTES = re.compile(r"[\"“”‘’']")

#: the answer-level signals of :func:`style_signals`, in order
STYLE_FEATURES = (
    "answer_quoted",
    "answer_absolute",
    "answer_words_log",
    "context_words_log",
    "length_ratio",
)


def style_signals(context: str, answer: str) -> list[float]:
    """:data:`STYLE_FEATURES` of one pair.

    >>> [round(v, 2) for v in style_signals("One two three.", '"All of it," he said.')]
    [1.0, 1.0, 1.79, 1.39, -0.41]
    """
    answer_words = words(answer)
    context_words = words(context)
    head = answer.strip()
    quoted = bool(_QUOTES.search(head[:2])) or head.count('"') + head.count("“") >= 2
    return [
        float(quoted),
        float(any(w in ABSOLUTE_WORDS for w in answer_words)),
        math.log1p(len(answer_words)),
        math.log1p(len(context_words)),
        math.log((len(context_words) + 1) / (len(answer_words) + 1)),
    ]


def negation_contrast(
    claim_vector: np.ndarray, negated_vector: np.ndarray, sentence_vectors: np.ndarray
) -> tuple[float, float]:
    """``(at the best span, best against best)``: the claim's cosine to the context sentence it
    is closest to minus the negated claim's cosine to that sentence, and the claim's best cosine
    minus the negated claim's best cosine. Both in [-2, 2]; high means the context reads like
    the claim rather than its negation.

    >>> s = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> negation_contrast(np.array([1.0, 0.0]), np.array([0.6, 0.8]), s)
    (0.4, 0.19999999999999996)
    """
    sims = sentence_vectors @ claim_vector
    negated = sentence_vectors @ negated_vector
    best = int(sims.argmax())
    return float(sims[best] - negated[best]), float(sims.max() - negated.max())


def gate_names(features: Sequence[str]) -> tuple[str, ...]:
    """The learned combination's input names: each feature, each times ``long_context``, and
    ``long_context`` itself."""
    return (*features, *(f"{f}*long_context" for f in features), "long_context")


def gate(x: np.ndarray, context_words_log: np.ndarray) -> np.ndarray:
    """``(n, k)`` signals to the ``(n, 2k + 1)`` gated inputs of :func:`gate_names`.

    >>> gate(np.array([[2.0], [3.0]]), np.log1p(np.array([10, 100]))).tolist()
    [[2.0, 0.0, 0.0], [3.0, 3.0, 1.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    long_context = (np.asarray(context_words_log) > math.log1p(LONG_CONTEXT_WORDS)).astype(float)
    long_context = long_context.reshape(-1, 1)
    return np.hstack([x, x * long_context, long_context])
