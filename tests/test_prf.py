"""PRF: conformance, RM3 and Rocchio weights by hand, refine(), fb_docs=0, Hybrid bases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rag_retrievers.adapters.hybrid import Hybrid
from rag_retrievers.adapters.prf import PRF

from rag_retrievers import BM25, Document, InvalidInputError, Retriever, create_retriever
from rag_retrievers.records import FusedHit
from rag_retrievers.testing import RetrieverConformance


class TestPRFRM3Conformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return PRF(BM25(), "rm3")


class TestPRFRocchioConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return PRF(BM25(), "rocchio")


class TestHybridOfPRFConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Hybrid([PRF(BM25()), BM25(variant="okapi", k1=1.2)])


class TestPRFOfHybridConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return PRF(Hybrid([BM25(), BM25(variant="okapi", k1=1.2)]), "rm3")


def tiny() -> BM25:
    bm25 = BM25()
    bm25.add(
        [
            Document(id="1", text="cat dog dog", metadata={"n": 1}),
            Document(id="2", text="cat fish", metadata={"n": 2}),
            Document(id="3", text="bird tree", metadata={"n": 3}),
            Document(id="4", text="tree tree bird", metadata={"n": 4}),
            Document(id="5", text="fish bird", metadata={"n": 5}),
        ]
    )
    return bm25


def test_rm3_weights_by_hand() -> None:
    bm25 = tiny()
    first = {h.id: h.score for h in bm25.search("cat", k=2)}
    s1, s2 = first["1"], first["2"]
    refined = PRF(bm25, "rm3", fb_docs=2, fb_terms=10, max_df=1.0).refine("cat")
    assert sorted(refined.feedback) == ["1", "2"]
    # P(t|D1): cat 1/3, dog 2/3;  P(t|D2): cat 1/2, fish 1/2
    # RM1(t) = sum_D P(t|D) * s_D, then L1-normalised (the P(t|D) sum to 1 per doc, so / (s1+s2))
    rm1 = {"cat": s1 / 3 + s2 / 2, "dog": 2 * s1 / 3, "fish": s2 / 2}
    rm1 = {t: w / (s1 + s2) for t, w in rm1.items()}
    # RM3 = 0.5 * P(t|Q) + 0.5 * RM1(t), P(cat|Q) = 1
    expected = {"cat": 0.5 + 0.5 * rm1["cat"], "dog": 0.5 * rm1["dog"], "fish": 0.5 * rm1["fish"]}
    assert refined.terms == pytest.approx(expected)
    assert refined.expansion == pytest.approx({"dog": expected["dog"], "fish": expected["fish"]})
    assert refined.original_terms == ["cat"]
    assert sum(refined.terms.values()) == pytest.approx(1.0)


def test_rm3_prunes_to_fb_terms_and_filters_frequent_terms() -> None:
    bm25 = tiny()
    # fb_terms=1: D1 keeps dog (2), D2 keeps cat (tie cat/fish broken by term); the model keeps
    # the heavier of the two, cat (D2, the shorter, scores higher), and is L1-normalised to 1:
    # nothing is left to expand with
    scores = {h.id: h.score for h in bm25.search("cat", k=2)}
    assert scores["2"] > scores["1"]
    refined = PRF(bm25, "rm3", fb_docs=2, fb_terms=1, max_df=1.0).refine("cat")
    assert refined.feedback == ["2", "1"]
    assert refined.terms == pytest.approx({"cat": 1.0})
    assert refined.expansion == {}
    # max_df 0.25 of 5 documents: only df 1 survives: dog (cat, fish in 2 documents)
    refined = PRF(bm25, "rm3", fb_docs=2, max_df=0.25).refine("cat")
    assert refined.terms == pytest.approx({"cat": 0.5, "dog": 0.5})


def test_rocchio_weights_by_hand() -> None:
    refined = PRF(tiny(), "rocchio", fb_docs=2, alpha=1.0, beta=0.5, max_df=1.0).refine("cat")
    # D1 = (cat 1, dog 2) / sqrt(5); D2 = (cat 1, fish 1) / sqrt(2); mean of the two
    r5, r2 = 5**0.5, 2**0.5
    mean = {"cat": (1 / r5 + 1 / r2) / 2, "dog": (2 / r5) / 2, "fish": (1 / r2) / 2}
    expected = {
        "cat": 1.0 + 0.5 * mean["cat"],
        "dog": 0.5 * mean["dog"],
        "fish": 0.5 * mean["fish"],
    }
    assert refined.terms == pytest.approx(expected)


def test_second_pass_finds_documents_through_expansion_terms() -> None:
    bm25 = tiny()
    prf = PRF(bm25, "rm3", fb_docs=1, max_df=1.0)
    refined = prf.refine("cat")
    assert refined.feedback == ["2"]  # "cat fish": the shorter of the two cat documents
    assert set(refined.expansion) == {"fish"}
    hits = prf.search("cat", k=5)
    assert "5" not in {h.id for h in bm25.search("cat", k=5)}
    assert "5" in {h.id for h in hits}  # "fish bird", found through the expansion term
    assert {h.source for h in hits} == {"prf"}


def test_fb_docs_zero_is_the_base() -> None:
    bm25 = tiny()
    prf = PRF(bm25, fb_docs=0)
    for query in ["cat", "bird tree", "fish"]:
        got, expected = prf.search(query, k=5), bm25.search(query, k=5)
        assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in expected]
    assert prf.refine("cat").expansion == {}


def test_filters_apply_to_both_passes() -> None:
    prf = PRF(tiny(), "rm3", fb_docs=2, max_df=1.0)
    refined = prf.refine("cat", filter={"n": {"$gte": 2}})
    assert refined.feedback == ["2"]
    assert {h.id for h in prf.search("cat", k=5, filter={"n": {"$gte": 2}})} <= {"2", "3", "4", "5"}


def test_prf_of_hybrid_refines_on_the_term_vector_member() -> None:
    hybrid = Hybrid({"lex": BM25(), "okapi": BM25(variant="okapi")})
    hybrid.add(tiny()._docs.live_documents())
    prf = PRF(hybrid, "rm3", fb_docs=2, max_df=1.0)
    refined = prf.refine("cat")
    assert refined.member == "lex"
    hits = prf.search("fish", k=5)
    assert all(isinstance(h, FusedHit) for h in hits)
    assert {h.source for h in hits} == {"prf"}


def test_a_base_without_term_or_query_vectors_is_refused() -> None:
    class Subclass(BM25):
        pass

    # BM25 and its subclasses have term vectors; a Retriever that has neither gets the error
    from rag_retrievers.adapters.prf import TermVectors

    assert isinstance(BM25(), TermVectors)
    PRF(Subclass())
    hybrid = Hybrid([PRF(BM25())])  # a PRF member exposes neither ability itself
    with pytest.raises(InvalidInputError, match=r"needs a base with term vectors.*PRF"):
        PRF(hybrid, "rm3")


def test_repr_equality_and_persistence(tmp_path: Path) -> None:
    prf = PRF(BM25(variant="okapi"), "rocchio", fb_docs=5, beta=0.5)
    text = repr(prf)
    assert text.startswith("PRF(BM25(variant='okapi'), method='rocchio'")
    assert "method='rocchio'" in text
    assert "fb_docs=5" in text
    assert eval(text, {"PRF": PRF, "BM25": BM25}) == prf
    assert prf != PRF(BM25(variant="okapi"), "rocchio", fb_docs=6, beta=0.5)
    assert create_retriever("prf", **prf.config()) == prf
    prf.add(tiny()._docs.live_documents())
    prf.save(tmp_path / "c")
    reopened = Retriever.open(tmp_path / "c")
    assert reopened == prf
    assert reopened.refine("cat") == prf.refine("cat")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "bo1"}, "rm3, rocchio"),
        ({"fb_docs": -1}, "fb_docs"),
        ({"fb_terms": 1.5}, "fb_terms"),
        ({"original_weight": 1.5}, "original_weight"),
        ({"max_df": 0}, "max_df"),
        ({"alpha": float("nan")}, "alpha"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        PRF(BM25(), **kwargs)
