"""Answer and context metrics for RAG evaluation: pure functions, one figure in [0, 1] each.

Answer correctness against gold answers, after SQuAD's normalisation (lower case, punctuation
and the articles a/an/the dropped, whitespace collapsed; Rajpurkar et al. 2016, the official
``evaluate-v1.1.py``); with several gold answers a prediction takes its best score:

- :func:`exact_match`: the normalised texts are equal;
- :func:`token_f1`: F1 of the bags of normalised tokens;
- :func:`containment`: the normalised gold answer occurs, as whole words, in the prediction
  (long generated answers rarely match exactly, but contain the short gold answer);
- :func:`decision_accuracy`: the yes / no / maybe decision an answer opens with (PubMedQA) equals
  the gold one.

Context quality against the relevant passages (qrels or gold passage ids), RAGAS-style:

- :func:`context_precision`: the share of the passages the model was shown that are relevant;
- :func:`context_recall`: the share of the relevant passages that the model was shown.

:func:`answer_relevance` is the cosine between question and answer vectors (a dense model's),
clipped to [0, 1]. :func:`abstained_correctly` scores an answer to a question whose context lacks
the answer: 1 when the answer says so (the RAG pipeline's "not found in the documents").

>>> exact_match("The Eiffel Tower!", ["eiffel tower"]), token_f1("in Paris, France", ["Paris"])
(1.0, 0.5)
>>> containment("It was played in Tampa, Florida [1].", ["Tampa, Florida"])
1.0
>>> decision_accuracy("Yes, the trial shows it does.", "yes")
1.0
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Literal

import numpy as np

from rag_retrievers.errors import InvalidInputError

Decision = Literal["yes", "no", "maybe"]
DECISIONS: tuple[Decision, ...] = ("yes", "no", "maybe")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_CITATION_MARK = re.compile(r"\[\s*\d+(?:\s*[-–,;]\s*\d+)*\s*\]")
# the decision word an answer opens with, after filler such as "The answer is"
_DECISION = re.compile(
    r"^\W*(?:(?:the\s+)?(?:short\s+)?answer(?:\s+is)?\s*:?\s*)?(yes|no|maybe)\b", re.IGNORECASE
)
_DECISION_ANYWHERE = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces.
    Citation markers such as ``[1]`` go first: they are not part of an answer.

    >>> normalize_answer("The  Cat's hat [2].")
    'cats hat'
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"an answer must be a str, got {type(text).__name__}")
    text = _CITATION_MARK.sub(" ", text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _golds(golds: str | Sequence[str]) -> list[str]:
    items = [golds] if isinstance(golds, str) else list(golds)
    if not items or not all(isinstance(g, str) for g in items):
        raise InvalidInputError(f"gold answers must be a str or a non-empty list of str: {golds!r}")
    return items


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _golds(golds)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: str | Sequence[str]) -> float:
    """The best F1 over gold answers of the normalised token bags (SQuAD's F1).

    >>> round(token_f1("the cat sat on the mat", "a cat on a mat"), 3)
    0.857
    """
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(g).split()) for g in _golds(golds))


def containment(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 when a normalised gold answer occurs in the normalised prediction as whole words.

    >>> containment("Paris is the capital", "paris"), containment("Parisian food", "Paris")
    (1.0, 0.0)
    """
    pred = f" {normalize_answer(prediction)} "
    return float(any((gold := normalize_answer(g)) and f" {gold} " in pred for g in _golds(golds)))


def answer_decision(text: str) -> Decision | None:
    """The yes / no / maybe decision an answer states: the word it opens with (after filler such
    as "The answer is:"), else the first of the three words anywhere in it, else ``None``.

    >>> [answer_decision(t) for t in ("Answer: No.", "It may, so maybe.", "not found")]
    ['no', 'maybe', None]
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"an answer must be a str, got {type(text).__name__}")
    match = _DECISION.search(text) or _DECISION_ANYWHERE.search(text)
    if match is None:
        return None
    word = match.group(1).lower()
    return "yes" if word == "yes" else "no" if word == "no" else "maybe"


def decision_accuracy(prediction: str, gold: str) -> float:
    """1.0 when the prediction's :func:`answer_decision` equals ``gold`` (yes, no or maybe).

    An answer without a decision (an abstention included) scores 0.
    """
    if not isinstance(gold, str) or gold.strip().lower() not in DECISIONS:
        raise InvalidInputError(f"a gold decision must be one of {DECISIONS}, got {gold!r}")
    return float(answer_decision(prediction) == gold.strip().lower())


def context_precision(shown: Sequence[str], relevant: Collection[str]) -> float | None:
    """The share of the passages shown (ids) that are relevant; ``None`` when none was shown.

    >>> context_precision(["d1", "d7", "d3"], {"d1", "d3", "d9"})
    0.6666666666666666
    """
    if not shown:
        return None
    return sum(1 for doc_id in shown if doc_id in relevant) / len(shown)


def context_recall(shown: Collection[str], relevant: Collection[str]) -> float | None:
    """The share of the relevant passages (ids) that were shown; ``None`` when none is relevant.

    >>> context_recall(["d1", "d7"], {"d1", "d3"})
    0.5
    """
    if not relevant:
        return None
    seen = set(shown)
    return sum(1 for doc_id in relevant if doc_id in seen) / len(relevant)


def cosine(u: Sequence[float] | np.ndarray, v: Sequence[float] | np.ndarray) -> float:
    """Cosine similarity of two vectors; 0.0 when either is all zeros.

    >>> cosine([1.0, 0.0], [1.0, 1.0])
    0.7071067811865475
    """
    a, b = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidInputError(f"cosine needs two vectors of one length, got {a.shape}, {b.shape}")
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    value = float(a @ b) / norm if norm > 0 else 0.0
    return value if math.isfinite(value) else 0.0


def answer_relevance(
    question_vector: Sequence[float] | np.ndarray, answer_vector: Sequence[float] | np.ndarray
) -> float:
    """How far an answer addresses its question: the cosine of their vectors (from one dense
    model, e.g. MiniLM), clipped to [0, 1]. A cheap stand-in for RAGAS's answer relevancy, which
    generates questions from the answer with an LLM and compares those with the question."""
    return min(1.0, max(0.0, cosine(question_vector, answer_vector)))


def abstained_correctly(abstained: bool, context_has_answer: bool) -> float | None:
    """For a question whose context lacks the answer: 1.0 when the answer abstained, else 0.0.
    ``None`` (not applicable) when the context holds the answer.

    >>> abstained_correctly(True, False), abstained_correctly(False, False)
    (1.0, 0.0)
    >>> abstained_correctly(True, True) is None
    True
    """
    if context_has_answer:
        return None
    return 1.0 if abstained else 0.0
