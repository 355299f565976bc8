"""Dense and SPLADE with their vectors in Milvus (milvus-lite on a file the test owns)."""

from __future__ import annotations

from functools import cache

import pytest

pytestmark = pytest.mark.slow  # a milvus-lite server and a model per test

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")
pytest.importorskip("sentence_transformers")

from milvus_fixtures import OnMilvus  # noqa: E402
from rag_retrievers.adapters.dense import Dense  # noqa: E402
from rag_retrievers.adapters.splade import Splade  # noqa: E402

from rag_retrievers.base import Retriever  # noqa: E402
from rag_retrievers.encoders.dense import DenseEncoder  # noqa: E402
from rag_retrievers.encoders.models import offline_names  # noqa: E402
from rag_retrievers.encoders.sparse import SpladeEncoder  # noqa: E402
from rag_retrievers.engines.milvus import SchemaMismatchError, close_stores  # noqa: E402
from rag_retrievers.engines.options import MilvusOptions  # noqa: E402
from rag_retrievers.errors import ForeignCollectionError  # noqa: E402
from rag_retrievers.testing import RetrieverConformance  # noqa: E402

if "minilm" not in offline_names("dense") or "splade-tiny" not in offline_names("sparse"):
    pytest.skip("the minilm / splade-tiny weights are not installed", allow_module_level=True)


@cache
def minilm() -> DenseEncoder:
    return DenseEncoder("minilm")


@cache
def splade_tiny() -> SpladeEncoder:
    return SpladeEncoder("splade-tiny")


class TestDenseOnMilvus(OnMilvus):
    def make_retriever(self) -> Retriever:
        # exact_search_max=0: every search goes to Milvus, not to the exact in-process path
        return Dense(
            encoder=minilm(),
            engine=MilvusOptions(self.uri, collection=self.collection()),
            exact_search_max=0,
        )


@pytest.mark.parametrize(
    "spec",
    [
        {"topic": "bio"},
        {"topic": {"$in": ["astro", "sport"]}, "year": {"$gte": 2021}},
        {"topic": {"$ne": "astro"}},
        {"tags": "y2021"},
        {"$or": [{"year": {"$lt": 2018}}, {"topic": {"$nin": ["astro", "bio", "cook"]}}]},
        {"year": {"$gt": 2019.5, "$lte": 2022}},
        {"colour": {"$ne": "red"}, "topic": "cook"},
    ],
)
def test_filters_in_milvus_equal_filters_here(
    tmp_path_factory: pytest.TempPathFactory, spec: dict[str, object]
) -> None:
    """exact_search_max=0 sends every filter to Milvus as an expression; the default filters
    the rows here, exactly. Both must give the same hits."""
    uri = str(tmp_path_factory.mktemp("milvus") / "m.db")
    docs = RetrieverConformance().documents()
    docs[0] = docs[0].model_copy(update={"metadata": {**docs[0].metadata, "colour": "red"}})
    try:
        in_milvus = Dense(
            encoder=minilm(), engine=MilvusOptions(uri, collection="a"), exact_search_max=0
        )
        here = Dense(encoder=minilm(), engine=MilvusOptions(uri, collection="b"))
        for retriever in (in_milvus, here):
            retriever.add(docs)
        for query in ["star explosion", "bread and yeast", "tennis set"]:
            expected = here.search(query, k=12, filter=spec)
            assert expected
            got = in_milvus.search(query, k=12, filter=spec)
            assert [(h.id, h.rank) for h in got] == [(h.id, h.rank) for h in expected]
    finally:
        close_stores(uri)


class TestSpladeOnMilvus(OnMilvus):
    # a query encoded in a padded batch differs from itself encoded alone in the last float32
    # digits, and Milvus sums the products in its own order: a small score (0.185) moved by 2e-6
    score_rel_tolerance = 1e-4

    def make_retriever(self) -> Retriever:
        return Splade(
            encoder=splade_tiny(), engine=MilvusOptions(self.uri, collection=self.collection())
        )


def test_another_model_is_refused_on_an_existing_collection(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    uri = str(tmp_path_factory.mktemp("milvus") / "m.db")
    try:
        Dense(encoder=minilm(), engine=MilvusOptions(uri, collection="docs")).add(
            RetrieverConformance().documents()[:3]
        )
        close_stores(uri)  # a new process, as far as the store is concerned
        other = DenseEncoder("minilm", normalize=False)  # same dimension, other vectors
        with pytest.raises(SchemaMismatchError, match="differs in identity, metric"):
            Dense(encoder=other, engine=MilvusOptions(uri, collection="docs"))
        with pytest.raises(ForeignCollectionError, match="already holds 3 rows"):
            Dense(encoder=minilm(), engine=MilvusOptions(uri, collection="docs"))
        with pytest.raises(SchemaMismatchError, match=r"vector fields \['dense'\], not 'splade'"):
            Splade(encoder=splade_tiny(), engine=MilvusOptions(uri, collection="docs"))
        fresh = Dense(
            encoder=minilm(), engine=MilvusOptions(uri, collection="docs", overwrite=True)
        )
        assert len(fresh) == 0
        assert fresh.search("anything", k=3) == []
    finally:
        close_stores(uri)
