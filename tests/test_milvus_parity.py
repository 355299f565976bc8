"""Parity: the same corpus in-process and in milvus-lite gives the same top-10 (exact search
settings), and Milvus's RRF (hybrid_search) gives what our client-side fusion gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # milvus-lite, MiniLM and SPLADE over a few hundred documents

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")
pytest.importorskip("sentence_transformers")

from rag_retrievers.adapters.bm25 import BM25  # noqa: E402
from rag_retrievers.adapters.dense import Dense  # noqa: E402
from rag_retrievers.adapters.hybrid import Hybrid  # noqa: E402
from rag_retrievers.adapters.splade import Splade  # noqa: E402

from rag_retrievers.base import Retriever  # noqa: E402
from rag_retrievers.encoders.dense import DenseEncoder  # noqa: E402
from rag_retrievers.encoders.models import offline_names  # noqa: E402
from rag_retrievers.encoders.sparse import SpladeEncoder  # noqa: E402
from rag_retrievers.engines.milvus import MilvusStore, close_stores  # noqa: E402
from rag_retrievers.engines.options import MilvusOptions  # noqa: E402
from rag_retrievers.filters import compile_filter  # noqa: E402
from rag_retrievers.records import Document, FusedHit  # noqa: E402
from rag_retrievers.scoring.fusion import reciprocal_rank_fusion  # noqa: E402

if "minilm" not in offline_names("dense") or "splade-tiny" not in offline_names("sparse"):
    pytest.skip("the minilm / splade-tiny weights are not installed", allow_module_level=True)

WORDS = """
star galaxy planet orbit comet telescope light redshift supernova neutron gravity moon sun
enzyme protein cell gene dna rna mitochondria energy reaction membrane virus bacteria immune
bread dough yeast flour oven sugar butter onion garlic salt pepper soup sauce recipe bake
runner marathon tennis match goal penalty coach team season race training score league
river mountain glacier valley ocean rain climate storm forest soil volcano lava earthquake
market price trade bank money credit inflation tax budget policy growth export industry
""".split()
N_DOCS = 240
K = 10


def corpus() -> list[Document]:
    rng = np.random.default_rng(7)
    weights = 1 / np.arange(1, len(WORDS) + 1)  # Zipf-like: some words common, most rare
    weights /= weights.sum()
    order = rng.permutation(len(WORDS))
    docs = []
    for i in range(N_DOCS):
        n = int(rng.integers(6, 40))
        words = [WORDS[order[j]] for j in rng.choice(len(WORDS), size=n, p=weights)]
        docs.append(
            Document(
                id=f"d{i:03d}",
                text=" ".join(words),
                metadata={"topic": "abc"[i % 3], "year": 2000 + i % 25},
            )
        )
    return docs


def queries() -> list[str]:
    rng = np.random.default_rng(11)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 5)))) for _ in range(16)]


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = str(tmp_path_factory.mktemp("milvus") / "parity.db")
    yield uri
    close_stores(uri)


@pytest.fixture(scope="module")
def encoders() -> tuple[DenseEncoder, SpladeEncoder]:
    return DenseEncoder("minilm"), SpladeEncoder("splade-tiny")


@pytest.fixture(scope="module")
def built(uri: str, encoders: tuple[DenseEncoder, SpladeEncoder]) -> dict[str, Retriever]:
    """In-process retrievers and Milvus ones; the Milvus ones share one collection."""
    dense_encoder, splade_encoder = encoders
    retrievers: dict[str, Retriever] = {
        "bm25": BM25(),
        "splade": Splade(encoder=splade_encoder),
        "dense": Dense(encoder=dense_encoder),
        "bm25@milvus": BM25(engine=MilvusOptions(uri, collection="shared")),
        "splade@milvus": Splade(
            encoder=splade_encoder, engine=MilvusOptions(uri, collection="shared")
        ),
        "dense@milvus": Dense(
            encoder=dense_encoder,
            engine=MilvusOptions(uri, collection="shared"),
            exact_search_max=0,
        ),
    }
    docs = corpus()
    for retriever in retrievers.values():
        retriever.add(docs)
    return retrievers


def ids(hits: list[Any]) -> list[str]:
    return [h.id for h in hits]


@pytest.mark.parametrize("name", ["bm25", "splade"])
def test_sparse_top10_and_scores_equal_in_process(built: dict[str, Retriever], name: str) -> None:
    here, milvus = built[name], built[f"{name}@milvus"]
    for query in queries():
        expected, got = here.search(query, k=K), milvus.search(query, k=K)
        assert expected, query
        assert ids(got) == ids(expected), query
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], rel=1e-5)


def test_dense_top10_equals_exact_search(
    built: dict[str, Retriever], encoders: tuple[DenseEncoder, SpladeEncoder]
) -> None:
    """Milvus's FLAT index is exact: its top-10 is the brute-force one. (The in-process Dense
    asks Chroma's HNSW for candidates, which is approximate: it is not the reference here.)"""
    docs = corpus()
    vectors = encoders[0].encode_documents([d.text for d in docs])
    for query in queries():
        scores = vectors @ encoders[0].encode_queries([query])[0]
        exact = [docs[i].id for i in np.lexsort((np.arange(len(docs)), -scores))[:K]]
        assert ids(built["dense@milvus"].search(query, k=K)) == exact, query


@pytest.mark.parametrize(
    "filter", [None, {"topic": "b"}, {"year": {"$gte": 2010}, "topic": {"$ne": "a"}}]
)
def test_milvus_rrf_equals_client_side_fusion(
    built: dict[str, Retriever], monkeypatch: pytest.MonkeyPatch, filter: dict[str, Any] | None
) -> None:
    """Hybrid over members of one collection fuses in Milvus (hybrid_search + RRFRanker); the
    result is our reciprocal_rank_fusion of the members' rankings as Milvus ranks them. (Milvus
    orders tied scores its own way, so a member's ranking can differ from its in-process one
    inside a tie; the sparse parity test above checks the rankings up to that.)"""
    members = [built["bm25@milvus"], built["splade@milvus"], built["dense@milvus"]]
    hybrid = Hybrid(members, fusion="rrf", depth=50)
    calls = []
    original = MilvusStore.hybrid_search

    def spy(self: MilvusStore, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MilvusStore, "hybrid_search", spy)
    compiled = None if filter is None else compile_filter(filter)
    for query in queries():
        got = hybrid.search(query, k=K, filter=filter)
        rankings = {}
        for name, member in zip(hybrid.names, members, strict=True):
            field = member.milvus  # type: ignore[attr-defined]
            expression, exact = field.expression(compiled, member._docs)  # type: ignore[attr-defined]
            assert exact
            vectors = member.milvus_queries([query])  # type: ignore[attr-defined]
            rankings[name] = field.store.search(field.name, vectors, 50, expression)[0]
        expected = reciprocal_rank_fusion(rankings, k=60)[:K]
        assert ids(got) == [doc for doc, _ in expected], query
        # Milvus sums the reciprocal ranks in float32
        assert [h.score for h in got] == pytest.approx([s for _, s in expected], rel=1e-6)
        assert all(isinstance(h, FusedHit) and h.members == {} for h in got)
        if compiled is not None:
            assert got
            assert all(h.document and compiled.matches(h.document.metadata) for h in got)
    assert len(calls) == len(queries())  # every search was fused inside Milvus


def test_members_in_separate_collections_fuse_client_side(
    built: dict[str, Retriever], uri: str
) -> None:
    """Members in two collections cannot share a hybrid_search: they are searched and fused
    here, exactly as reciprocal_rank_fusion of their own rankings."""
    other = BM25(engine=MilvusOptions(uri, collection="elsewhere"))
    other.add(corpus())
    members = [other, built["dense@milvus"]]
    split = Hybrid(members, depth=50)
    for query in queries()[:6]:
        hits = split.search(query, k=K)
        assert all(h.members for h in hits)  # fused here: each hit knows its members' ranks
        rankings = {
            name: [(h.id, h.score) for h in m.search(query, k=50)]
            for name, m in zip(split.names, members, strict=True)
        }
        assert ids(hits) == [doc for doc, _ in reciprocal_rank_fusion(rankings, k=60)[:K]]
