"""Hybrid: conformance, fusion variants, member failures and timeouts, persistence, value
semantics."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from rag_retrievers.adapters.hybrid import (
    Hybrid,
    MemberError,
    MemberFailureWarning,
    MemberTimeoutError,
)

from rag_retrievers import BM25, Document, Hit, Retriever, UnknownNameError, create_retriever
from rag_retrievers.errors import FilterError, InvalidInputError
from rag_retrievers.records import FusedHit
from rag_retrievers.testing import RetrieverConformance


class TestHybridRRFConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Hybrid([BM25(), BM25(variant="okapi")])


class TestHybridCombMNZConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Hybrid([BM25(), BM25(variant="okapi")], fusion="combmnz", normalization="z-score")


class TestHybridConvexConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Hybrid(
            {"lucene": BM25(), "okapi": BM25(variant="okapi")}, fusion="convex", weights=[0.7, 0.3]
        )


class Slow(BM25):
    """A BM25 whose searches take ``delay`` seconds (or raise ``error``)."""

    def __init__(self, delay: float = 0.0, error: Exception | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.delay, self.error = delay, error

    def _search_batch(self, queries, k, filter):  # type: ignore[no-untyped-def]
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return super()._search_batch(queries, k, filter)


def docs() -> list[Document]:
    return [
        Document(id="a", text="sparse retrieval with BM25 weights", metadata={"lang": "en"}),
        Document(id="b", text="dense retrieval with embeddings", metadata={"lang": "en"}),
        Document(id="c", text="late interaction over token embeddings", metadata={"lang": "de"}),
        Document(id="d", text="rank fusion of many retrievers", metadata={"lang": "de"}),
    ]


def test_fused_hits_carry_member_ranks_and_scores() -> None:
    lucene, okapi = BM25(), BM25(variant="okapi")
    hybrid = Hybrid([lucene, okapi])
    hybrid.add(docs())
    hits = hybrid.search("retrieval embeddings", k=4)
    assert all(isinstance(h, FusedHit) and isinstance(h, Hit) for h in hits)
    assert {h.source for h in hits} == {"hybrid"}
    by_member = {
        "bm25-1": lucene.search("retrieval embeddings", k=10),
        "bm25-2": okapi.search("retrieval embeddings", k=10),
    }
    for hit in hits:
        for name, member_hits in by_member.items():
            match = [h for h in member_hits if h.id == hit.id]
            if match:
                assert hit.members[name].rank == match[0].rank
                assert hit.members[name].score == pytest.approx(match[0].score)
        # RRF k=60 from the member ranks
        assert hit.score == pytest.approx(sum(1 / (60 + m.rank) for m in hit.members.values()))
    dumped = hits[0].model_dump()
    assert set(dumped) >= {"id", "score", "rank", "document", "source", "members", "failed"}
    assert hits[0].to_langchain().metadata["retriever"] == "hybrid"


def test_add_and_delete_fan_out_and_filters_pass_through() -> None:
    a, b = BM25(), BM25(variant="okapi")
    hybrid = Hybrid([a, b])
    hybrid.add(docs())
    assert len(a) == len(b) == len(hybrid) == 4
    assert hybrid.delete(["a", "zzz"]) == 1
    assert len(a) == len(b) == len(hybrid) == 3
    hits = hybrid.search("embeddings retrieval", k=5, filter={"lang": "de"})
    assert {h.id for h in hits} == {"c", "d"}  # "retrievers" stems like "retrieval"


def test_a_failing_member_raises_naming_it() -> None:
    hybrid = Hybrid([BM25(), Slow(error=RuntimeError("index offline"))], names=["good", "bad"])
    hybrid.add(docs())
    with pytest.raises(MemberError, match=r"'bad'.*index offline") as info:
        hybrid.search("retrieval", k=2)
    assert info.value.member == "bad"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_skip_fuses_the_others_and_marks_the_hits() -> None:
    hybrid = Hybrid(
        [BM25(), Slow(error=RuntimeError("index offline"))], names=["good", "bad"], on_error="skip"
    )
    hybrid.add(docs())
    with pytest.warns(MemberFailureWarning, match="bad"):
        hits = hybrid.search("retrieval", k=2)
    assert hits
    assert all(h.failed == ("bad",) and set(h.members) == {"good"} for h in hits)


def test_every_member_failing_fails_even_with_skip() -> None:
    hybrid = Hybrid([Slow(error=RuntimeError("x")), Slow(error=OSError("y"))], on_error="skip")
    hybrid.add(docs())
    with pytest.raises(MemberError, match="every member failed"):
        hybrid.search("retrieval", k=2)


def test_input_errors_are_not_member_failures() -> None:
    hybrid = Hybrid([BM25(), BM25(variant="okapi")], on_error="skip")
    hybrid.add(docs())
    with pytest.raises(FilterError, match="colour"):
        hybrid.search("retrieval", k=2, filter={"colour": "red"})


def test_members_run_concurrently() -> None:
    hybrid = Hybrid([Slow(delay=0.3), Slow(delay=0.3), Slow(delay=0.3)])
    hybrid.add(docs())
    began = time.perf_counter()
    hybrid.search("retrieval", k=2)
    assert time.perf_counter() - began < 0.75  # sequentially: 0.9 s


def test_a_slow_member_times_out() -> None:
    slow = Hybrid([BM25(), Slow(delay=1.0)], names=["fast", "slow"], timeout=0.1)
    slow.add(docs())
    began = time.perf_counter()
    with pytest.raises(MemberTimeoutError, match=r"'slow'.*timeout=0\.1"):
        slow.search("retrieval", k=2)
    assert time.perf_counter() - began < 0.6
    skip = Hybrid([BM25(), Slow(delay=1.0)], names=["fast", "slow"], timeout=0.1, on_error="skip")
    skip.add(docs())
    with pytest.warns(MemberFailureWarning, match="slow"):
        hits = skip.search("retrieval", k=2)
    assert hits
    assert hits[0].failed == ("slow",)


def test_a_failing_add_names_the_member() -> None:
    class BadAdd(BM25):
        def _add(self, documents: list[Document]) -> None:
            raise OSError("disk full")

    hybrid = Hybrid([BM25(), BadAdd()], names=["ok", "broken"])
    with pytest.raises(MemberError, match=r"add failed in member 'broken'.*disk full"):
        hybrid.add(docs())


def test_weights_of_zero_skip_a_member() -> None:
    hybrid = Hybrid([BM25(), Slow(error=RuntimeError("never asked"))], weights=[1.0, 0.0])
    hybrid.add(docs())
    assert hybrid.search("retrieval", k=2)


def test_repr_reads_as_construction_and_equality_is_by_value() -> None:
    hybrid = Hybrid([BM25(), BM25(variant="okapi")], fusion="rrf", k_rrf=30)
    text = repr(hybrid)
    assert text == "Hybrid([BM25(), BM25(variant='okapi')], k_rrf=30)"  # only what differs
    namespace = {"Hybrid": Hybrid, "BM25": BM25}
    rebuilt = eval(text, namespace)  # the repr is the construction
    assert rebuilt == hybrid
    assert hash(rebuilt) == hash(hybrid)
    assert hybrid != Hybrid([BM25(), BM25(variant="okapi")], fusion="rrf", k_rrf=60)
    assert hybrid != Hybrid([BM25(), BM25()], fusion="rrf", k_rrf=30)
    assert create_retriever("hybrid", **hybrid.config()) == hybrid


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fusion": "borda"}, UnknownNameError, "combmnz, combsum, convex, rrf"),
        ({"normalization": "l2"}, UnknownNameError, "min-max, none, z-score"),
        ({"weights": [1.0]}, InvalidInputError, "one number per member"),
        ({"weights": [-1.0, 1.0]}, InvalidInputError, ">= 0"),
        ({"weights": [0.0, 0.0]}, InvalidInputError, "> 0"),
        ({"fusion": "convex", "weights": [0.5, 0.6]}, InvalidInputError, "sum to 1"),
        ({"depth": 0}, InvalidInputError, "depth"),
        ({"on_error": "ignore"}, InvalidInputError, "on_error"),
        ({"timeout": -1}, InvalidInputError, "timeout"),
        ({"k_rrf": -1}, InvalidInputError, "k_rrf"),
    ],
)
def test_bad_options(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Hybrid([BM25(), BM25(variant="okapi")], **kwargs)


def test_bad_members() -> None:
    with pytest.raises(InvalidInputError, match="at least one"):
        Hybrid([])
    bm25 = BM25()
    with pytest.raises(InvalidInputError, match="same retriever object"):
        Hybrid([bm25, bm25])
    with pytest.raises(InvalidInputError, match="retrievers"):
        Hybrid([42])  # type: ignore[list-item]


def test_save_keeps_members_in_one_generation(tmp_path: Path) -> None:
    hybrid = Hybrid({"lucene": BM25(), "okapi": BM25(variant="okapi")}, fusion="combsum")
    hybrid.add(docs())
    hybrid.save(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["retriever"] == "hybrid"
    assert [m["prefix"] for m in manifest["members"]] == ["m0.", "m1."]
    assert "m0.documents.jsonl" in manifest["files"]
    assert "m1.sparse_data.npy" in manifest["files"]
    reopened = Retriever.open(tmp_path / "c")
    assert reopened == hybrid
    assert reopened.names == ("lucene", "okapi")  # type: ignore[attr-defined]
    assert [h.id for h in reopened.search("retrieval", k=3)] == [
        h.id for h in hybrid.search("retrieval", k=3)
    ]
