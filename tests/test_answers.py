"""Answer and context metrics (evals/answers.py) on hand-made examples, values computed by hand."""

import math

import pytest
from rag_retrievers.evals.answers import (
    abstained_correctly,
    answer_decision,
    answer_relevance,
    containment,
    context_precision,
    context_recall,
    cosine,
    decision_accuracy,
    exact_match,
    normalize_answer,
    token_f1,
)

from rag_retrievers.errors import InvalidInputError


def test_normalisation_follows_squad() -> None:
    assert normalize_answer("  The Quick, brown FOX! ") == "quick brown fox"
    assert normalize_answer("An apple a day [1][2, 3].") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # "the" only as a whole word


def test_exact_match_takes_the_best_gold() -> None:
    assert exact_match("The Nile.", ["Amazon", "nile"]) == 1.0
    assert exact_match("The Nile river", "Nile") == 0.0


def test_token_f1_by_hand() -> None:
    # prediction: paris, france (2 tokens); gold: paris (1): P = 1/2, R = 1, F1 = 2/3
    assert token_f1("Paris, France", "Paris") == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: common 2 of 3 each way, P = R = 2/3
    assert token_f1("x y y", "y y z") == pytest.approx(2 / 3)
    assert token_f1("nothing shared", "other words") == 0.0
    assert token_f1("", "") == 1.0  # both empty after normalisation
    assert token_f1("the", "Paris") == 0.0
    assert token_f1("Paris", ["Rome", "Paris"]) == 1.0


def test_containment_needs_whole_words() -> None:
    assert containment("It was played in Tampa, Florida [1].", "Tampa, Florida") == 1.0
    assert containment("Parisian cafes", "Paris") == 0.0
    assert containment("anything", ["", "thing"]) == 0.0  # an empty gold never matches


def test_decision_is_read_from_the_opening_word() -> None:
    assert answer_decision("Yes, it does [1].") == "yes"
    assert answer_decision("The answer is: no.") == "no"
    assert answer_decision("Maybe; the evidence is mixed.") == "maybe"
    assert answer_decision("It depends, so maybe yes.") == "maybe"  # first of the words
    assert answer_decision("not found in the documents") is None
    assert answer_decision("Nobody knows") is None  # "no" must be a whole word
    assert decision_accuracy("No, it does not.", "no") == 1.0
    assert decision_accuracy("not found in the documents", "yes") == 0.0
    with pytest.raises(InvalidInputError, match="yes"):
        decision_accuracy("Yes", "perhaps")


def test_context_precision_and_recall_by_hand() -> None:
    shown, relevant = ["d1", "d2", "d3", "d4"], {"d2", "d4", "d9"}
    assert context_precision(shown, relevant) == 0.5
    assert context_recall(shown, relevant) == pytest.approx(2 / 3)
    assert context_precision([], relevant) is None
    assert context_recall(shown, set()) is None


def test_cosine_and_answer_relevance() -> None:
    assert cosine([3.0, 4.0], [3.0, 4.0]) == pytest.approx(1.0)
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    assert answer_relevance([1.0, 0.0], [-1.0, 0.0]) == 0.0  # clipped, never negative
    assert answer_relevance([1.0, 1.0], [1.0, 0.0]) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(InvalidInputError, match="one length"):
        cosine([1.0], [1.0, 2.0])


def test_abstained_correctly_applies_only_when_the_context_lacks_the_answer() -> None:
    assert abstained_correctly(True, context_has_answer=False) == 1.0
    assert abstained_correctly(False, context_has_answer=False) == 0.0
    assert abstained_correctly(True, context_has_answer=True) is None


def test_bad_input_is_named() -> None:
    with pytest.raises(InvalidInputError, match="gold answers"):
        exact_match("x", [])
    with pytest.raises(InvalidInputError, match="must be a str"):
        token_f1(None, "x")  # type: ignore[arg-type]
