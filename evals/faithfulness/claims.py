"""The offline judge's per-claim signals: the best-supporting span of the context by a dense
model and rarity-weighted overlap, and the checks similarity misses (numbers, dates, names,
negation, direction words) against that span and the whole context."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rag_retrievers.evals.faithfulness.signals import negation_contrast
from rag_retrievers.evals.faithfulness.text import (
    NEGATIONS,
    STOPWORDS,
    Facts,
    facts,
    numbers,
    stem,
    words,
)

from rag_retrievers.errors import MissingDependencyError

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
def load_word_frequencies() -> object:
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise MissingDependencyError("wordfreq", "faithfulness") from None
    return zipf_frequency


@lru_cache(maxsize=200_000)
def rarity(word: str) -> float:
    """An IDF-like weight from general English word frequencies: 0.5 for the most common words,
    up to 8 for words wordfreq has never seen (Zipf scale: 8 - zipf)."""
    zipf = load_word_frequencies()(word, "en")  # type: ignore[operator]
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


def claim_signals(
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
