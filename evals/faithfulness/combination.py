"""An equal-weight combination of relation signals: the offline judge's default.

Each signal the combination reads says how the answer relates to its context (the claims' best
cosine, the share of the answer's words the context holds, the token alignment, an unsupported
number, a one-sided negation), never how the answer is written. Signals live on different
scales, so each is first replaced by its *quantile*: the share of reference answers that score
below it (ties count one half), averaged over reference sets that each weigh the same. The
combination is the plain mean of those quantiles: a rank average whose ranks come from fixed
reference data, so a pair's score never depends on the other pairs of its batch. Nothing is
weighted by fitting: the reference only sets the scale, and a monotone calibration (a logistic
curve of the mean, :class:`Calibration`) turns it into a probability without changing any
ranking. The threshold at which the judge says "supported" is the one with the best balanced
accuracy averaged over the reference sets.

Which signals, and the reference, calibration and threshold of the shipped default, come from
leave-one-dataset-out selection (:mod:`~rag_retrievers.evals.faithfulness.lodo`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag_retrievers.errors import InvalidInputError

FORMAT_VERSION = 1
KIND = "combination"
#: signals for which a lower value means better supported; the combination flips them
LOWER_IS_SUPPORTED = frozenset(
    {
        "novel_mass_max",
        "number_missing",
        "date_missing",
        "entity_missing",
        "negation_flip",
        "direction_flip",
    }
)
QUANTILES = 101  # reference points kept per signal and set


def oriented(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` of signal ``name`` with higher meaning better supported."""
    values = np.asarray(values, dtype=np.float64)
    return -values if name in LOWER_IS_SUPPORTED else values


def reference_points(values: np.ndarray) -> list[float]:
    """:data:`QUANTILES` evenly spaced quantiles of ``values`` (what a reference set keeps)."""
    return [float(v) for v in np.quantile(np.asarray(values, float), np.linspace(0, 1, QUANTILES))]


def quantile_of(points: Sequence[float], values: np.ndarray) -> np.ndarray:
    """The share of a reference set below each value, ties counting one half, read from its
    quantile ``points``.

    >>> quantile_of([0.0, 0.0, 1.0], np.array([-1.0, 0.0, 0.5, 2.0])).round(3).tolist()
    [0.0, 0.333, 0.667, 1.0]
    """
    ref = np.asarray(points, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    below = np.searchsorted(ref, values, side="left")
    not_above = np.searchsorted(ref, values, side="right")
    return np.asarray((below + not_above) / (2.0 * len(ref)))


@dataclass(frozen=True)
class Calibration:
    """``sigmoid(slope * x + intercept)``, ``slope > 0``: monotone, so rankings stay.

    >>> round(float(Calibration(2.0, -1.0).apply(np.array([0.5]))[0]), 3)
    0.5
    """

    slope: float = 1.0
    intercept: float = 0.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        z = self.slope * np.asarray(x, dtype=np.float64) + self.intercept
        return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def fit_calibration(scores: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> Calibration:
    """Platt scaling of ``scores`` (one array per set) to ``labels`` (1 supported), each set
    weighing the same; the slope is kept positive so the calibration never reverses a ranking."""
    from scipy.optimize import minimize

    x = np.concatenate([np.asarray(s, float) for s in scores])
    y = np.concatenate([np.asarray(t, float) for t in labels])
    w = np.concatenate([np.full(len(s), 1.0 / max(1, len(s))) for s in scores])
    if len(set(y.tolist())) < 2:
        raise InvalidInputError("calibration needs both supported and unsupported pairs")
    w = w / w.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        slope, intercept = np.exp(theta[0]), theta[1]
        z = slope * x + intercept
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        nll = float((w * (np.logaddexp(0.0, z) - y * z)).sum())
        g = w * (p - y)
        return nll, np.array([float((g * x).sum()) * slope, float(g.sum())])

    result = minimize(loss, np.array([np.log(4.0), -2.0]), jac=True, method="L-BFGS-B")
    return Calibration(float(np.exp(result.x[0])), float(result.x[1]))


def best_shared_threshold(scores: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> float:
    """The threshold with the best balanced accuracy averaged over the sets (the lowest on ties),
    among the rounded scores of all of them."""
    from rag_retrievers.evals.faithfulness.calibration import balanced_accuracy

    candidates = np.unique(np.round(np.concatenate([np.asarray(s) for s in scores]), 3))
    best = (-1.0, 0.5)
    for t in candidates:
        mean = float(
            np.mean(
                [balanced_accuracy(y, s, float(t)) for s, y in zip(scores, labels, strict=True)]
            )
        )
        if mean > best[0]:
            best = (mean, float(t))
    return best[1]


@dataclass(frozen=True)
class Combination:
    """The equal-weight quantile average of ``features``, calibrated.

    ``reference``: per signal, the quantile points of each reference set (name -> points).
    """

    features: tuple[str, ...]
    reference: Mapping[str, Mapping[str, Sequence[float]]]
    calibration: Calibration = Calibration()
    threshold: float = 0.5
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def raw(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The uncalibrated mean of quantiles, in [0, 1], for the signals in ``columns``."""
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise InvalidInputError(f"the combination needs signals {missing}")
        parts = []
        for f in self.features:
            values = oriented(f, columns[f])
            sets = self.reference[f]
            parts.append(np.mean([quantile_of(p, values) for p in sets.values()], axis=0))
        return np.asarray(np.mean(parts, axis=0))

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.calibration.apply(self.raw(columns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "kind": KIND,
            "features": list(self.features),
            "calibration": {
                "slope": self.calibration.slope,
                "intercept": self.calibration.intercept,
            },
            "threshold": self.threshold,
            "fitted_on": self.fitted_on,
            "reference": {
                f: {name: [float(v) for v in points] for name, points in sets.items()}
                for f, sets in self.reference.items()
            },
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: Any, where: str = "combination") -> Combination:
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise InvalidInputError(f"{where}: not a combination")
        if data.get("format") != FORMAT_VERSION:
            raise InvalidInputError(f"{where}: not a combination of format {FORMAT_VERSION}")
        try:
            features = tuple(str(f) for f in data["features"])
            reference = {
                str(f): {str(n): [float(v) for v in p] for n, p in data["reference"][f].items()}
                for f in features
            }
            calibration = Calibration(
                float(data["calibration"]["slope"]), float(data["calibration"]["intercept"])
            )
            threshold = float(data["threshold"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"{where}: malformed combination ({exc})") from None
        if not features or any(not sets for sets in reference.values()):
            raise InvalidInputError(f"{where}: a combination needs signals and reference sets")
        if calibration.slope <= 0:
            raise InvalidInputError(f"{where}: the calibration slope must be > 0")
        return cls(features, reference, calibration, threshold, dict(data.get("fitted_on", {})))


def fit_combination(
    features: Sequence[str],
    sets: Mapping[str, tuple[Mapping[str, np.ndarray], np.ndarray]],
    *,
    calibrate: bool = True,
) -> Combination:
    """The combination of ``features`` with ``sets`` (name -> (signal columns, labels 1/0)) as
    its reference: their quantiles, the calibration and the shared threshold (without
    ``calibrate``: the identity and 0.5, for rankings only)."""
    if not sets:
        raise InvalidInputError("a combination needs at least one reference set")
    reference = {
        f: {name: reference_points(oriented(f, cols[f])) for name, (cols, _) in sets.items()}
        for f in features
    }
    base = Combination(tuple(features), reference)
    if not calibrate:
        return base
    raw = [base.raw(cols) for cols, _ in sets.values()]
    labels = [np.asarray(y) for _, y in sets.values()]
    calibration = fit_calibration(raw, labels)
    calibrated = [calibration.apply(r) for r in raw]
    threshold = best_shared_threshold(calibrated, labels)
    return Combination(
        tuple(features),
        reference,
        calibration,
        threshold,
        {"sets": {name: len(y) for name, (_, y) in sets.items()}},
    )
