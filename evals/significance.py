"""Paired significance tests over per-query scores, and Holm's correction for a family of them.

Two systems are compared on the same queries: each function takes the per-query values of one
metric for system ``a`` and for system ``b`` (``query id -> value``, as
:func:`~rag_retrievers.evals.retrieval.per_query_metrics` gives them, or two aligned sequences),
and tests whether the mean of ``a - b`` differs from zero (two-sided).

Mappings are aligned by query id. A query present in one mapping only scores 0 in the other, the
rule :func:`~rag_retrievers.evals.retrieval.evaluate_run` follows for a query a run has no hits for.

>>> a = {"q1": 0.5, "q2": 0.75, "q3": 1.0}
>>> b = {"q1": 0.25, "q2": 0.5}
>>> paired_scores(a, b)[1].tolist()
[0.25, 0.5, 0.0]
>>> holm([0.01, 0.04, 0.03])
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rag_retrievers.errors import InvalidInputError

Scores = Mapping[str, float] | Sequence[float] | np.ndarray
TestName = Literal["t", "randomization"]

__all__ = [
    "PairedTest",
    "holm",
    "paired_randomization_test",
    "paired_scores",
    "paired_t_test",
]

#: trials whose statistic is this close to the observed one count as "at least as extreme"
_TIE = 1e-12
#: trials drawn per block in the randomisation test (bounds memory: block x queries signs)
_BLOCK = 1000


@dataclass(frozen=True)
class PairedTest:
    """The outcome of one paired test of ``a`` against ``b``.

    ``mean_difference`` is mean(a - b); ``statistic`` is the t statistic for the t-test and the
    observed mean difference for the randomisation test; ``p_value`` is two-sided.
    """

    test: TestName
    mean_difference: float
    statistic: float
    p_value: float
    queries: int


def paired_scores(a: Scores, b: Scores) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as two aligned float arrays.

    Mappings are aligned on the union of their query ids (sorted), 0 where one lacks a query;
    sequences must have the same length. Values must be finite numbers.
    """
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise InvalidInputError("a and b must both be mappings (query id -> value) or sequences")
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        ids = sorted(set(a) | set(b))
        x = np.array([a.get(q, 0.0) for q in ids], dtype=float)
        y = np.array([b.get(q, 0.0) for q in ids], dtype=float)
    else:
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if x.ndim != 1 or y.ndim != 1 or len(x) != len(y):
            raise InvalidInputError(
                f"a and b must be flat sequences of equal length, got shapes {x.shape} and "
                f"{y.shape}"
            )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidInputError("per-query scores must be finite numbers")
    return x, y


def _differences(a: Scores, b: Scores) -> np.ndarray:
    x, y = paired_scores(a, b)
    if len(x) < 2:
        raise InvalidInputError(f"a paired test needs at least 2 queries, got {len(x)}")
    return x - y


def paired_t_test(a: Scores, b: Scores) -> PairedTest:
    """Two-sided paired Student's t-test of mean(a - b) = 0 (``scipy.stats.ttest_rel``).

    Student (1908), "The probable error of a mean", Biometrika 6(1); its use for comparing IR
    systems is discussed by Smucker, Allan & Carterette (2007), "A comparison of statistical
    significance tests for information retrieval evaluation", CIKM.

    Where every difference is 0 the t statistic is undefined (0/0); the result is then
    ``statistic=0.0, p_value=1.0``: the data give no evidence of a difference.
    """
    from scipy import stats

    d = _differences(a, b)
    mean = float(np.mean(d))
    if not d.any():
        return PairedTest("t", 0.0, 0.0, 1.0, len(d))
    result = stats.ttest_rel(d, np.zeros_like(d))
    return PairedTest("t", mean, float(result.statistic), float(result.pvalue), len(d))


def paired_randomization_test(
    a: Scores, b: Scores, *, trials: int = 10_000, seed: int | np.random.Generator = 0
) -> PairedTest:
    """Two-sided paired randomisation (permutation) test of mean(a - b) = 0.

    Fisher's randomisation test as Smucker, Allan & Carterette (2007), "A comparison of
    statistical significance tests for information retrieval evaluation", CIKM, apply it: under
    the null hypothesis the labels ``a``/``b`` of each query's pair of scores are exchangeable, so
    each trial swaps them at random (flips the sign of each difference with probability 1/2) and
    the p-value is the fraction of trials whose |mean difference| is at least the observed one.
    The count includes the observed assignment, ``(hits + 1) / (trials + 1)`` (Phipson & Smyth
    2010, "Permutation p-values should never be zero", SAGMB 9(1)), so p is never 0 and is exactly
    1.0 for identical systems.

    ``seed`` is an int or a :class:`numpy.random.Generator`; the same seed gives the same p.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise InvalidInputError(f"trials must be an int >= 1, got {trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator):
        raise InvalidInputError(f"seed must be an int or a numpy Generator, got {seed!r}")
    d = _differences(a, b)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    observed = abs(float(np.mean(d)))
    hits = 0
    for start in range(0, trials, _BLOCK):
        size = min(_BLOCK, trials - start)
        signs = rng.integers(0, 2, size=(size, len(d)), dtype=np.int8) * 2 - 1
        means = np.abs(signs @ d) / len(d)
        hits += int(np.count_nonzero(means >= observed - _TIE))
    p = (hits + 1) / (trials + 1)
    return PairedTest("randomization", float(np.mean(d)), float(np.mean(d)), p, len(d))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in input order (Holm 1979, "A simple sequentially rejective
    multiple test procedure", Scandinavian Journal of Statistics 6(2)).

    The i-th smallest of m p-values (i from 1) becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted p < alpha controls the family-wise error rate at alpha.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    >>> holm([])
    []
    """
    ps = [float(p) for p in p_values]
    for p in ps:
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise InvalidInputError(f"p-values must be numbers in [0, 1], got {p!r}")
    m = len(ps)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: ps[i])):
        running = max(running, min(1.0, (m - rank) * ps[index]))
        adjusted[index] = running
    return adjusted
