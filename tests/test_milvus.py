"""The Milvus store: filter expressions (pure), uri checks, errors, shared collections, BM25
vectors as avgdl drifts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from rag_retrievers.adapters.bm25 import BM25

from rag_retrievers.engines.milvus import (
    MilvusStore,
    MilvusUnavailableError,
    SchemaMismatchError,
    VectorField,
    check_uri,
    close_stores,
    filter_expression,
    milvus_store,
)
from rag_retrievers.engines.options import MilvusOptions
from rag_retrievers.errors import FilterError, InvalidInputError
from rag_retrievers.filters import compile_filter
from rag_retrievers.records import Document


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"n": 3}, '(metadata["n"] == 3 or json_contains(metadata["n"], 3))'),
        (
            {"s": {"$ne": 'a"b'}},
            '(not (exists metadata["s"]) or not (metadata["s"] == "a\\"b" or '
            'json_contains(metadata["s"], "a\\"b")))',
        ),
        (
            {"s": {"$in": ["x", "y"]}},
            '(metadata["s"] == "x" or json_contains(metadata["s"], "x") or '
            'metadata["s"] == "y" or json_contains(metadata["s"], "y"))',
        ),
        ({"y": {"$gte": 2.5, "$lt": 9}}, '(metadata["y"] >= 2.5 and metadata["y"] < 9)'),
        (
            {"$or": [{"y": {"$gt": 1}}, {"z": {"$lte": "m"}}]},
            '(metadata["y"] > 1 or metadata["z"] <= "m")',
        ),
    ],
)
def test_filters_become_exact_milvus_expressions(spec: dict[str, Any], expected: str) -> None:
    assert filter_expression(compile_filter(spec)) == (expected, True)


def test_what_milvus_cannot_state_is_left_to_a_check_here() -> None:
    # ranges over list-valued fields (ours: any element), bool and None operands
    assert filter_expression(compile_filter({"tags": {"$gt": 1}}), {"tags"}) == (None, False)
    assert filter_expression(compile_filter({"flag": True})) == (None, False)
    expr, exact = filter_expression(compile_filter({"flag": None, "y": {"$lt": 3}}))
    assert (expr, exact) == ('(metadata["y"] < 3)', False)
    # an OR with an unrestricted branch restricts nothing
    spec = {"$or": [{"flag": False}, {"y": 1}]}
    assert filter_expression(compile_filter(spec)) == (None, False)


def test_unknown_operators_stay_filter_errors() -> None:
    with pytest.raises(FilterError, match=r"\$regex"):
        compile_filter({"s": {"$regex": "a.*"}})


@pytest.mark.parametrize("uri", ["", "data/milvus", "milvus.sqlite", 5, None])
def test_bad_uris_are_refused(uri: object) -> None:
    with pytest.raises(InvalidInputError, match="uri"):
        check_uri(uri)


def test_good_uris() -> None:
    for uri in ("./x.db", "/tmp/a/b.db", "http://localhost:19530", "https://h:443"):
        assert check_uri(uri) == uri


# -- against milvus-lite and an address where nothing listens --------------------------------


@pytest.fixture
def needs_milvus() -> None:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")


@pytest.mark.usefixtures("needs_milvus")
def test_unreachable_server_is_retried_then_named() -> None:
    started = time.monotonic()
    with pytest.raises(MilvusUnavailableError, match=r"127\.0\.0\.1:9.*after 3 attempts"):
        MilvusStore("http://127.0.0.1:9", "docs", retries=2, backoff=0.05)
    assert time.monotonic() - started >= 0.05 + 0.1  # it waited between attempts


@pytest.fixture
def uri(needs_milvus: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = str(tmp_path_factory.mktemp("milvus") / "m.db")
    yield uri
    close_stores(uri)


@pytest.mark.slow
def test_fields_of_a_shared_collection_keep_each_others_values(uri: str) -> None:
    store = milvus_store(uri, "shared")
    store.attach("dense", VectorField("dense", dim=2))
    store.attach("bm25", VectorField("sparse"))
    with pytest.raises(SchemaMismatchError, match="already used"):
        store.attach("bm25", VectorField("dense", dim=2))
    store.upsert("dense", ["a", "b"], [{"t": 1}, {"t": 2}], [[1.0, 0.0], [0.0, 1.0]])
    store.upsert("bm25", ["b", "a"], [{"t": 2}, {"t": 1}], [{5: 2.0}, {5: 1.0, 7: 1.0}])
    store.upsert("dense", ["a"], [{"t": 3}], [[0.6, 0.8]])  # replaces a's vector, keeps bm25
    assert store.search("bm25", [{5: 1.0}], k=5) == [[("b", 2.0), ("a", 1.0)]]
    dense = store.search("dense", [[1.0, 0.0]], k=5, expression='metadata["t"] == 3')
    assert [(i, round(s, 5)) for i, s in dense[0]] == [("a", 0.6)]
    store.upsert("bm25", ["c"], [{}], [{7: 3.0}])  # c has no dense vector yet: a placeholder
    assert store.search("bm25", [{7: 1.0}], k=5)[0][0] == ("c", 3.0)
    assert sorted(store.ids()) == ["a", "b", "c"]
    hybrid = store.hybrid_search([("dense", [[1.0, 0.0]], 2), ("bm25", [{5: 1.0}], 2)], k=3)
    assert [i for i, _ in hybrid[0]] == ["a", "b"]  # 1/61 + 1/62 each: a tie


@pytest.mark.slow
def test_bm25_vectors_are_rewritten_when_avgdl_drifts(uri: str) -> None:
    docs = [Document(id=f"d{i}", text=" ".join(["apple"] * (i + 1) + ["pie"])) for i in range(6)]
    exact = BM25()
    lazy = BM25(
        engine=MilvusOptions(uri, collection="lazy"), reweight_tolerance=10.0
    )  # never rewrites
    eager = BM25(engine=MilvusOptions(uri, collection="eager"), reweight_tolerance=0.0)
    for retriever in (exact, lazy, eager):
        retriever.add(docs[:3])
        retriever.add(docs[3:])  # avgdl grows from 3 to 4.5
    want = [(h.id, h.score) for h in exact.search("apple pie", k=6)]
    got_eager = [(h.id, h.score) for h in eager.search("apple pie", k=6)]
    got_lazy = [(h.id, h.score) for h in lazy.search("apple pie", k=6)]
    assert [i for i, _ in got_eager] == [i for i, _ in want]
    assert [s for _, s in got_eager] == pytest.approx([s for _, s in want], rel=1e-5)
    # the first three documents keep vectors normalised with avgdl 3: their scores differ
    assert [s for _, s in got_lazy] != pytest.approx([s for _, s in want], rel=1e-5)
