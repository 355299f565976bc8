"""``offline``: the default judge; no LLM, no NLI weights, deterministic.

For each claim of the answer (sentences, cut into clauses) it finds the best-supporting context
sentence by a dense model (MiniLM) and lexical overlap weighted by word rarity (an IDF from the
``wordfreq`` word frequencies, so a score never depends on which other pairs are in the batch),
then checks what similarity misses against that span and the whole context: numbers, dates and
names in the claim that the context lacks, a negation present on one side only, and opposite
directions (increases / decreases). A claim's score is its support times a penalty per failed
check (the hand-set combination; the answer's is its weakest claim's).

The answer's score is a logistic regression over these signals and a few answer-level ones
(:mod:`~rag_retrievers.evals.faithfulness.signals`: negation contrast, the whole answer's
cosine, the answer's style and length), gated by the context's length. The default weights
(``weights/offline-default.json``) were fitted on faith_climate_fever and SciFact's
claim_verification_pairs together; the README gives their cross-validated figures. Pass
``weights=PATH`` for weights fitted on your own labelled pairs (``rag-retrievers eval faithfulness
--judge offline --fit PATH``), or ``weights="hand-set"`` for the hand-set combination.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from rag_retrievers.evals.faithfulness.base import (
    ClaimEvidence,
    FaithfulnessJudge,
    JudgeResult,
    register_judge,
)
from rag_retrievers.evals.faithfulness.calibration import LabelledPair
from rag_retrievers.evals.faithfulness.embeddings import SentenceEmbedder
from rag_retrievers.evals.faithfulness.learned import LogisticWeights, fit_logistic, group_folds
from rag_retrievers.evals.faithfulness.signals import (
    STYLE_FEATURES,
    gate,
    gate_names,
    negation_contrast,
    style_signals,
)
from rag_retrievers.evals.faithfulness.text import (
    NEGATIONS,
    STOPWORDS,
    Facts,
    content_stems,
    facts,
    negate,
    numbers,
    split_claims,
    split_sentences,
    stem,
    words,
)

from rag_retrievers.errors import InvalidInputError, MissingDependencyError

#: signals per answer, in the order the learned combination reads them
FEATURES = (
    "heuristic",
    "dense_min",
    "dense_mean",
    "lexical_min",
    "lexical_mean",
    "context_coverage_min",
    "novel_mass_max",
    "context_precision",
    "shared_rarest",
    "number_missing",
    "date_missing",
    "entity_missing",
    "negation_flip",
    "direction_flip",
    "claims_log",
    "answer_dense",
    "negation_contrast_span",
    "negation_contrast",
    *STYLE_FEATURES,
)
#: what the logistic regression reads: :data:`FEATURES` gated by the context's length
GATED_FEATURES = gate_names(FEATURES)
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "offline-default.json"
HAND_SET = "hand-set"

# The hand-set combination: a claim's support is DENSE_SHARE * (cosine to its best span) +
# (1 - DENSE_SHARE) * (share of its rarity mass found anywhere in the context), times a penalty
# per failed check. These constants were chosen on the 919 scifact_train pairs of SciFact's
# claim_verification_pairs.jsonl (a small grid); a missing name is flagged but not penalised
# there because it lowered AUROC (names are often paraphrased or abbreviated).
PENALTIES = {
    "number": 0.5,
    "date": 0.6,
    "entity": 1.0,
    "negation": 0.5,
    "direction": 0.6,
}
DENSE_SHARE = 0.3
SPAN_DENSE_SHARE = 0.5  # how the best-supporting span is chosen: dense and lexical alike


@lru_cache(maxsize=1)
def _zipf() -> object:
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise MissingDependencyError("wordfreq", "faithfulness") from None
    return zipf_frequency


@lru_cache(maxsize=200_000)
def rarity(word: str) -> float:
    """An IDF-like weight from general English word frequencies: 0.5 for the most common words,
    up to 8 for words wordfreq has never seen (Zipf scale: 8 - zipf)."""
    zipf = _zipf()(word, "en")  # type: ignore[operator]
    return max(0.5, 8.0 - float(zipf))


def is_common(word: str) -> bool:
    """A word seen more than about once per 30,000 words of general English (Zipf > 3.5)."""
    return rarity(word) < 4.5


def weighted_stems(text: str) -> dict[str, float]:
    """Content stems of ``text`` with their rarity (the rarest surface form of each stem)."""
    out: dict[str, float] = {}
    for w in words(text):
        if w in STOPWORDS or w in NEGATIONS or len(w) < 2:
            continue
        s = stem(w)
        out[s] = max(out.get(s, 0.0), rarity(w))
    return out


def coverage(claim: dict[str, float], stems: set[str]) -> float:
    """Share of the claim's rarity mass whose stems occur in ``stems``."""
    total = sum(claim.values())
    if total <= 0:
        return 1.0
    return sum(v for s, v in claim.items() if s in stems) / total


@dataclass(frozen=True)
class ClaimSignals:
    claim: str
    span: str
    dense: float
    lexical: float
    context_coverage: float
    novel_mass: float
    context_precision: float
    shared_rarest: float
    flags: tuple[str, ...]
    score: float
    negation_contrast_span: float = 0.0
    negation_contrast: float = 0.0


@dataclass(frozen=True)
class AnswerSignals:
    """One answer's claims and its answer-level signals."""

    claims: list[ClaimSignals]
    answer_dense: float  # the whole answer's best cosine to a context sentence
    style: list[float]  # :data:`STYLE_FEATURES`


def _claim_signals(
    claim: str,
    claim_vector: np.ndarray,
    negated_vector: np.ndarray,
    sentences: list[str],
    sentence_vectors: np.ndarray,
    sentence_stems: list[set[str]],
    context_stems: set[str],
    context_facts: Facts,
    context_text: str,
    context_weights: dict[str, float],
) -> ClaimSignals:
    weights = weighted_stems(claim)
    dense = np.clip(sentence_vectors @ claim_vector, 0.0, 1.0)
    lexical = np.array([coverage(weights, st) for st in sentence_stems])
    support = SPAN_DENSE_SHARE * dense + (1 - SPAN_DENSE_SHARE) * lexical
    best = int(support.argmax())
    span = sentences[best]
    # two neighbouring sentences together may support what neither does alone
    if len(sentences) > 1:
        for j in (best - 1, best + 1):
            if 0 <= j < len(sentences):
                joint = coverage(weights, sentence_stems[best] | sentence_stems[j])
                if joint > lexical[best] + 0.15:
                    span = " ".join(sentences[min(best, j) : max(best, j) + 1])
                    lexical[best] = joint
                    break
    total = sum(weights.values())
    context_mass = sum(context_weights.values())
    # how much of the context (by rarity) the claim is about: evidence that merely shares a
    # topic word with the claim says little about it
    precision = (
        sum(v for s, v in context_weights.items() if s in weights) / context_mass
        if context_mass
        else 0.0
    )
    shared = max((v for s, v in weights.items() if s in context_stems), default=0.0) / 8.0
    novel = sum(v for s, v in weights.items() if s not in context_stems) / total if total else 0.0

    claim_facts = facts(claim, is_common=is_common)
    span_facts = facts(span)
    flags: list[str] = []
    lost_numbers = sorted(claim_facts.numbers - numbers(context_text) - span_facts.numbers)
    if lost_numbers:
        flags.append(f"number: {', '.join(lost_numbers)} not in the context")
    lost_dates = sorted(claim_facts.dates - context_facts.dates)
    if lost_dates:
        flags.append(f"date: {', '.join(lost_dates)} not in the context")
    lost_names = sorted(
        e
        for e in claim_facts.entities
        if e not in context_facts.entities and stem(e) not in context_stems
    )
    if lost_names:
        flags.append(f"entity: {', '.join(lost_names)} not in the context")
    if claim_facts.negations % 2 != span_facts.negations % 2:
        flags.append("negation: on one side only")
    if claim_facts.direction * span_facts.direction < 0:
        flags.append("direction: opposite to the span")
    context_coverage = coverage(weights, context_stems)
    score = DENSE_SHARE * float(dense[best]) + (1 - DENSE_SHARE) * context_coverage
    for flag in flags:
        score *= PENALTIES[flag.split(":", 1)[0]]
    contrast_span, contrast = negation_contrast(claim_vector, negated_vector, sentence_vectors)
    return ClaimSignals(
        claim=claim,
        span=span,
        dense=float(dense[best]),
        lexical=float(lexical[best]),
        context_coverage=context_coverage,
        novel_mass=novel,
        context_precision=precision,
        shared_rarest=shared,
        flags=tuple(flags),
        score=score,
        negation_contrast_span=contrast_span,
        negation_contrast=contrast,
    )


def answer_features(answer: AnswerSignals) -> list[float]:
    """The learned combination's inputs (:data:`FEATURES`, before the gate) for one answer."""
    claims = answer.claims

    def flagged(kind: str) -> float:
        return float(any(f.startswith(kind) for c in claims for f in c.flags))

    return [
        min(c.score for c in claims),
        min(c.dense for c in claims),
        float(np.mean([c.dense for c in claims])),
        min(c.lexical for c in claims),
        float(np.mean([c.lexical for c in claims])),
        min(c.context_coverage for c in claims),
        max(c.novel_mass for c in claims),
        min(c.context_precision for c in claims),
        min(c.shared_rarest for c in claims),
        flagged("number"),
        flagged("date"),
        flagged("entity"),
        flagged("negation"),
        flagged("direction"),
        math.log1p(len(claims)),
        answer.answer_dense,
        min(c.negation_contrast_span for c in claims),
        min(c.negation_contrast for c in claims),
        *answer.style,
    ]


@register_judge("offline")
class OfflineJudge(FaithfulnessJudge):
    """Claims, best-supporting spans and fact checks, without an LLM or NLI weights.

    ``weights``: ``None`` for the hand-set combination, or the path of a weights JSON file
    written by ``rag-retrievers eval faithfulness --judge offline --fit PATH``.

    >>> judge = OfflineJudge()  # doctest: +SKIP
    >>> result = judge.judge("Sales rose 5% in 2020.", "Sales fell 7% in 2020.")  # doctest: +SKIP
    >>> result.claims[0].flags  # doctest: +SKIP
    ('number: 7 not in the context', 'direction: opposite to the span')
    """

    default_threshold = 0.5

    def __init__(
        self,
        *,
        model: str = "minilm",
        weights: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.embedder = SentenceEmbedder(model, cache_dir=cache_dir)
        if weights == HAND_SET:
            self.weights_source: str | None = None
            self.weights: LogisticWeights | None = None
        else:
            path = DEFAULT_WEIGHTS if weights is None else weights
            self.weights_source = "default" if weights is None else str(weights)
            self.weights = LogisticWeights.load(path)
            if self.weights.features != GATED_FEATURES:
                raise InvalidInputError(
                    f"weights {path} are for features {self.weights.features}, not "
                    f"{GATED_FEATURES}; fit new ones with --fit"
                )
        self.cv_folds: int | None = None  # set while cross_validate reports
        _zipf()  # a missing wordfreq fails here, not after embedding

    def describe(self) -> str:
        if self.cv_folds:
            how = f"learned combination, {self.cv_folds}-fold cross-validation by claim"
        elif self.weights is None:
            how = "hand-set combination"
        else:
            fitted = self.weights.fitted_on.get("source", "?")
            how = f"learned combination {self.weights_source} (fitted on {fitted})"
        return (
            f"offline ({self.embedder.model_name} + rarity-weighted overlap + fact checks; {how})"
        )

    # -- signals -------------------------------------------------------------------------------

    def signals(
        self, pairs: Sequence[tuple[str, str]], progress: bool | None = None
    ) -> list[AnswerSignals | str]:
        """Per pair, the signals of its answer and each claim, or why the judge abstains."""
        split = [(split_sentences(c), split_claims(a)) for c, a in pairs]
        texts = sorted(
            {s for ctx, claims in split for s in (*ctx, *claims, *map(negate, claims))}
            | {a for (_, a), (_, claims) in zip(pairs, split, strict=True) if claims}
        )
        vectors = self.embedder.embed(texts, progress=progress)
        row = {t: i for i, t in enumerate(texts)}
        stems_of: dict[str, set[str]] = {}
        out: list[AnswerSignals | str] = []
        for (context, answer), (sentences, claims) in zip(pairs, split, strict=True):
            if not sentences:
                out.append("empty context")
                continue
            if not claims:
                out.append("no claims in the answer")
                continue
            sentence_stems = []
            for s in sentences:
                if s not in stems_of:
                    stems_of[s] = set(content_stems(s))
                sentence_stems.append(stems_of[s])
            context_stems = set().union(*sentence_stems)
            context_facts = facts(context, is_common=is_common)
            context_weights = weighted_stems(context)
            sentence_vectors = vectors[[row[s] for s in sentences]]
            claim_signals = [
                _claim_signals(
                    c,
                    vectors[row[c]],
                    vectors[row[negate(c)]],
                    sentences,
                    sentence_vectors,
                    sentence_stems,
                    context_stems,
                    context_facts,
                    context,
                    context_weights,
                )
                for c in claims
            ]
            answer_dense = float(np.clip((sentence_vectors @ vectors[row[answer]]).max(), -1, 1))
            out.append(AnswerSignals(claim_signals, answer_dense, style_signals(context, answer)))
        return out

    def _results(
        self, signals: list[AnswerSignals | str], weights: LogisticWeights | None
    ) -> list[JudgeResult]:
        results = []
        for item in signals:
            if isinstance(item, str):
                results.append(JudgeResult.abstain(item))
                continue
            claims = tuple(
                ClaimEvidence(claim=c.claim, span=c.span, score=c.score, flags=c.flags)
                for c in item.claims
            )
            features = answer_features(item)
            predicted = None if weights is None else weights.predict(gated([features]))
            score = features[0] if predicted is None else float(predicted[0])
            details = dict(zip(FEATURES, features, strict=True))
            results.append(JudgeResult(score=score, claims=claims, details=details))
        return results

    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]:
        return self._results(self.signals(pairs, progress), self.weights)

    # -- the learned combination ---------------------------------------------------------------

    def _design(
        self, pairs: Sequence[LabelledPair], progress: bool | None
    ) -> tuple[list[AnswerSignals | str], np.ndarray, np.ndarray, np.ndarray]:
        signals = self.signals([(p.context, p.response) for p in pairs], progress)
        usable = np.array([not isinstance(s, str) for s in signals])
        x = gated([answer_features(s) for s in signals if not isinstance(s, str)])
        y = np.array([int(p.label == 1) for p, ok in zip(pairs, usable, strict=True) if ok])
        return signals, usable, x, y

    def fit_pairs(
        self, pairs: Sequence[LabelledPair], *, progress: bool | None = None, l2: float = 1.0
    ) -> LogisticWeights:
        """Weights fitted on ``pairs`` (supported vs not), for another set to be judged with."""
        _, _, x, y = self._design(pairs, progress)
        return fit_logistic(x, y, GATED_FEATURES, l2=l2)

    def cross_validate(
        self, pairs: Sequence[LabelledPair], *, folds: int = 5, progress: bool | None = None
    ) -> list[JudgeResult]:
        """Every pair judged by weights fitted on the other folds; folds split by claim."""
        signals, usable, x, y = self._design(pairs, progress)
        self.cv_folds = folds
        groups = [p.group for p, ok in zip(pairs, usable, strict=True) if ok]
        fold = group_folds(groups, folds)
        scores = np.empty(len(y))
        for f in range(folds):
            test = fold == f
            weights = fit_logistic(x[~test], y[~test], GATED_FEATURES)
            scores[test] = weights.predict(x[test])
        results = self._results(signals, None)
        it = iter(scores)
        return [
            r if r.abstained else JudgeResult(float(next(it)), r.claims, None, r.details)
            for r in results
        ]


def gated(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Answer features (rows of :data:`FEATURES`) to the gated inputs (:data:`GATED_FEATURES`)."""
    x = np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    return gate(x, x[:, FEATURES.index("context_words_log")])
