"""Leave-one-dataset-out (LODO): how a judge does on a kind of text it was not chosen or fitted
on, and how the offline judge's default is chosen.

For every labelled set, each judge that learns anything learns it from the *other* sets only:

- ``baseline`` fits nothing (min over answer sentences of the best MiniLM cosine);
- **unfitted signals**: the claims' best cosine, word overlap, token alignment, the number and
  negation checks, and their rank average within the set (parameter-free, but ranks within a
  batch: a table figure, not a judge);
- the **default, chosen without the set**: among :data:`FAMILY` (equal-weight quantile averages
  of relation signals, :mod:`~rag_retrievers.evals.faithfulness.combination`), the member with
  the best worst-case gain over ``baseline`` in a LODO over the other sets alone, with its
  reference quantiles, calibration and threshold fitted on them;
- the **default as shipped**: the member chosen on all sets, reference and calibration fitted
  without the set (its choice saw every set);
- **learned** combinations fitted on the other sets: the former default (28 signals gated by
  context length and a learned similarity of MiniLM vectors) and a logistic regression over
  relation signals only, each set weighing the same;
- with ``--train-judge DIR``: a MiniLM cross-encoder fine-tuned on the other sets.

AUROC is reported supported vs not and, where a set has "not enough info" labels, supported vs
contradicted; the default's calibration error (ECE) and its balanced accuracy at the threshold
chosen without the set are reported per set.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rag_retrievers.evals.faithfulness.base import ABSTAIN_SCORE
from rag_retrievers.evals.faithfulness.calibration import (
    VIEWS,
    LabelledPair,
    auroc,
    auroc_mann_whitney,
    balanced_accuracy,
    expected_calibration_error,
    reliability_table,
    view_labels,
)
from rag_retrievers.evals.faithfulness.combination import (
    LOWER_IS_SUPPORTED,
    Combination,
    fit_combination,
)
from rag_retrievers.evals.faithfulness.offline import AnswerSignals

from rag_retrievers.errors import InvalidInputError

SIMILARITY = {"claim cosine": ("dense_min",), "answer cosine": ("answer_dense",)}
ADDITIONS = {
    "alignment": ("align_recall",),
    "overlap": ("word_overlap",),
    "checks": ("number_missing", "negation_flip"),
    "names": ("entity_missing",),
}


def _family() -> dict[str, tuple[str, ...]]:
    family: dict[str, tuple[str, ...]] = {}
    for name, similarity in SIMILARITY.items():
        for k in range(len(ADDITIONS) + 1):
            for extra in itertools.combinations(ADDITIONS, k):
                label = " + ".join((name, *extra))
                family[label] = similarity + tuple(f for e in extra for f in ADDITIONS[e])
    return family


#: the combinations the default is chosen among: a similarity, with or without each addition
FAMILY = _family()
#: the unfitted signals of the table: column name -> signal
UNFITTED = {
    "claim cosine": "dense_min",
    "word overlap": "word_overlap",
    "token alignment": "align_recall",
    "checks (number, negation)": "checks",
}
RANK_AVERAGE = ("dense_min", "word_overlap", "align_recall", "number_missing", "negation_flip")
#: relation signals for the fitted logistic regression (no style, no lengths)
RELATION = (
    "dense_min",
    "answer_dense",
    "word_overlap",
    "context_coverage_min",
    "align_recall",
    "align_low_quartile",
    "negation_contrast",
    "number_missing",
    "date_missing",
    "entity_missing",
    "negation_flip",
    "direction_flip",
)


@dataclass(frozen=True)
class LabelledSet:
    """One set's pairs with every signal computed once (abstained rows hold the set's median)."""

    name: str
    pairs: list[LabelledPair]
    columns: dict[str, np.ndarray]
    judged: np.ndarray  # bool: the offline judge did not abstain
    baseline: np.ndarray
    signals: list[AnswerSignals | str]

    @property
    def y(self) -> np.ndarray:
        return np.array([int(p.label == 1) for p in self.pairs])

    @property
    def views(self) -> list[str]:
        """Supported vs not, and supported vs contradicted where some labels are null."""
        return list(VIEWS) if any(p.label is None for p in self.pairs) else [VIEWS[0]]

    def signal(self, name: str) -> np.ndarray:
        if name == "checks":
            return np.asarray(
                1.0 - np.maximum(self.columns["number_missing"], self.columns["negation_flip"])
            )
        values = self.columns[name]
        return -values if name in LOWER_IS_SUPPORTED else values


def prepare_sets(
    named: Sequence[tuple[str, list[LabelledPair]]],
    *,
    cache_dir: Any = None,
    progress: bool | None = None,
) -> list[LabelledSet]:
    """Every signal of every pair, by the offline judge and the baseline (cached on disk)."""
    from rag_retrievers.evals.faithfulness.baseline import BaselineJudge
    from rag_retrievers.evals.faithfulness.offline import OfflineJudge, signal_columns

    judge = OfflineJudge(cache_dir=cache_dir, weights="hand-set")
    baseline = BaselineJudge(cache_dir=cache_dir)
    out = []
    for name, pairs in named:
        texts = [(p.context, p.response) for p in pairs]
        signals = judge.signals(texts, progress)
        judged = np.array([not isinstance(s, str) for s in signals])
        found = signal_columns([s for s in signals if not isinstance(s, str)])
        columns = {}
        for key, values in found.items():
            full = np.full(len(pairs), float(np.median(values)) if len(values) else 0.0)
            full[judged] = values
            columns[key] = full
        scores = np.array([r.score for r in baseline.judge_batch(texts, progress=progress)])
        out.append(LabelledSet(name, pairs, columns, judged, scores, signals))
    return out


def _abstain(scores: np.ndarray, test: LabelledSet) -> np.ndarray:
    return np.where(test.judged, scores, ABSTAIN_SCORE)


def _reference(sets: Sequence[LabelledSet]) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    return {s.name: ({k: v[s.judged] for k, v in s.columns.items()}, s.y[s.judged]) for s in sets}


def combination_scores(
    features: Sequence[str],
    train: Sequence[LabelledSet],
    test: LabelledSet,
    *,
    calibrate: bool = True,
) -> tuple[np.ndarray, Combination]:
    combination = fit_combination(features, _reference(train), calibrate=calibrate)
    return _abstain(combination.predict(test.columns), test), combination


#: AUROC for the choice (the Mann-Whitney statistic: the same figure as scikit-learn's, faster)
fast = auroc_mann_whitney


def lodo_scores(features: Sequence[str], sets: Sequence[LabelledSet]) -> dict[str, np.ndarray]:
    """Each set's scores by the combination of ``features`` fitted on the other sets (a single
    set has no other: it is its own reference, so a choice on one set is an in-set choice)."""
    return {
        test.name: combination_scores(
            features, [s for s in sets if s is not test] or [test], test, calibrate=False
        )[0]
        for test in sets
    }


def gain_error(test: LabelledSet, scores: np.ndarray, *, rounds: int = 200) -> float:
    """Standard error of ``AUROC(scores) - AUROC(baseline)`` on ``test`` (supported vs not): a
    bootstrap over claims (pairs of one group are drawn together), fixed seed."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(test.pairs):
        groups.setdefault(p.group, []).append(i)
    members = [np.array(v) for v in groups.values()]
    rng = np.random.default_rng(0)
    y = test.y
    gains = []
    for _ in range(rounds):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        if len(set(y[rows].tolist())) < 2:
            continue
        gains.append(fast(y[rows], scores[rows]) - fast(y[rows], test.baseline[rows]))
    return float(np.std(gains)) if gains else 0.0


def choose(sets: Sequence[LabelledSet]) -> tuple[str, dict[str, dict[str, float]]]:
    """The :data:`FAMILY` member chosen on ``sets`` by their LODO gains over ``baseline``
    (supported vs not), and every member's gains.

    The rule: the best worst-case gain, with a one-standard-error tolerance. The member with the
    best worst-case gain is found; its gain on that worst set has a standard error ``se``
    (:func:`gain_error`); every member whose worst-case gain is within ``se`` of it is as good
    as far as these sets can tell, and among those the tie is broken by the next-worst gain, then
    the next (leximin), then by fewer signals and the family's order.
    """
    scores = {name: lodo_scores(features, sets) for name, features in FAMILY.items()}
    base = {s.name: fast(s.y, s.baseline) for s in sets}
    table = {
        name: {s.name: fast(s.y, per_set[s.name]) - base[s.name] for s in sets}
        for name, per_set in scores.items()
    }
    best = max(FAMILY, key=lambda n: (min(table[n].values()), -len(FAMILY[n])))
    worst_set = min(table[best], key=table[best].__getitem__)
    test = next(s for s in sets if s.name == worst_set)
    se = gain_error(test, scores[best][worst_set])
    floor = min(table[best].values()) - se
    tied = [n for n in FAMILY if min(table[n].values()) >= floor]
    # tied on the worst set: compare the others, worst first
    chosen = max(tied, key=lambda n: (sorted(table[n].values())[1:], -len(FAMILY[n])))
    return chosen, table


def learned_scores(train: Sequence[LabelledSet], test: LabelledSet) -> np.ndarray:
    """The former default's recipe (every signal, gated by context length, plus the learned
    similarity, penalty 6) fitted on ``train``."""
    from rag_retrievers.evals.faithfulness.bilinear import DEFAULT_NUCLEAR
    from rag_retrievers.evals.faithfulness.learned import fit_logistic
    from rag_retrievers.evals.faithfulness.offline import (
        FEATURES,
        GATED_FEATURES,
        gated,
        pair_vectors,
    )

    def design(s: LabelledSet) -> tuple[np.ndarray, Any]:
        judged = [a for a in s.signals if not isinstance(a, str)]
        x = gated(np.column_stack([s.columns[f][s.judged] for f in FEATURES]))
        return x, pair_vectors(judged, x)

    parts = [design(s) for s in train]
    x = np.vstack([p[0] for p in parts])
    vectors = tuple(np.concatenate([p[1][i] for p in parts]) for i in range(3))
    y = np.concatenate([s.y[s.judged] for s in train])
    weights = fit_logistic(
        x,
        y,
        GATED_FEATURES,
        vectors=vectors,
        nuclear=DEFAULT_NUCLEAR,
    )
    xt, vt = design(test)
    scores = np.full(len(test.pairs), ABSTAIN_SCORE)
    scores[test.judged] = weights.predict(xt, vt)
    return scores


def relation_scores(train: Sequence[LabelledSet], test: LabelledSet) -> np.ndarray:
    """A logistic regression over :data:`RELATION` signals fitted on ``train``, each set (and
    within it each class) weighing the same."""
    from rag_retrievers.evals.faithfulness.learned import fit_logistic

    x = np.vstack([np.column_stack([s.columns[f][s.judged] for f in RELATION]) for s in train])
    y = np.concatenate([s.y[s.judged] for s in train])
    w = np.concatenate(
        [
            np.where(
                s.y[s.judged] == 1,
                0.5 / max(1, (s.y[s.judged] == 1).sum()),
                0.5 / max(1, (s.y[s.judged] == 0).sum()),
            )
            for s in train
        ]
    )
    weights = fit_logistic(x, y, RELATION, sample_weight=w * len(y) / w.sum())
    scores = weights.predict(np.column_stack([test.columns[f] for f in RELATION]))
    return _abstain(scores, test)


def rank_average(test: LabelledSet) -> np.ndarray:
    from scipy.stats import rankdata

    return np.mean([rankdata(test.signal(f)) / len(test.pairs) for f in RANK_AVERAGE], axis=0)


def figures(test: LabelledSet, scores: np.ndarray) -> dict[str, float]:
    """AUROC per view of ``test``."""
    out = {}
    labels = [p.label for p in test.pairs]
    for view in test.views:
        mask, y = view_labels(labels, view)
        out[view] = auroc(y, np.asarray(scores)[mask])
    return out


def calibration_figures(
    test: LabelledSet, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    y = test.y
    return {
        "ECE": expected_calibration_error(reliability_table(y, scores)),
        "threshold": threshold,
        "balanced_accuracy": balanced_accuracy(y, scores, threshold),
    }


def lodo_report(
    sets: Sequence[LabelledSet],
    *,
    cross_encoder: Callable[[Sequence[LabelledSet], LabelledSet], tuple[np.ndarray, float]]
    | None = None,
    learned: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The LODO table as a dict (see :func:`print_lodo`)."""
    if len(sets) < 2:
        raise InvalidInputError("leave-one-dataset-out needs at least two pair sets")
    began = time.perf_counter()
    shipped, family_gains = choose(sets)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    extra: dict[str, dict[str, Any]] = {}

    def put(row: str, test: LabelledSet, scores: np.ndarray) -> None:
        rows.setdefault(row, {})[test.name] = figures(test, scores)

    for test in sets:
        train = [s for s in sets if s is not test]
        log(f"left out: {test.name}")
        put("baseline", test, test.baseline)
        chosen, _ = choose(train)
        scores, combination = combination_scores(FAMILY[chosen], train, test)
        put("default, chosen without the set", test, scores)
        extra.setdefault("default", {})[test.name] = {
            "chosen": chosen,
            **calibration_figures(test, scores, combination.threshold),
        }
        scores, combination = combination_scores(FAMILY[shipped], train, test)
        put("default as shipped", test, scores)
        extra.setdefault("shipped", {})[test.name] = calibration_figures(
            test, scores, combination.threshold
        )
        for column, signal in UNFITTED.items():
            put(column, test, test.signal(signal))
        put("rank average of the five", test, rank_average(test))
        if learned:
            put("learned: former default's recipe", test, learned_scores(train, test))
            put("learned: relation signals only", test, relation_scores(train, test))
        if cross_encoder is not None:
            scores, seconds = cross_encoder(train, test)
            put("cross-encoder (MiniLM fine-tuned)", test, scores)
            extra.setdefault("cross_encoder", {})[test.name] = {
                "training_seconds": seconds,
                **calibration_figures(test, scores, 0.5),
            }
    base = {s.name: rows["baseline"][s.name][VIEWS[0]] for s in sets}
    worst = {row: min(cells[n][VIEWS[0]] - base[n] for n in cells) for row, cells in rows.items()}
    return {
        "sets": {s.name: {"pairs": len(s.pairs), "views": s.views} for s in sets},
        "rows": rows,
        "worst_gain": worst,
        "default": extra["default"],
        "shipped": {"chosen": shipped, "features": list(FAMILY[shipped]), **extra["shipped"]},
        "cross_encoder": extra.get("cross_encoder"),
        "family": {n: {"features": list(FAMILY[n]), "gains": g} for n, g in family_gains.items()},
        "seconds": round(time.perf_counter() - began, 1),
    }


def fit_shipped(sets: Sequence[LabelledSet], chosen: str) -> Combination:
    """The :data:`FAMILY` member ``chosen`` fitted on all ``sets``: what ``--save-default``
    writes and the offline judge ships."""
    combination = fit_combination(FAMILY[chosen], _reference(sets))
    fitted_on = {
        **combination.fitted_on,
        "member": chosen,
        "selection": "best worst-case LODO gain over baseline",
    }
    return Combination(
        combination.features,
        combination.reference,
        combination.calibration,
        combination.threshold,
        fitted_on,
    )
