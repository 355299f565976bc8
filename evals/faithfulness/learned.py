"""A small learned combination of judge signals: L2-regularised logistic regression in numpy and
scipy, fitted under the split rule (never the same claim in training and test).

The weights are a JSON file: feature names, standardisation, coefficients and what they were
fitted on, so a report can say which data fitted what.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from rag_retrievers.evals.faithfulness.bilinear import (
    DEFAULT_RANK,
    NUCLEAR_CHOICES,
    BilinearForm,
    bilinear_loss,
    initial_matrices,
    unpack_form,
)

from rag_retrievers.errors import InvalidInputError

if TYPE_CHECKING:
    from rag_retrievers.evals.faithfulness.base import JudgeResult
    from rag_retrievers.evals.faithfulness.calibration import LabelledPair

FORMAT_VERSION = 1


def group_folds(groups: Sequence[str], folds: int, *, seed: int = 0) -> np.ndarray:
    """Fold number (0..folds-1) of each item; items of the same group always share a fold.

    Groups are shuffled with a fixed seed, then dealt to the currently smallest fold, largest
    group first, so folds have similar sizes and the result is the same on every run.

    >>> folds = group_folds(["a", "b", "a", "c"], 2).tolist()
    >>> folds[0] == folds[2], sorted(set(folds))
    (True, [0, 1])
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InvalidInputError(f"folds must be an int >= 2, got {folds!r}")
    names = sorted(set(groups))
    if len(names) < folds:
        raise InvalidInputError(f"{len(names)} distinct claims cannot fill {folds} folds")
    order = np.random.default_rng(seed).permutation(len(names))
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    shuffled = [names[i] for i in order]
    shuffled.sort(key=lambda g: -sizes[g])  # stable: ties keep the shuffled order
    load = np.zeros(folds, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for g in shuffled:
        f = int(load.argmin())
        fold_of[g] = f
        load[f] += sizes[g]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))  # never overflows


@dataclass(frozen=True)
class LogisticWeights:
    """A fitted logistic regression over named features.

    >>> w = LogisticWeights(("x",), (0.0,), (1.0,), (2.0,), 0.0)
    >>> round(float(w.predict(np.array([[1.0]]))[0]), 3)
    0.881
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    l2: float = 1.0
    fitted_on: dict[str, Any] = field(default_factory=dict)
    similarity: BilinearForm | None = None  # a learned answer-context similarity, when fitted

    def predict(self, x: np.ndarray, vectors: PairVectors | None = None) -> np.ndarray:
        """The probability of "supported" per row of ``x``; ``vectors`` (the answers' and the
        contexts' sentence vectors and the long-context gate) are needed with a similarity."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise InvalidInputError(
                f"expected {len(self.features)} features {self.features}, got shape {x.shape}"
            )
        z = ((x - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.coef)
        if self.similarity is not None:
            if vectors is None:
                raise InvalidInputError("these weights hold a learned similarity: pass vectors")
            z = z + self.similarity.logits(*vectors)
        return _sigmoid(z + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "kind": "logistic",
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "l2": self.l2,
            "fitted_on": self.fitted_on,
        } | ({} if self.similarity is None else {"similarity": self.similarity.to_dict()})

    def save(self, path: str | os.PathLike[str], **fitted_on: Any) -> None:
        data = self.to_dict()
        data["fitted_on"] = {**self.fitted_on, **fitted_on}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LogisticWeights:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read judge weights {path}: {exc}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "weights") -> LogisticWeights:
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise InvalidInputError(f"{where}: not judge weights of format {FORMAT_VERSION}")
        try:
            n = len(data["features"])
            weights = cls(
                features=tuple(str(f) for f in data["features"]),
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                coef=tuple(float(v) for v in data["coef"]),
                intercept=float(data["intercept"]),
                l2=float(data.get("l2", 1.0)),
                fitted_on=dict(data.get("fitted_on", {})),
                similarity=None
                if data.get("similarity") is None
                else BilinearForm.from_dict(data["similarity"], where),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{where}: malformed judge weights ({exc})") from None
        if not (len(weights.mean) == len(weights.scale) == len(weights.coef) == n):
            raise InvalidInputError(f"{where}: feature, mean, scale and coef lengths differ")
        return weights


#: per pair: the answer's and the context's unit sentence vectors and the long-context gate (0/1)
PairVectors = tuple[np.ndarray, np.ndarray, np.ndarray]


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    *,
    l2: float = 1.0,
    vectors: PairVectors | None = None,
    nuclear: float | None = None,
    rank: int = DEFAULT_RANK,
    sample_weight: np.ndarray | None = None,
) -> LogisticWeights:
    """Logistic regression with an L2 penalty ``l2 * |coef|^2 / 2`` on standardised features
    (the intercept is not penalised), fitted by L-BFGS; deterministic. ``sample_weight`` weighs
    each row's loss (without a learned similarity only; default 1 each). With ``vectors`` and a
    ``nuclear`` penalty it also fits a learned similarity between them
    (:class:`~rag_retrievers.evals.faithfulness.bilinear.BilinearForm`), jointly."""
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or x.shape[1] != len(features):
        raise InvalidInputError("x must be (n, len(features)) and y of length n")
    if len(set(y.tolist())) < 2:
        raise InvalidInputError("fitting needs both supported and unsupported examples")
    if (vectors is None) != (nuclear is None):
        raise InvalidInputError("a learned similarity needs both vectors and a nuclear penalty")
    if sample_weight is not None and vectors is not None:
        raise InvalidInputError("sample_weight is not supported with a learned similarity")
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if sw.shape != y.shape or not np.isfinite(sw).all() or (sw < 0).any():
        raise InvalidInputError("sample_weight must be one finite weight >= 0 per row")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    p = x.shape[1]

    if vectors is None or nuclear is None:
        theta0 = np.zeros(p + 1)

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:p], theta[p]
            logits = z @ w + b
            # log(1 + e^t) - y t, computed stably
            nll = sw * (np.logaddexp(0.0, logits) - y * logits)
            g = sw * (_sigmoid(logits) - y)
            grad = np.append(z.T @ g + l2 * w, g.sum())
            return float(nll.sum() + 0.5 * l2 * w @ w), grad

    else:
        u, v, long = (np.asarray(a, dtype=np.float64) for a in vectors)
        long = long.reshape(-1)
        if not (len(u) == len(v) == len(long) == len(x)):
            raise InvalidInputError("vectors must have one row per row of x")
        theta0 = np.concatenate([np.zeros(p + 1), initial_matrices(u.shape[1], v.shape[1], rank)])

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:p], theta[p]
            value, grad = bilinear_loss(theta[p + 1 :], z @ w + b, u, v, long, y, rank, nuclear)
            g = grad[-len(y) :]
            head = np.append(z.T @ g + l2 * w, g.sum())
            return value + 0.5 * l2 * float(w @ w), np.concatenate([head, grad[: -len(y)]])

    # the similarity's fit is capped (500 L-BFGS steps) so a large labelled set stays minutes
    options = {} if vectors is None else {"maxiter": 500}
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B", options=options)
    similarity = None
    if vectors is not None and nuclear is not None:
        d, e = vectors[0].shape[1], vectors[1].shape[1]
        similarity = unpack_form(result.x[p + 1 :], d, e, rank, nuclear)
    return LogisticWeights(
        features=tuple(features),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in result.x[:p]),
        intercept=float(result.x[p]),
        l2=l2,
        similarity=similarity,
    )


def out_of_fold_scores(
    x: np.ndarray,
    y: np.ndarray,
    vectors: PairVectors,
    fold: np.ndarray,
    fit: Callable[[np.ndarray, np.ndarray, PairVectors, np.ndarray], LogisticWeights],
) -> np.ndarray:
    """Each row scored by weights that ``fit(x, y, vectors, train_mask)`` fitted on the other
    folds (``fold``: each row's fold number, as :func:`group_folds` gives)."""
    u, v, long = vectors
    scores = np.empty(len(y))
    for f in np.unique(fold):
        test = fold == f
        weights = fit(x[~test], y[~test], (u[~test], v[~test], long[~test]), ~test)
        scores[test] = weights.predict(x[test], (u[test], v[test], long[test]))
    return scores


def choose_nuclear(
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    vectors: PairVectors,
    groups: Sequence[str],
    *,
    choices: Sequence[float] = NUCLEAR_CHOICES,
    folds: int = 3,
) -> float:
    """The learned similarity's penalty, chosen by ``folds``-fold cross-validation by claim on
    the training pairs alone: the choice whose held-out scores have the highest AUROC."""
    from rag_retrievers.evals.faithfulness.calibration import auroc_mann_whitney

    if not choices:
        raise InvalidInputError("choose_nuclear needs at least one penalty to choose from")
    fold = group_folds(groups, folds, seed=1)  # not the outer folds' seed: other splits
    best = (-1.0, float(choices[0]))
    for nuclear in choices:

        def fit(xt: np.ndarray, yt: np.ndarray, vt: PairVectors, _: np.ndarray) -> LogisticWeights:
            # B023 is safe here: fit is called within this iteration only
            return fit_logistic(xt, yt, features, vectors=vt, nuclear=nuclear)  # noqa: B023

        area = auroc_mann_whitney(y, out_of_fold_scores(x, y, vectors, fold, fit))
        if area > best[0]:
            best = (area, float(nuclear))
    return best[1]


@runtime_checkable
class Learnable(Protocol):
    """A judge whose final score is a learned combination of its signals."""

    def fit_pairs(
        self, pairs: Sequence[LabelledPair], *, progress: bool | None = None
    ) -> LogisticWeights: ...

    def cross_validate(
        self, pairs: Sequence[LabelledPair], *, folds: int = 5, progress: bool | None = None
    ) -> list[JudgeResult]: ...
