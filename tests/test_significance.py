"""Paired tests and Holm's correction, against values computed by hand."""

import math

import numpy as np
import pytest
from rag_retrievers.evals.significance import (
    holm,
    paired_randomization_test,
    paired_scores,
    paired_t_test,
)

from rag_retrievers.errors import InvalidInputError


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; max(0.06, 1 x 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_holm_caps_at_one_keeps_order_and_handles_edges() -> None:
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == [0.02]
    assert holm([]) == []
    with pytest.raises(InvalidInputError, match="p-values"):
        holm([0.1, float("nan")])
    with pytest.raises(InvalidInputError, match="p-values"):
        holm([1.5])


def test_t_test_by_hand() -> None:
    # differences 0, 0, 0.5, 0.5: mean 0.25, sd 0.25 x 2/sqrt(3), t = 0.25 / (sd / 2) = sqrt(3)
    # with 3 degrees of freedom; the t(3) CDF is 1/2 + (u/(1+u^2) + atan u)/pi at u = t/sqrt(3)
    # = 1, so the two-sided p = 1 - 2 (1/2 + pi/4) / pi = 1/2 - 1/pi
    a = [0.5, 0.25, 1.0, 0.75]
    b = [0.5, 0.25, 0.5, 0.25]
    result = paired_t_test(a, b)
    assert result.test == "t"
    assert result.queries == 4
    assert result.mean_difference == pytest.approx(0.25)
    assert result.statistic == pytest.approx(math.sqrt(3))
    assert result.p_value == pytest.approx(0.5 - 1 / math.pi)
    swapped = paired_t_test(b, a)
    assert swapped.statistic == pytest.approx(-math.sqrt(3))
    assert swapped.p_value == pytest.approx(result.p_value)


def test_t_test_matches_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(7)
    a, b = rng.random(30), rng.random(30)
    expected = stats.ttest_rel(a, b)
    result = paired_t_test(a, b)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_identical_systems_have_p_one() -> None:
    scores = {"q1": 0.2, "q2": 0.9, "q3": 0.4}
    assert paired_t_test(scores, dict(scores)).p_value == 1.0
    result = paired_randomization_test(scores, dict(scores), trials=500)
    assert result.p_value == 1.0
    assert result.mean_difference == 0.0


def test_randomization_small_for_a_clearly_better_system_and_reproducible() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(50) * 0.5
    a = b + 0.3 + rng.random(50) * 0.1
    first = paired_randomization_test(a, b, trials=2000, seed=3)
    # no sign flip of 50 positive differences reaches the observed mean: only the +1 remains
    assert first.p_value == pytest.approx(1 / 2001)
    assert first.mean_difference == pytest.approx(float(np.mean(a - b)))
    noisy = rng.random(20)
    other = noisy + rng.normal(0, 0.2, 20)
    p1 = paired_randomization_test(noisy, other, trials=1000, seed=42).p_value
    p2 = paired_randomization_test(noisy, other, trials=1000, seed=42).p_value
    p3 = paired_randomization_test(
        noisy, other, trials=1000, seed=np.random.default_rng(42)
    ).p_value
    assert p1 == p2 == p3


def test_randomization_converges_to_the_exact_p() -> None:
    # two queries, differences (1, 1): of the 4 sign patterns, ++ and -- reach |mean| = 1
    result = paired_randomization_test([1.0, 1.0], [0.0, 0.0], trials=20_000, seed=0)
    assert result.p_value == pytest.approx(0.5, abs=0.02)


def test_missing_queries_count_as_zero() -> None:
    a = {"q1": 0.5, "q2": 1.0}
    b = {"q2": 0.5, "q3": 0.25}
    x, y = paired_scores(a, b)
    assert x.tolist() == [0.5, 1.0, 0.0]
    assert y.tolist() == [0.0, 0.5, 0.25]
    assert paired_t_test(a, b).mean_difference == pytest.approx((0.5 + 0.5 - 0.25) / 3)
    assert paired_t_test(a, b).queries == 3


def test_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="equal length"):
        paired_t_test([0.1, 0.2], [0.1])
    with pytest.raises(InvalidInputError, match="at least 2"):
        paired_t_test([0.1], [0.2])
    with pytest.raises(InvalidInputError, match="both"):
        paired_t_test({"q": 0.1}, [0.2])
    with pytest.raises(InvalidInputError, match="finite"):
        paired_t_test([0.1, float("inf")], [0.1, 0.2])
    with pytest.raises(InvalidInputError, match="trials"):
        paired_randomization_test([0.1, 0.2], [0.2, 0.1], trials=0)
    with pytest.raises(InvalidInputError, match="seed"):
        paired_randomization_test([0.1, 0.2], [0.2, 0.1], seed=1.5)
