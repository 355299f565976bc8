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
cosine, the answer's style and length; :mod:`~rag_retrievers.evals.faithfulness.alignment`:
BERTScore-style alignment of the answer's and the context's token vectors), gated by the
context's length, plus a learned low-rank similarity between the answer's and the context's
sentence vectors (:mod:`~rag_retrievers.evals.faithfulness.bilinear`). The default weights
(``weights/offline-default.json``) were fitted on faith_climate_fever and SciFact's
claim_verification_pairs together; the README gives their cross-validated figures. Pass
``weights=PATH`` for weights fitted on your own labelled pairs (``rag-retrievers eval faithfulness
--judge offline --fit PATH``), or ``weights="hand-set"`` for the hand-set combination.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rag_retrievers.evals.faithfulness.alignment import ALIGNMENT_FEATURES, TokenAligner
from rag_retrievers.evals.faithfulness.base import (
    ClaimEvidence,
    FaithfulnessJudge,
    JudgeResult,
    register_judge,
)
from rag_retrievers.evals.faithfulness.bilinear import DEFAULT_NUCLEAR, NUCLEAR_CHOICES
from rag_retrievers.evals.faithfulness.calibration import LabelledPair
from rag_retrievers.evals.faithfulness.claims import (
    ClaimSignals,
    claim_signals,
    is_common,
    load_word_frequencies,
    weighted_stems,
)
from rag_retrievers.evals.faithfulness.combination import KIND as COMBINATION
from rag_retrievers.evals.faithfulness.combination import Combination
from rag_retrievers.evals.faithfulness.embeddings import SentenceEmbedder
from rag_retrievers.evals.faithfulness.learned import (
    LogisticWeights,
    PairVectors,
    choose_nuclear,
    fit_logistic,
    group_folds,
    out_of_fold_scores,
)
from rag_retrievers.evals.faithfulness.signals import (
    STYLE_FEATURES,
    gate,
    gate_names,
    style_signals,
)
from rag_retrievers.evals.faithfulness.text import (
    content_stems,
    facts,
    negate,
    split_claims,
    split_sentences,
)

from rag_retrievers.errors import InvalidInputError

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
    *ALIGNMENT_FEATURES,
)
#: what the logistic regression reads: :data:`FEATURES` gated by the context's length
GATED_FEATURES = gate_names(FEATURES)
#: signals reported beside :data:`FEATURES` (in ``details``) that the learned combination does
#: not read: the share of the answer's content words (stems) found anywhere in the context
EXTRA_SIGNALS = ("word_overlap",)
SIGNALS = (*FEATURES, *EXTRA_SIGNALS)
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "offline-default.json"
HAND_SET = "hand-set"


@dataclass(frozen=True)
class AnswerSignals:
    """One answer's claims and its answer-level signals."""

    claims: list[ClaimSignals]
    answer_dense: float  # the whole answer's best cosine to a context sentence
    style: list[float]  # :data:`STYLE_FEATURES`
    answer_vector: np.ndarray  # the whole answer's and the whole context's sentence vectors
    context_vector: np.ndarray
    alignment: list[float]  # :data:`ALIGNMENT_FEATURES`
    word_overlap: float = 1.0  # share of the answer's content stems found in the context


def signal_columns(answers: Sequence[AnswerSignals]) -> dict[str, np.ndarray]:
    """:data:`SIGNALS` of many answers, one array per signal name."""
    rows = np.array([[*answer_features(a), a.word_overlap] for a in answers], dtype=np.float64)
    rows = rows.reshape(-1, len(SIGNALS))
    return {name: rows[:, i] for i, name in enumerate(SIGNALS)}


def word_overlap(answer: str, context_stems: set[str]) -> float:
    """Share of the answer's content stems (with repeats) that occur in the context; 1 for an
    answer without content words.

    >>> word_overlap("Sales rose in Lyon.", {"sale", "rose"})
    0.6666666666666666
    """
    stems = content_stems(answer)
    return sum(s in context_stems for s in stems) / len(stems) if stems else 1.0


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
        *answer.alignment,
    ]


def load_weights(path: str | os.PathLike[str]) -> LogisticWeights | Combination:
    """A weights file: a :class:`Combination` or a learned combination for :data:`FEATURES`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"cannot read judge weights {path}: {exc}") from None
    if isinstance(data, dict) and data.get("kind") == COMBINATION:
        combination = Combination.from_dict(data, str(path))
        unknown = sorted(set(combination.features) - set(SIGNALS))
        if unknown:
            raise InvalidInputError(f"{path}: signals {unknown} are not among {SIGNALS}")
        return combination
    weights = LogisticWeights.from_dict(data, str(path))
    if weights.features != GATED_FEATURES:
        raise InvalidInputError(
            f"weights {path} are for features {weights.features}, not {GATED_FEATURES}; fit new "
            "ones with --fit"
        )
    return weights


@register_judge("offline")
class OfflineJudge(FaithfulnessJudge):
    """Claims, best-supporting spans and fact checks, without an LLM or NLI weights.

    ``weights``: ``None`` for the shipped default (an equal-weight combination of relation
    signals, :mod:`~rag_retrievers.evals.faithfulness.combination`), ``"hand-set"`` for the
    hand-set combination, or the path of a weights JSON file: a learned combination written by
    ``rag-retrievers eval faithfulness --judge offline --fit PATH``, or a combination.

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
        nuclear: float | str = DEFAULT_NUCLEAR,
    ) -> None:
        valid_number = isinstance(nuclear, int | float) and not isinstance(nuclear, bool)
        if not (nuclear == "auto" or (valid_number and nuclear > 0)):  # type: ignore[operator]
            raise InvalidInputError(
                f"nuclear must be a number > 0 or 'auto' (chosen by cross-validation by claim "
                f"among {NUCLEAR_CHOICES}), got {nuclear!r}"
            )
        self.nuclear = nuclear
        self.embedder = SentenceEmbedder(model, cache_dir=cache_dir)
        self.aligner = TokenAligner(model, cache_dir=cache_dir)
        self.weights: LogisticWeights | Combination | None = None
        self.weights_source: str | None = None
        if weights != HAND_SET:
            path = DEFAULT_WEIGHTS if weights is None else weights
            self.weights_source = "default" if weights is None else str(weights)
            self.weights = load_weights(path)
            if isinstance(self.weights, Combination):
                self.default_threshold = self.weights.threshold
        self.cv_folds: int | None = None  # set while cross_validate reports
        self.chosen_nuclear: list[float] = []  # the penalty of each fold's fit
        load_word_frequencies()  # a missing wordfreq fails here, not after embedding

    def describe(self) -> str:
        if self.cv_folds:
            penalties = ", ".join(f"{n:g}" for n in self.chosen_nuclear)
            how = (
                f"learned combination, {self.cv_folds}-fold cross-validation by claim; "
                f"similarity penalty {self.nuclear} (per fold: {penalties})"
            )
        elif self.weights is None:
            how = "hand-set combination"
        elif isinstance(self.weights, Combination):
            sets = ", ".join(self.weights.fitted_on.get("sets", {})) or "?"
            how = (
                f"equal-weight quantile average of {', '.join(self.weights.features)}; "
                f"reference and calibration {self.weights_source} (from {sets})"
            )
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
        judged = [pair for pair, (ctx, claims) in zip(pairs, split, strict=True) if ctx and claims]
        texts = sorted(
            {s for ctx, claims in split for s in (*ctx, *claims, *map(negate, claims))}
            | {t for pair in judged for t in pair}
        )
        vectors = self.embedder.embed(texts, progress=progress)
        row = {t: i for i, t in enumerate(texts)}
        alignment = iter(self.aligner.align([(a, c) for c, a in judged], progress=progress))
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
            per_claim = [
                claim_signals(
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
            answer_vector = vectors[row[answer]]
            answer_dense = float(np.clip((sentence_vectors @ answer_vector).max(), -1, 1))
            style = style_signals(context, answer)
            context_vector = vectors[row[context]]
            aligned = [float(v) for v in next(alignment)]
            out.append(
                AnswerSignals(
                    per_claim,
                    answer_dense,
                    style,
                    answer_vector,
                    context_vector,
                    aligned,
                    word_overlap(answer, context_stems),
                )
            )
        return out

    def _results(
        self,
        signals: list[AnswerSignals | str],
        weights: LogisticWeights | Combination | None,
    ) -> list[JudgeResult]:
        judged = [s for s in signals if not isinstance(s, str)]
        columns = signal_columns(judged)
        if not judged:
            predicted = iter(())
        elif isinstance(weights, Combination):
            predicted = iter(weights.predict(columns))
        elif weights is not None:
            x = gated(np.column_stack([columns[f] for f in FEATURES]))
            predicted = iter(weights.predict(x, pair_vectors(judged, x)))
        else:
            predicted = iter(columns["heuristic"])
        rows = iter(range(len(judged)))
        results = []
        for item in signals:
            if isinstance(item, str):
                results.append(JudgeResult.abstain(item))
                continue
            claims = tuple(
                ClaimEvidence(claim=c.claim, span=c.span, score=c.score, flags=c.flags)
                for c in item.claims
            )
            i = next(rows)
            details = {name: float(values[i]) for name, values in columns.items()}
            results.append(
                JudgeResult(score=float(next(predicted)), claims=claims, details=details)
            )
        return results

    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]:
        return self._results(self.signals(pairs, progress), self.weights)

    # -- the learned combination ---------------------------------------------------------------

    def _design(
        self, pairs: Sequence[LabelledPair], progress: bool | None
    ) -> tuple[list[AnswerSignals | str], np.ndarray, np.ndarray, PairVectors, np.ndarray]:
        signals = self.signals([(p.context, p.response) for p in pairs], progress)
        usable = np.array([not isinstance(s, str) for s in signals])
        judged = [s for s in signals if not isinstance(s, str)]
        x = gated([answer_features(s) for s in judged])
        y = np.array([int(p.label == 1) for p, ok in zip(pairs, usable, strict=True) if ok])
        return signals, usable, x, pair_vectors(judged, x), y

    def fit_pairs(
        self, pairs: Sequence[LabelledPair], *, progress: bool | None = None, l2: float = 1.0
    ) -> LogisticWeights:
        """Weights fitted on ``pairs`` (supported vs not), for another set to be judged with."""
        _, usable, x, vectors, y = self._design(pairs, progress)
        groups = [p.group for p, ok in zip(pairs, usable, strict=True) if ok]
        return self._fit(x, y, vectors, groups, l2=l2)

    def _fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        vectors: PairVectors,
        groups: Sequence[str],
        *,
        l2: float = 1.0,
    ) -> LogisticWeights:
        nuclear = self.nuclear
        if isinstance(nuclear, str):  # "auto": chosen on these (training) pairs alone
            nuclear = choose_nuclear(x, y, GATED_FEATURES, vectors, groups)
        return fit_logistic(x, y, GATED_FEATURES, l2=l2, vectors=vectors, nuclear=nuclear)

    def cross_validate(
        self, pairs: Sequence[LabelledPair], *, folds: int = 5, progress: bool | None = None
    ) -> list[JudgeResult]:
        """Every pair judged by weights fitted on the other folds; folds split by claim."""
        signals, usable, x, vectors, y = self._design(pairs, progress)
        self.cv_folds = folds
        self.chosen_nuclear = []
        groups = [p.group for p, ok in zip(pairs, usable, strict=True) if ok]
        fold = group_folds(groups, folds)

        def fit(
            xt: np.ndarray, yt: np.ndarray, vt: PairVectors, train: np.ndarray
        ) -> LogisticWeights:
            weights = self._fit(xt, yt, vt, [g for g, t in zip(groups, train, strict=True) if t])
            self.chosen_nuclear.append(weights.similarity.nuclear if weights.similarity else 0.0)
            return weights

        scores = out_of_fold_scores(x, y, vectors, fold, fit)
        results = self._results(signals, None)
        it = iter(scores)
        return [
            r if r.abstained else JudgeResult(float(next(it)), r.claims, None, r.details)
            for r in results
        ]


def gated(rows: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Answer features (rows of :data:`FEATURES`) to the gated inputs (:data:`GATED_FEATURES`)."""
    x = np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    return gate(x, x[:, FEATURES.index("context_words_log")])


def pair_vectors(signals: Sequence[AnswerSignals], x: np.ndarray) -> PairVectors:
    """The learned similarity's inputs for rows ``x`` of :func:`gated` signals."""
    return (
        np.array([s.answer_vector for s in signals], dtype=np.float64),
        np.array([s.context_vector for s in signals], dtype=np.float64),
        x[:, GATED_FEATURES.index("long_context")],
    )
