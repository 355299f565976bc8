"""Faithfulness judges: text checks, the baseline and offline judges (on a deterministic fake
embedder, plus slow real-MiniLM tests), AUROC maths, the split rule and the CLI."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from rag_retrievers.evals.faithfulness import (
    FaithfulnessJudge,
    JudgeResult,
    create_judge,
    judge_names,
    register_judge,
)
from rag_retrievers.evals.faithfulness.alignment import TokenAligner, token_alignment
from rag_retrievers.evals.faithfulness.baseline import BaselineJudge
from rag_retrievers.evals.faithfulness.bilinear import BilinearForm
from rag_retrievers.evals.faithfulness.calibration import (
    LabelledPair,
    auroc,
    auroc_mann_whitney,
    balanced_accuracy,
    best_threshold,
    read_pairs,
    reliability_table,
    view_labels,
)
from rag_retrievers.evals.faithfulness.embeddings import SentenceEmbedder
from rag_retrievers.evals.faithfulness.learned import LogisticWeights, fit_logistic, group_folds
from rag_retrievers.evals.faithfulness.offline import (
    DEFAULT_WEIGHTS,
    FEATURES,
    GATED_FEATURES,
    SIGNALS,
    OfflineJudge,
)
from rag_retrievers.evals.faithfulness.signals import (
    STYLE_FEATURES,
    gate,
    negation_contrast,
    style_signals,
)
from rag_retrievers.evals.faithfulness.text import (
    dates,
    direction,
    entities,
    negate,
    negation_count,
    numbers,
    split_claims,
    split_sentences,
)

from rag_retrievers.cli import main
from rag_retrievers.errors import InvalidInputError, UnknownNameError


class BagOfWordsEmbedder(SentenceEmbedder):
    """Deterministic stand-in for MiniLM (its 384 dimensions, so the shipped weights apply): a
    hashed bag of lower-cased words, L2-normalised."""

    def __init__(self) -> None:
        super().__init__("fake", cache_dir=None)
        self.calls = 0

    def embed(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 384] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


class BagOfWordsAligner(TokenAligner):
    """Deterministic stand-in for MiniLM's token vectors: one hashed one-hot vector per word."""

    def __init__(self) -> None:
        super().__init__("fake", cache_dir=None)

    def token_vectors(self, texts: Sequence[str], progress: bool | None) -> list[np.ndarray]:
        out = []
        for text in texts:
            tokens = re.findall(r"\w+", text.lower())
            vectors = np.zeros((len(tokens), 64), dtype=np.float32)
            for i, word in enumerate(tokens):
                vectors[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] = 1.0
            out.append(vectors)
        return out


def offline(weights: object = "hand-set") -> OfflineJudge:
    judge = OfflineJudge(weights=weights)  # type: ignore[arg-type]
    judge.embedder = BagOfWordsEmbedder()
    judge.aligner = BagOfWordsAligner()
    return judge


def baseline() -> BaselineJudge:
    judge = BaselineJudge()
    judge.embedder = BagOfWordsEmbedder()
    return judge


# -- text ------------------------------------------------------------------------------------


def test_sentences_keep_abbreviations_and_split_lines() -> None:
    text = "Smith et al. found 3.5 mg/kg e.g. in mice. Levels rose.\nNew line here"
    assert split_sentences(text) == [
        "Smith et al. found 3.5 mg/kg e.g. in mice.",
        "Levels rose.",
        "New line here",
    ]
    assert split_sentences("  \n ... \n") == []


def test_claims_split_at_clauses_with_enough_words() -> None:
    assert split_claims("Sales rose in the north, but they fell in the south.") == [
        "Sales rose in the north",
        "but they fell in the south.",
    ]
    assert split_claims("It rose, but fell.") == ["It rose, but fell."]


def test_numbers_dates_entities_negation_direction() -> None:
    assert numbers("It cost $1,000 or 5.0% (two) in 2019") == {"1000", "5", "2"}
    assert dates("In March 2019 and the 1990s it may rain") == {"march", "2019", "1990s"}
    assert entities("The NASA team met Obama in Paris. Then they left.") == {
        "nasa",
        "obama",
        "paris",
    }
    assert negation_count("It did not and never can't") == 3
    assert direction("Temperatures increased sharply") == 1
    assert direction("Temperatures did not increase") == -1
    assert direction("Ice is declining") == -1
    assert direction("Ice is stable") == 0


# -- judges ----------------------------------------------------------------------------------

CONTEXT = (
    "The city of Lyon recorded 312 heatwave deaths in 2019. "
    "Hospital admissions increased during the heatwave. "
    "The mayor announced new cooling centres."
)


def test_offline_supported_answer_beats_unsupported() -> None:
    judge = offline()
    supported = judge.judge(CONTEXT, "Lyon recorded 312 heatwave deaths in 2019.")
    unrelated = judge.judge(CONTEXT, "The football team won the league trophy.")
    assert supported.score > 0.8
    assert unrelated.score < supported.score - 0.4
    assert supported.claims[0].span.startswith("The city of Lyon")
    assert supported.claims[0].flags == ()


def test_offline_flags_a_number_mismatch() -> None:
    judge = offline()
    right = judge.judge(CONTEXT, "Lyon recorded 312 heatwave deaths in 2019.")
    wrong = judge.judge(CONTEXT, "Lyon recorded 412 heatwave deaths in 2019.")
    assert any(f.startswith("number: 412") for f in wrong.claims[0].flags)
    assert wrong.score < right.score * 0.6


def test_offline_flags_dates_and_names() -> None:
    judge = offline()
    result = judge.judge(CONTEXT, "Marseille recorded 312 heatwave deaths in 2021.")
    flags = result.claims[0].flags
    assert any(f.startswith("date: 2021") for f in flags)
    assert any(f.startswith("entity: marseille") for f in flags)


def test_offline_negation_flips() -> None:
    judge = offline()
    same = judge.judge(CONTEXT, "Hospital admissions increased during the heatwave.")
    negated = judge.judge(CONTEXT, "Hospital admissions did not increase during the heatwave.")
    assert "negation: on one side only" in negated.claims[0].flags
    assert negated.score < same.score * 0.6


def test_offline_direction_words() -> None:
    judge = offline()
    result = judge.judge(CONTEXT, "Hospital admissions decreased during the heatwave.")
    assert "direction: opposite to the span" in result.claims[0].flags


def test_offline_scores_the_weakest_claim() -> None:
    judge = offline()
    result = judge.judge(
        CONTEXT, "Hospital admissions increased during the heatwave. The football team won."
    )
    assert len(result.claims) == 2
    assert result.score == pytest.approx(min(c.score for c in result.claims))


def default_offline() -> OfflineJudge:
    return offline(weights=None)


@pytest.mark.parametrize("make", [offline, default_offline, baseline])
def test_judges_abstain_and_say_why(make: object) -> None:
    judge = make()  # type: ignore[operator]
    empty = judge.judge("", "Some answer here.")
    assert empty.abstained == "empty context"
    assert empty.score == 0.5
    blank = judge.judge(CONTEXT, "   ")
    assert blank.abstained is not None
    with pytest.raises(InvalidInputError, match="answer must be a str"):
        judge.judge(CONTEXT, None)


@pytest.mark.parametrize("make", [offline, default_offline, baseline])
def test_judges_are_deterministic_and_rank_support_first(make: object) -> None:
    rng = np.random.default_rng(0)
    vocab = "the heat rose fell 12 2019 Lyon not no deaths increased city mayor %".split()
    pairs = [
        (
            " ".join(rng.choice(vocab, 12)) + ". " + " ".join(rng.choice(vocab, 6)),
            " ".join(rng.choice(vocab, 8)),
        )
        for _ in range(30)
    ]
    first = [r.score for r in make().judge_batch(pairs)]  # type: ignore[operator]
    second = [r.score for r in make().judge_batch(pairs)]  # type: ignore[operator]
    assert first == second
    assert len(set(first)) > 1  # the scores follow the answers, they are not one constant
    supported, unrelated = make().judge_batch(  # type: ignore[operator]
        [
            (CONTEXT, "Lyon recorded 312 heatwave deaths in 2019."),
            (CONTEXT, "The football team won the league trophy."),
        ]
    )
    assert supported.score > unrelated.score
    assert not supported.abstained


def test_scores_are_what_the_judges_computed() -> None:
    """A judge's score is its own figure, never one the [0, 1] clamp of JudgeResult moved: the
    weakest sentence's cosine for the baseline, the heuristic feature for hand-set offline."""
    pairs = [
        (CONTEXT, "Lyon recorded 312 heatwave deaths in 2019."),
        (CONTEXT, "The football team won the league trophy. Admissions rose."),
        (CONTEXT, "Hospital admissions did not increase during the heatwave."),
    ]
    for result in baseline().judge_batch(pairs):
        assert result.score == min(c.score for c in result.claims)
    for result in offline().judge_batch(pairs):
        assert result.score == result.details["heuristic"]


def test_batch_equals_one_at_a_time() -> None:
    judge = offline()
    pairs = [(CONTEXT, "Lyon recorded 412 deaths."), (CONTEXT, "The mayor announced centres.")]
    assert [r.score for r in judge.judge_batch(pairs)] == [judge.judge(*p).score for p in pairs]
    assert judge.embedder.calls == 3  # type: ignore[attr-defined]


def test_negate_makes_a_rough_opposite() -> None:
    assert negate("Sea levels are rising.") == "Sea levels are not rising."
    assert negate("Ice has melted, and it will go on.") == "Ice has not melted, and it will go on."
    assert negate("Ice did not melt.") == "Ice did melt."
    assert negate("Ice didn't melt.") == "Ice did melt."
    assert negate("Ice melts.") == "It is not true that ice melts."


def test_style_signals_of_hand_made_answers() -> None:
    plain = style_signals("A b c d.", "Ice melts in spring.")
    quoted = style_signals("A b c d.", "“Ice melts in spring,” she said.")
    sweeping = style_signals("A b c d.", "Ice always melts in spring.")
    assert plain[:2] == [0.0, 0.0]
    assert quoted[0] == 1.0
    assert quoted[1] == 0.0
    assert sweeping[:2] == [0.0, 1.0]
    assert plain[2] == pytest.approx(math.log1p(4))  # four answer words
    assert plain[3] == pytest.approx(math.log1p(4))  # four context words
    assert plain[4] == pytest.approx(0.0)


def test_negation_contrast_prefers_the_side_the_context_takes() -> None:
    sentences = np.array([[1.0, 0.0], [0.0, 1.0]])
    claim, negated = np.array([0.8, 0.6]), np.array([0.6, 0.8])
    at_span, best = negation_contrast(claim, negated, sentences)
    assert at_span == pytest.approx(0.2)
    assert best == pytest.approx(0.0)
    judge = default_offline()
    answer = "Hospital admissions increased."
    agrees = judge.judge("Hospital admissions increased.", answer).details
    contradicts = judge.judge("Hospital admissions did not increase.", answer).details
    assert agrees["negation_contrast"] > contradicts["negation_contrast"]


def test_gate_gives_short_and_long_contexts_their_own_weights() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = gate(x, np.log1p(np.array([5.0, 500.0])))
    assert out.tolist() == [[1.0, 2.0, 0.0, 0.0, 0.0], [3.0, 4.0, 3.0, 4.0, 1.0]]
    assert len(GATED_FEATURES) == 2 * len(FEATURES) + 1


def test_default_judge_is_the_combination_chosen_by_lodo() -> None:
    """The shipped default: an equal-weight combination of relation signals whose reference and
    calibration come from every shared set (``--lodo all --save-default``), its threshold too."""
    from rag_retrievers.evals.faithfulness.combination import Combination
    from rag_retrievers.evals.faithfulness.pairsets import PAIR_SETS

    judge = default_offline()
    assert isinstance(judge.weights, Combination)
    assert set(judge.weights.fitted_on["sets"]) == set(PAIR_SETS)
    assert set(judge.weights.features) <= set(SIGNALS)
    assert not set(judge.weights.features) & set(STYLE_FEATURES)  # never the answer's style
    assert judge.default_threshold == judge.weights.threshold
    assert DEFAULT_WEIGHTS.is_file()
    supported = judge.judge(CONTEXT, "Lyon recorded 312 heatwave deaths in 2019.")
    unrelated = judge.judge(CONTEXT, "The football team won the league trophy.")
    assert supported.score > unrelated.score + 0.2
    assert set(supported.details) == set(SIGNALS)
    assert "equal-weight quantile average" in judge.describe()
    hand_set = offline()
    assert hand_set.weights is None
    assert "hand-set" in hand_set.describe()


def test_the_former_learned_default_still_loads() -> None:
    """weights/offline-learned.json: the learned combination that was the default before the
    leave-one-dataset-out selection, kept so its figures can be rerun."""
    judge = offline(weights=DEFAULT_WEIGHTS.parent / "offline-learned.json")
    assert isinstance(judge.weights, LogisticWeights)
    assert judge.weights.features == GATED_FEATURES
    assert "learned combination" in judge.describe()
    supported = judge.judge(CONTEXT, "Lyon recorded 312 heatwave deaths in 2019.")
    unrelated = judge.judge(CONTEXT, "The football team won the league trophy.")
    assert supported.score > unrelated.score


def test_old_weights_are_refused_with_a_hint(tmp_path: Path) -> None:
    old = LogisticWeights(("a",), (0.0,), (1.0,), (1.0,), 0.0)
    old.save(tmp_path / "old.json")
    with pytest.raises(InvalidInputError, match="fit new ones"):
        OfflineJudge(weights=tmp_path / "old.json")


def test_baseline_is_min_over_answer_sentences() -> None:
    judge = baseline()
    result = judge.judge(CONTEXT, "Hospital admissions increased during the heatwave. Zebra xyz.")
    assert result.claims[0].score == pytest.approx(1.0)
    assert result.score == pytest.approx(result.claims[1].score)
    assert result.score < 0.3


def test_registry_lists_valid_names() -> None:
    assert {"baseline", "offline", "nli", "llm"} <= set(judge_names())
    with pytest.raises(UnknownNameError, match=r"valid names: .*baseline.*offline"):
        create_judge("oracle")


def test_judge_result_clips_and_refuses_nan() -> None:
    assert JudgeResult(1.5).score == 1.0
    with pytest.raises(InvalidInputError):
        JudgeResult(float("nan"))


# -- AUROC, balanced accuracy, reliability ---------------------------------------------------


def test_auroc_hand_computed_with_ties() -> None:
    # positives 0.8, 0.4, 0.4; negatives 0.4, 0.1: pairs won 1+1 / 0.5+1 / 0.5+1 = 5 of 6
    y = [1, 1, 1, 0, 0]
    s = [0.8, 0.4, 0.4, 0.4, 0.1]
    assert auroc_mann_whitney(y, s) == pytest.approx(5 / 6)
    assert auroc(y, s) == pytest.approx(5 / 6)
    assert auroc_mann_whitney([1, 0], [0.2, 0.9]) == 0.0
    assert math.isnan(auroc_mann_whitney([1, 1], [0.2, 0.9]))


def test_mann_whitney_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    assert auroc_mann_whitney(y, s) == pytest.approx(metrics.roc_auc_score(y, s))


def test_balanced_accuracy_and_best_threshold() -> None:
    y = [1, 1, 0, 0, 0]
    s = [0.9, 0.3, 0.6, 0.2, 0.1]
    # at 0.5: TPR 1/2, TNR 2/3
    assert balanced_accuracy(y, s, 0.5) == pytest.approx((0.5 + 2 / 3) / 2)
    threshold, ba = best_threshold(y, s)
    assert threshold == pytest.approx(0.3)
    assert ba == pytest.approx((1.0 + 2 / 3) / 2)


def test_reliability_table() -> None:
    table = reliability_table([1, 0, 1, 1], [0.05, 0.15, 0.95, 1.0], bins=10)
    assert [(b.low, b.count, b.fraction_positive) for b in table] == [
        (0.0, 1, 1.0),
        (pytest.approx(0.1), 1, 0.0),
        (pytest.approx(0.9), 2, 1.0),
    ]


def test_views() -> None:
    mask, y = view_labels([1, 0, None, 1], "supported vs not")
    assert mask.tolist() == [True] * 4
    assert y.tolist() == [1, 0, 0, 1]
    mask, y = view_labels([1, 0, None, 1], "supported vs contradicted")
    assert mask.tolist() == [True, True, False, True]
    assert y.tolist() == [1, 0, 1]


# -- the split rule and the learned combination ---------------------------------------------


def test_group_folds_never_split_a_claim() -> None:
    rng = np.random.default_rng(3)
    groups = [f"claim-{int(g)}" for g in rng.integers(0, 40, 300)]
    folds = group_folds(groups, 5)
    for g in set(groups):
        assert len({int(f) for f, h in zip(folds, groups, strict=True) if h == g}) == 1
    assert set(folds.tolist()) == set(range(5))
    assert folds.tolist() == group_folds(groups, 5).tolist()
    with pytest.raises(InvalidInputError):
        group_folds(["a", "b"], 3)


def test_logistic_fit_learns_the_signal_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] + 0.1 * rng.normal(size=400) > 0).astype(int)
    w = fit_logistic(x, y, ("signal", "noise"), l2=1.0)
    assert abs(w.coef[0]) > 5 * abs(w.coef[1])
    assert auroc(y, w.predict(x)) > 0.95
    w.save(tmp_path / "w.json", source="unit test")
    again = LogisticWeights.load(tmp_path / "w.json")
    assert again.fitted_on == {"source": "unit test"}
    assert np.allclose(again.predict(x), w.predict(x))
    (tmp_path / "bad.json").write_text('{"format": 99}')
    with pytest.raises(InvalidInputError, match="format"):
        LogisticWeights.load(tmp_path / "bad.json")


def _labelled(n_claims: int = 12) -> list[LabelledPair]:
    pairs = []
    for i in range(n_claims):
        claim = f"Site {i} recorded {100 + i} cases in 2019."
        for j, (context, label) in enumerate(
            [
                (f"Site {i} recorded {100 + i} cases in 2019.", 1),
                (f"Site {i} recorded {900 + i} cases in 2019.", 0),
                ("The weather was mild that spring.", None),
            ]
        ):
            pairs.append(LabelledPair(f"{i}-{j}", context, claim, label, claim))
    return pairs


def test_cross_validation_never_trains_on_the_test_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    import rag_retrievers.evals.faithfulness.offline as offline_module

    pairs = _labelled()
    seen: list[np.ndarray] = []
    real_fit = offline_module.fit_logistic

    def spy(x: np.ndarray, y: np.ndarray, features: object, **kw: object) -> LogisticWeights:
        seen.append(x.copy())
        return real_fit(x, y, features, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(offline_module, "fit_logistic", spy)
    judge = offline()
    results = judge.cross_validate(pairs, folds=3)
    assert len(seen) == 3
    folds = group_folds([p.group for p in pairs], 3)
    assert sorted(len(x) for x in seen) == sorted(int((folds != f).sum()) for f in range(3))
    y = [int(p.label == 1) for p in pairs]
    assert auroc(y, [r.score for r in results]) > 0.9


def test_fitted_weights_drive_the_judge(tmp_path: Path) -> None:
    judge = offline()
    weights = judge.fit_pairs(_labelled())
    assert weights.features == GATED_FEATURES
    weights.save(tmp_path / "w.json", source="synthetic")
    learned = offline(weights=tmp_path / "w.json")
    good = learned.judge("Site 3 recorded 103 cases in 2019.", "Site 3 recorded 103 cases.")
    bad = learned.judge("Site 3 recorded 903 cases in 2019.", "Site 3 recorded 103 cases.")
    assert good.score > bad.score
    assert "fitted on synthetic" in learned.describe()


def test_token_alignment_sees_the_one_word_the_context_lacks() -> None:
    aligner = BagOfWordsAligner()
    same, novel = aligner.align(
        [
            ("Lyon had 312 deaths", "Lyon had 312 deaths"),
            ("Lyon had 312 floods", "Lyon had 312 deaths"),
        ]
    )
    assert same.tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0])
    recall, precision, _, worst, _ = novel
    assert recall == pytest.approx(0.75)
    assert precision == pytest.approx(0.75)
    assert worst == 0.0
    assert token_alignment(np.zeros((0, 4)), np.eye(4)) == [0.0] * 5


def test_token_alignment_is_cached_on_disk(tmp_path: Path) -> None:
    class Counting(BagOfWordsAligner):
        calls = 0

        def token_vectors(self, texts: Sequence[str], progress: bool | None) -> list[np.ndarray]:
            Counting.calls += 1
            return super().token_vectors(texts, progress)

    first, second = Counting(), Counting()
    first.cache_dir = second.cache_dir = tmp_path
    monkey_identity = {"fake": True}
    first.identity = second.identity = lambda: monkey_identity  # type: ignore[method-assign]
    pairs = [("a b", "a c"), ("x", "y")]
    expected = first.align(pairs)
    assert Counting.calls == 1
    assert second.align(pairs).tolist() == expected.tolist()
    assert Counting.calls == 1  # served from the shards the first aligner wrote


def _bilinear_data(n: int = 400) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(3)
    u = rng.standard_normal((n, 6))
    v = rng.standard_normal((n, 6))
    # supported when the answer's first direction agrees with the context's second
    y = (u[:, 0] * v[:, 1] > 0).astype(float)
    x = rng.standard_normal((n, 2))  # noise features
    return x, y, (u, v, np.zeros(n))


def test_learned_similarity_finds_a_bilinear_signal(tmp_path: Path) -> None:
    x, y, vectors = _bilinear_data()
    train, test = slice(0, 300), slice(300, None)
    fitted = fit_logistic(
        x[train], y[train], ["a", "b"], vectors=tuple(a[train] for a in vectors), nuclear=1.0
    )
    plain = fit_logistic(x[train], y[train], ["a", "b"])
    held_out = tuple(a[test] for a in vectors)
    assert auroc(y[test], fitted.predict(x[test], held_out)) > 0.9
    assert auroc(y[test], plain.predict(x[test])) < 0.7
    fitted.save(tmp_path / "w.json", source="synthetic")
    again = LogisticWeights.load(tmp_path / "w.json")
    assert isinstance(again.similarity, BilinearForm)
    assert again.predict(x[test], held_out) == pytest.approx(fitted.predict(x[test], held_out))
    with pytest.raises(InvalidInputError, match="pass vectors"):
        again.predict(x[test])
    with pytest.raises(InvalidInputError, match="dimensions"):
        again.predict(x[test], (held_out[0][:, :3], held_out[1], held_out[2]))


def test_a_large_nuclear_penalty_leaves_the_plain_regression() -> None:
    x, y, vectors = _bilinear_data()
    fitted = fit_logistic(x, y, ["a", "b"], vectors=vectors, nuclear=1e4)
    assert fitted.similarity is not None
    assert np.abs(fitted.similarity.logits(*vectors)).max() < 1e-6
    plain = fit_logistic(x, y, ["a", "b"])
    assert fitted.coef == pytest.approx(plain.coef, abs=1e-3)


def test_auto_penalty_is_chosen_by_cross_validation_on_the_training_pairs() -> None:
    from rag_retrievers.evals.faithfulness.learned import choose_nuclear

    x, y, vectors = _bilinear_data()
    groups = [str(i // 2) for i in range(len(y))]
    assert choose_nuclear(x, y, ["a", "b"], vectors, groups, choices=(1e4, 1.0)) == 1.0
    with pytest.raises(InvalidInputError, match="at least one"):
        choose_nuclear(x, y, ["a", "b"], vectors, groups, choices=())
    for bad in (0, -1.0, "sometimes", True):
        with pytest.raises(InvalidInputError, match="nuclear must be"):
            OfflineJudge(nuclear=bad)  # type: ignore[arg-type]


def test_bilinear_loss_gradient_matches_finite_differences() -> None:
    from rag_retrievers.evals.faithfulness.bilinear import bilinear_loss, initial_matrices

    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    base, y, long = rng.standard_normal(5), np.array([1.0, 0, 1, 0, 1]), np.array([0, 1, 0, 1, 1.0])
    theta = initial_matrices(3, 2, 2, seed=1) * 30
    value, grad = bilinear_loss(theta, base, u, v, long, y, 2, 0.3)
    eps = 1e-6
    for i in range(len(theta)):
        step = np.zeros_like(theta)
        step[i] = eps
        up = bilinear_loss(theta + step, base, u, v, long, y, 2, 0.3)[0]
        assert grad[i] == pytest.approx((up - value) / eps, abs=1e-4)
    up = bilinear_loss(theta, base + np.eye(5)[0] * eps, u, v, long, y, 2, 0.3)[0]
    assert grad[len(theta)] == pytest.approx((up - value) / eps, abs=1e-4)


def test_read_pairs_checks_every_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"context": "c", "response": "r", "label": 1}\n{"context": "c"}\n')
    with pytest.raises(InvalidInputError, match=":2: context and response"):
        read_pairs(path)
    path.write_text('{"context": "c", "response": "r", "label": 2}\n')
    with pytest.raises(InvalidInputError, match="label must be 1, 0 or null"):
        read_pairs(path)


# -- the command line ------------------------------------------------------------------------


@register_judge("test-overlap")
class OverlapJudge(FaithfulnessJudge):
    """Cheap judge for CLI tests: share of answer words found in the context."""

    def __init__(self, *, cache_dir: object = None) -> None:
        pass

    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]:
        out = []
        for context, answer in pairs:
            a = set(answer.lower().split())
            if not a:
                out.append(JudgeResult.abstain("empty answer"))
            else:
                out.append(JudgeResult(len(a & set(context.lower().split())) / len(a)))
        return out


def _write_pairs(path: Path) -> Path:
    rows = [
        ("the sky is blue", "the sky is blue", 1),
        ("the sky is blue", "the sky is red", 0),
        ("grass is green", "grass is green today", 1),
        ("grass is green", "cats sleep a lot", None),
        ("water is wet", "water is wet", 1),
        ("water is wet", "fire is wet", 0),
    ]
    with path.open("w") as f:
        for i, (c, r, y) in enumerate(rows):
            f.write(json.dumps({"id": str(i), "context": c, "response": r, "label": y}) + "\n")
    return path


def test_cli_prints_both_auroc_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = _write_pairs(tmp_path / "pairs.jsonl")
    out_file = tmp_path / "per-pair.jsonl"
    argv = ["eval", "faithfulness", "--pairs", str(pairs), "--judge", "test-overlap"]
    assert main([*argv, "--no-cache", "--output", str(out_file)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # by hand: supported scores (1, 3/4, 1); contradicted (3/4, 2/3); not enough info (0).
    # vs not: 1 beats all three twice (6), 3/4 ties one and beats two (2.5): 8.5 of 9 pairs;
    # vs contradicted: 4 + 1.5 = 5.5 of 6 pairs
    assert "AUROC (supported vs not) 0.944" in lines
    assert "AUROC (supported vs contradicted) 0.917" in lines
    assert any(
        line.startswith("balanced accuracy (supported vs not) at the best") for line in lines
    )
    assert any(
        line.startswith("balanced accuracy (supported vs not) at the default") for line in lines
    )
    assert "reliability (supported vs not), ECE" in out
    assert len(out_file.read_text().splitlines()) == 6

    assert main([*argv, "--no-cache", "--json", "--limit", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 4
    assert report["views"]["supported vs not"]["AUROC"] == pytest.approx(3.5 / 4)


def test_cli_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"context": "a b", "response": "a b", "label": 1, "dataset": "dev"},
        {"context": "a b", "response": "c d", "label": 0, "dataset": "dev"},
        {"context": "a b", "response": "a b", "label": 0, "dataset": "train"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "faithfulness", "--pairs", str(path), "--judge", "test-overlap", "--json"]
    assert main([*argv, "--subset", "dev"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 2
    assert report["views"]["supported vs not"]["AUROC"] == 1.0
    assert main([*argv, "--subset", "test"]) == 2
    assert "datasets in the file: dev, train" in capsys.readouterr().err


def test_cli_pool_trains_on_both_files_and_reports_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag_retrievers.evals.faithfulness.offline as offline_module

    monkeypatch.setattr(offline_module, "SentenceEmbedder", lambda *a, **k: BagOfWordsEmbedder())
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, pairs in ((first, _labelled(12)[:18]), (second, _labelled(12)[18:])):
        path.write_text(
            "".join(
                json.dumps({"context": p.context, "response": p.response, "label": p.label}) + "\n"
                for p in pairs
            )
        )
    argv = ["eval", "faithfulness", "--pairs", str(first), "--judge", "offline", "--no-cache"]
    assert main([*argv, "--pool", str(second), "--cv", "3", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 18
    assert report["pooled_with"] == [str(second)]
    assert report["views"]["supported vs not"]["AUROC"] > 0.9
    weights = tmp_path / "w.json"
    assert main([*argv, "--pool", str(second), "--fit", str(weights), "-q"]) == 0
    fitted = LogisticWeights.load(weights)
    assert fitted.fitted_on["pairs"] == 36
    assert str(second) in fitted.fitted_on["source"]
    assert main([*argv, "--pool", str(second)]) == 2
    assert "--pool needs --cv or --fit" in capsys.readouterr().err


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = _write_pairs(tmp_path / "pairs.jsonl")
    assert main(["eval", "faithfulness", "--pairs", str(pairs), "--judge", "nope"]) == 2
    assert "valid names: " in capsys.readouterr().err
    argv = ["eval", "faithfulness", "--pairs", str(pairs), "--judge", "test-overlap"]
    assert main([*argv, "--cv", "3"]) == 2
    assert "--fit and --cv need" in capsys.readouterr().err


# -- real model and real data ----------------------------------------------------------------


@pytest.mark.slow
def test_offline_with_minilm_on_tiny_texts(tmp_path: Path) -> None:
    judge = OfflineJudge(cache_dir=tmp_path)
    good = judge.judge(CONTEXT, "In 2019 Lyon had 312 deaths in a heatwave.")
    bad = judge.judge(CONTEXT, "In 2019 Lyon had 512 deaths in a heatwave.")
    assert good.score > bad.score
    assert list((tmp_path / "embeddings").rglob("*.npy"))
    again = OfflineJudge(cache_dir=tmp_path)
    assert again.judge(CONTEXT, "In 2019 Lyon had 312 deaths in a heatwave.").score == good.score
    assert again.embedder._encoder is None  # every vector came from the disk cache
    assert again.aligner._encoder is None  # and every token alignment


@pytest.mark.slow
def test_baseline_on_a_slice_of_climate_fever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path
) -> None:
    pairs = shared_data / "faith_climate_fever" / "pairs.jsonl"
    argv = ["eval", "faithfulness", "--pairs", str(pairs), "--limit", "300", "--json"]
    assert main([*argv, "--judge", "baseline", "--cache", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.55 < report["views"]["supported vs not"]["AUROC"] < 0.9
