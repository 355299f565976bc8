"""How far a judge agrees with people: AUROC, balanced accuracy, reliability, on labelled pairs.

Labelled pairs (JSONL): ``context``, ``response``, ``label`` (1 faithful / supported, 0 not /
contradicted, null = not enough information). Two views:

- **supported vs not**: positives are label 1, negatives are 0 *and* null (an answer the context
  does not support is unfaithful whether it is contradicted or merely unsupported);
- **supported vs contradicted**: only labels 1 and 0 (contradiction detection).

AUROC is scikit-learn's ``roc_auc_score`` when scikit-learn is installed, else the Mann–Whitney U
statistic over average ranks (the same number: ties count one half).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rag_retrievers.evals.beir import read_jsonl

from rag_retrievers.errors import InvalidInputError

VIEWS = ("supported vs not", "supported vs contradicted")


@dataclass(frozen=True)
class LabelledPair:
    id: str
    context: str
    response: str
    label: int | None  # 1 supported, 0 contradicted / not faithful, None not enough information
    group: str  # pairs with the same group share a claim: never split across train and test
    dataset: str = ""


def read_pairs(path: str | os.PathLike[str], *, limit: int | None = None) -> list[LabelledPair]:
    """Labelled pairs from a JSONL file; every line is checked, errors name the line.

    ``group`` is the ``claim_id`` or ``group`` field when present, else the response text: pairs
    that judge the same claim against different evidence share it.
    """
    pairs: list[LabelledPair] = []
    for number, row in read_jsonl(path):
        context, response, label = row.get("context"), row.get("response"), row.get("label")
        if not isinstance(context, str) or not isinstance(response, str):
            raise InvalidInputError(f"{path}:{number}: context and response must be strings")
        if label is not None and (isinstance(label, bool) or label not in (0, 1)):
            raise InvalidInputError(f"{path}:{number}: label must be 1, 0 or null: {label!r}")
        group = row.get("claim_id", row.get("group"))
        pairs.append(
            LabelledPair(
                id=str(row.get("id", number)),
                context=context,
                response=response,
                label=None if label is None else int(label),
                group=str(group) if group is not None else response.strip(),
                dataset=str(row.get("dataset", "")),
            )
        )
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise InvalidInputError(f"{path}: no labelled pairs")
    return pairs


def view_labels(labels: Sequence[int | None], view: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, y)``: which pairs a view keeps and their binary labels (1 = supported)."""
    if view not in VIEWS:
        raise InvalidInputError(f"view must be one of {VIEWS}, got {view!r}")
    raw = list(labels)
    if view == VIEWS[0]:
        mask = np.ones(len(raw), dtype=bool)
    else:
        mask = np.array([label is not None for label in raw], dtype=bool)
    y = np.array([1 if label == 1 else 0 for label in raw], dtype=np.int64)
    return mask, y[mask]


def _check_scores(y: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    if y.shape != scores.shape or y.ndim != 1:
        raise InvalidInputError("labels and scores must be 1-d and of the same length")
    if not np.isin(y, (0, 1)).all():
        raise InvalidInputError("labels must be 0 or 1")
    if not np.isfinite(scores).all():
        raise InvalidInputError("scores must be finite")
    return y.astype(np.int64), scores


def auroc_mann_whitney(y: Any, scores: Any) -> float:
    """Area under the ROC curve as the Mann–Whitney U statistic over average ranks:
    the chance that a random positive scores above a random negative, ties counting one half.
    ``nan`` when one class is absent."""
    from scipy.stats import rankdata

    y, scores = _check_scores(y, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def auroc(y: Any, scores: Any) -> float:
    """AUROC of ``scores`` for binary labels ``y`` (1 positive); ``nan`` when a class is absent."""
    y, scores = _check_scores(y, scores)
    if y.sum() in (0, len(y)):
        return float("nan")
    try:
        from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return auroc_mann_whitney(y, scores)
    return float(roc_auc_score(y, scores))


def balanced_accuracy(y: Any, scores: Any, threshold: float) -> float:
    """Mean of the true-positive and true-negative rates when ``score >= threshold`` predicts 1."""
    y, scores = _check_scores(y, scores)
    predicted = scores >= threshold
    rates = [float((predicted[y == c] == bool(c)).mean()) for c in (0, 1) if (y == c).any()]
    return float(np.mean(rates)) if rates else float("nan")


def best_threshold(y: Any, scores: Any) -> tuple[float, float]:
    """``(threshold, balanced accuracy)`` of the threshold that maximises balanced accuracy;
    candidates are the distinct scores (the smallest such threshold on ties)."""
    y, scores = _check_scores(y, scores)
    best = (0.5, float("nan"))
    for t in np.unique(scores):
        ba = balanced_accuracy(y, scores, float(t))
        if not best[1] >= ba:  # also replaces the initial nan
            best = (float(t), ba)
    return best


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_score: float
    fraction_positive: float


def reliability_table(y: Any, scores: Any, *, bins: int = 10) -> list[ReliabilityBin]:
    """Scores in ``bins`` equal-width bins over [0, 1]: count, mean score and the fraction of
    positives in each non-empty bin. A calibrated judge has mean score ≈ fraction positive."""
    y, scores = _check_scores(y, scores)
    if bins < 1:
        raise InvalidInputError(f"bins must be >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    table = []
    for b in range(bins):
        members = index == b
        if members.any():
            table.append(
                ReliabilityBin(
                    low=float(edges[b]),
                    high=float(edges[b + 1]),
                    count=int(members.sum()),
                    mean_score=float(scores[members].mean()),
                    fraction_positive=float(y[members].mean()),
                )
            )
    return table


def expected_calibration_error(table: Sequence[ReliabilityBin]) -> float:
    total = sum(b.count for b in table)
    if not total:
        return float("nan")
    return float(sum(b.count * abs(b.mean_score - b.fraction_positive) for b in table) / total)
