"""The Milvus-backed retrievers against a real Milvus standalone server (2.3.5, started by the
``milvus_server`` fixture on 127.0.0.1): the conformance suite and the parity tests that run on
milvus-lite, and what a 2.3 server cannot do (sparse vectors, several vector fields in one
collection, hybrid_search) refused at construction, naming the server's version, with Hybrid
fusing here instead."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.milvus_server, pytest.mark.slow]

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")
pytest.importorskip("sentence_transformers")

from milvus_server import (  # noqa: E402
    MilvusServer,
    ServerCollections,
    drop_collections,
    remembering_encoder,
)
from rag_retrievers.adapters.bm25 import BM25  # noqa: E402
from rag_retrievers.adapters.colbert import ColBERT  # noqa: E402
from rag_retrievers.adapters.dense import Dense  # noqa: E402
from rag_retrievers.adapters.hybrid import Hybrid  # noqa: E402
from rag_retrievers.adapters.splade import Splade  # noqa: E402
from test_colbert import HAVE_MINILM  # noqa: E402
from test_colbert import minilm as colbert_minilm  # noqa: E402
from test_milvus_adapters import splade_tiny  # noqa: E402
from test_milvus_colbert import QUERIES as COLBERT_QUERIES  # noqa: E402
from test_milvus_colbert import SMALL_FDE  # noqa: E402
from test_milvus_colbert import corpus as colbert_corpus  # noqa: E402
from test_milvus_parity import K, corpus, queries  # noqa: E402

from rag_retrievers.base import Retriever  # noqa: E402
from rag_retrievers.encoders.dense import DenseEncoder  # noqa: E402
from rag_retrievers.engines.milvus import (  # noqa: E402
    MilvusFeatureError,
    MilvusStore,
    close_stores,
    milvus_store,
)
from rag_retrievers.engines.milvus_connection import (  # noqa: E402
    HYBRID_SEARCH,
    SHARED_COLLECTION,
    SPARSE_VECTORS,
)
from rag_retrievers.engines.options import MilvusOptions  # noqa: E402
from rag_retrievers.records import FusedHit  # noqa: E402
from rag_retrievers.scoring.fusion import reciprocal_rank_fusion  # noqa: E402
from rag_retrievers.testing import RetrieverConformance  # noqa: E402

if not HAVE_MINILM:
    pytest.skip("the minilm weights are not installed", allow_module_level=True)


@cache
def minilm() -> DenseEncoder:
    """MiniLM, each text encoded once for the whole module."""
    return remembering_encoder(DenseEncoder("minilm"))


class OnMilvusServer(RetrieverConformance):
    """The conformance tests with a fresh collection per retriever on the session's server."""

    @pytest.fixture(autouse=True)
    def _server(self, milvus_server: MilvusServer) -> Iterator[None]:
        self.names = ServerCollections(milvus_server)
        self.uri = milvus_server.uri
        yield
        self.names.drop()

    def collection(self) -> str:
        return self.names()


class TestDenseOnMilvusServer(OnMilvusServer):
    def make_retriever(self) -> Retriever:
        # exact_search_max=0: every search goes to Milvus, not to the exact in-process path
        return Dense(
            encoder=minilm(),
            engine=MilvusOptions(self.uri, collection=self.collection()),
            exact_search_max=0,
        )


class TestColBERTOnMilvusServer(OnMilvusServer):
    """Every search asks the server (mode="candidates"): 8 candidates of 12 documents from
    the MUVERA encodings, then exact MaxSim here."""

    def make_retriever(self) -> Retriever:
        return ColBERT(
            encoder=colbert_minilm(),  # type: ignore[arg-type]
            engine=MilvusOptions(self.uri, collection=self.collection()),
            mode="candidates",
            ndocs=8,
            fde=SMALL_FDE,
        )


# -- parity: the same top-10 as exact search / in-process MaxSim -------------------------------


def test_the_server_states_its_version(server_collections: ServerCollections) -> None:
    store = milvus_store(server_collections.uri, server_collections())
    assert store.version is not None
    assert store.version.startswith("v2.3.")
    for feature in (SPARSE_VECTORS, HYBRID_SEARCH, SHARED_COLLECTION):
        assert not store.supports(feature)


def test_dense_top10_equals_exact_search(server_collections: ServerCollections) -> None:
    """The server's FLAT index is exact: its top-10 is the brute-force one, with the scores
    of the vectors kept here."""
    docs = corpus()
    dense = Dense(
        encoder=minilm(),
        engine=MilvusOptions(server_collections.uri, collection=server_collections()),
        exact_search_max=0,
    )
    dense.add(docs)
    vectors = minilm().encode_documents([d.text for d in docs])
    for query in queries():
        scores = vectors @ minilm().encode_queries([query])[0]
        exact = [docs[i].id for i in np.lexsort((np.arange(len(docs)), -scores))[:K]]
        hits = dense.search(query, k=K)
        assert [h.id for h in hits] == exact, query
        by_id = dict(zip([d.id for d in docs], scores, strict=True))
        assert [h.score for h in hits] == pytest.approx([by_id[h.id] for h in hits], rel=1e-5)


@pytest.mark.parametrize(
    "spec",
    [
        {"topic": "b"},
        {"year": {"$gte": 2010}, "topic": {"$ne": "a"}},
        {"$or": [{"year": {"$lt": 2003}}, {"topic": {"$in": ["c"]}}]},
    ],
)
def test_filters_on_the_server_equal_filters_here(
    server_collections: ServerCollections, spec: dict[str, Any]
) -> None:
    """exact_search_max=0 sends the filter to the server as an expression; the default filters
    the rows here, exactly. Both give the same hits."""
    docs = corpus()
    uri = server_collections.uri
    on_server = Dense(
        encoder=minilm(),
        engine=MilvusOptions(uri, collection=server_collections()),
        exact_search_max=0,
    )
    here = Dense(encoder=minilm(), engine=MilvusOptions(uri, collection=server_collections()))
    for retriever in (on_server, here):
        retriever.add(docs)
    for query in queries()[:6]:
        expected = here.search(query, k=K, filter=spec)
        assert expected
        got = on_server.search(query, k=K, filter=spec)
        assert [(h.id, h.rank) for h in got] == [(h.id, h.rank) for h in expected]


def test_colbert_candidates_covering_the_corpus_give_in_process_maxsim(
    server_collections: ServerCollections,
) -> None:
    """ndocs >= the corpus: the server's candidates are every matching document, so the top
    10 (ids, ranks, scores) equal in-process exhaustive MaxSim, with and without a filter."""
    docs = colbert_corpus()
    here = ColBERT(encoder=colbert_minilm(), mode="exhaustive")  # type: ignore[arg-type]
    on_server = ColBERT(
        encoder=colbert_minilm(),  # type: ignore[arg-type]
        engine=MilvusOptions(server_collections.uri, collection=server_collections()),
        mode="candidates",
        ndocs=len(docs),
    )
    for retriever in (here, on_server):
        retriever.add(docs)
    for filter in (None, {"year": 2021}, {"subject": {"$in": ["bio", "code", "law"]}}):
        expected = here.search_batch(COLBERT_QUERIES, k=10, filter=filter)
        got = on_server.search_batch(COLBERT_QUERIES, k=10, filter=filter)
        for e, g in zip(expected, got, strict=True):
            assert len(e) == 10
            assert [h.id for h in g] == [h.id for h in e]
            assert [h.score for h in g] == pytest.approx([h.score for h in e], rel=1e-6)


def test_reopening_resyncs_the_server_collection(
    server_collections: ServerCollections, tmp_path: Path
) -> None:
    """A snapshot reopened onto the server replaces what the collection drifted to."""
    docs = corpus()[:40]
    options = MilvusOptions(server_collections.uri, collection=server_collections())
    dense = Dense(encoder=minilm(), engine=options, exact_search_max=0)
    dense.add(docs)
    dense.save(tmp_path / "c")
    dense.delete([d.id for d in docs[:10]])
    dense.add(corpus()[40:50])
    assert dense.milvus is not None
    assert sorted(dense.milvus.store.ids()) == sorted(d.id for d in docs[10:] + corpus()[40:50])
    close_stores(server_collections.uri)  # another process, as far as the store is concerned
    reopened = Dense.open(tmp_path / "c", engine=options)
    assert isinstance(reopened, Dense)
    assert reopened.milvus is not None
    assert sorted(reopened.milvus.store.ids()) == sorted(d.id for d in docs)
    assert reopened.milvus.store.count() == len(reopened) == len(docs)
    query = docs[3].text
    assert reopened.search(query, k=1)[0].id == docs[3].id


def test_reopening_keeps_the_collections_index(
    server_collections: ServerCollections, tmp_path: Path
) -> None:
    """A Dense on an HNSW collection reopens with options that name no index (the saved one is
    used); options naming another index are refused by the collection, naming both."""
    from rag_retrievers.engines.milvus import SchemaMismatchError
    from rag_retrievers.engines.milvus_index import MilvusIndex

    docs = corpus()[:30]
    name = server_collections()
    hnsw = MilvusIndex("HNSW", M=8, efConstruction=64, ef=32)
    dense = Dense(
        encoder=minilm(),
        engine=MilvusOptions(server_collections.uri, collection=name, index=hnsw),
        exact_search_max=0,
    )
    dense.add(docs)
    dense.save(tmp_path / "c")
    close_stores(server_collections.uri)
    plain = MilvusOptions(server_collections.uri, collection=name)
    reopened = Dense.open(tmp_path / "c", engine=plain)
    assert isinstance(reopened, Dense)
    assert reopened.milvus is not None
    assert reopened.milvus.index == hnsw
    assert reopened.search(docs[3].text, k=1)[0].id == docs[3].id
    close_stores(server_collections.uri)
    with pytest.raises(SchemaMismatchError, match=r"is indexed HNSW \(M=8, efConstruction=64\)"):
        Dense.open(tmp_path / "c", engine=MilvusOptions(plain.uri, collection=name, index="FLAT"))


# -- what Milvus 2.3 cannot do, refused when the retriever is constructed ----------------------


def _collection_exists(uri: str, name: str) -> bool:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=10)
    try:
        return bool(client.has_collection(name))
    finally:
        client.close()


@pytest.mark.parametrize("retriever", ["bm25", "splade"])
def test_sparse_retrievers_are_refused_naming_the_version(
    server_collections: ServerCollections, retriever: str
) -> None:
    name = server_collections()
    options = MilvusOptions(server_collections.uri, collection=name)
    build = {
        "bm25": lambda: BM25(engine=options),
        "splade": lambda: Splade(encoder=splade_tiny(), engine=options),
    }[retriever]
    with pytest.raises(MilvusFeatureError) as err:
        build()
    message = str(err.value)
    assert f"{retriever} (field {retriever!r}) needs sparse vectors" in message
    assert "since Milvus 2.4" in message
    assert f"the server at {server_collections.uri} is version v2.3.5" in message
    assert "keep this retriever in-process" in message
    assert not _collection_exists(server_collections.uri, name)  # nothing was created


def test_a_second_vector_field_in_one_collection_is_refused(
    server_collections: ServerCollections,
) -> None:
    """Milvus 2.3 holds one vector field per collection: retrievers sharing a collection (and
    so fusion inside Milvus, hybrid_search) are refused when the second is constructed, before
    and after the collection exists."""
    uri, name = server_collections.uri, server_collections()
    dense = Dense(encoder=minilm(), engine=MilvusOptions(uri, collection=name))
    with pytest.raises(MilvusFeatureError, match=r"several vector fields in one collection") as e:
        ColBERT(encoder=colbert_minilm(), engine=MilvusOptions(uri, collection=name))  # type: ignore[arg-type]
    assert "version v2.3.5" in str(e.value)
    assert "since Milvus 2.6" in str(e.value)
    assert "already has the vector field(s) ['dense']" in str(e.value)
    dense.add(corpus()[:5])  # the first retriever is unharmed
    close_stores(uri)  # another process: the collection now exists with its one field
    with pytest.raises(MilvusFeatureError, match=r"already has the vector field\(s\) \['dense'\]"):
        ColBERT(encoder=colbert_minilm(), engine=MilvusOptions(uri, collection=name))  # type: ignore[arg-type]


def test_hybrid_fuses_here_on_a_server_without_sparse_vectors(
    server_collections: ServerCollections, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the server cannot hold stays in-process: BM25 here, Dense and ColBERT each in a
    collection of their own on the server. The Hybrid searches its members and fuses here (RRF
    of their rankings); Milvus's hybrid_search is never asked."""
    uri = server_collections.uri
    docs = colbert_corpus()
    bm25 = BM25()
    dense = Dense(
        encoder=minilm(), engine=MilvusOptions(uri, collection=server_collections()),
        exact_search_max=0,
    )  # fmt: skip
    colbert = ColBERT(
        encoder=colbert_minilm(),  # type: ignore[arg-type]
        engine=MilvusOptions(uri, collection=server_collections()),
        mode="candidates",
        ndocs=len(docs),
        fde=SMALL_FDE,
    )
    members = [bm25, dense, colbert]
    hybrid = Hybrid(members, depth=30)
    hybrid.add(docs)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("hybrid_search was called")

    monkeypatch.setattr(MilvusStore, "hybrid_search", refuse)
    for query in COLBERT_QUERIES:
        hits = hybrid.search(query, k=10, filter={"year": 2020})
        assert len(hits) == 10
        assert all(isinstance(h, FusedHit) and h.members for h in hits)  # fused here
        rankings = {
            name: [(h.id, h.score) for h in m.search(query, k=30, filter={"year": 2020})]
            for name, m in zip(hybrid.names, members, strict=True)
        }
        expected = reciprocal_rank_fusion(rankings, k=60)[:10]
        assert [h.id for h in hits] == [doc for doc, _ in expected], query
    # a Hybrid of members on the server alone fuses here too (two collections)
    both = Hybrid([dense, colbert], depth=30)
    assert all(h.members for h in both.search("jazz chords", k=5))


def test_drop_collections_leaves_the_server_clean(milvus_server: MilvusServer) -> None:
    """The helper the server tests clean up with (closing stores, dropping collections)."""
    name = "cleanup_check"
    store = milvus_store(milvus_server.uri, name)
    from rag_retrievers.engines.milvus import VectorField

    store.attach("v", VectorField("dense", dim=2))
    store.upsert("v", ["a"], [{}], [[1.0, 0.0]])
    assert _collection_exists(milvus_server.uri, name)
    drop_collections(milvus_server.uri, [name])
    assert not _collection_exists(milvus_server.uri, name)
