"""Both directions between our retrievers and LangChain.

Ours as a LangChain BaseRetriever: per-call k and filter, async, callbacks, metadata, LCEL.
LangChain's as ours: a VectorStore and a BaseRetriever wrapped, fused with BM25 in Hybrid, and
the errors for what they cannot do.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import ConfigurableField, RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore
from lc_fixtures import HashingEmbeddings
from rag_retrievers.adapters.from_langchain import (
    LangChainRetrieverAdapter,
    LangChainVectorStore,
    UnsupportedOperationError,
)
from rag_retrievers.adapters.hybrid import Hybrid
from rag_retrievers.adapters.prf import PRF

from rag_retrievers import BM25, Document
from rag_retrievers.errors import FilterError, InvalidInputError, InvalidQueryError
from rag_retrievers.langchain_retriever import LangChainRetriever

DOCS = [
    Document(id="sn", text="A supernova is the explosion of a massive star.", metadata={"t": "a"}),
    Document(id="ns", text="A neutron star remains after the star collapses.", metadata={"t": "a"}),
    Document(id="sun", text="The Sun is a star of middle age.", metadata={"t": "b", "y": 2}),
    Document(id="bread", text="Sourdough bread rises with wild yeast.", metadata={"t": "c"}),
    Document(id="atp", text="Mitochondria make ATP for the cell.", metadata={"t": "c", "y": 1}),
]


@pytest.fixture
def bm25() -> BM25:
    bm25 = BM25()
    bm25.add(DOCS)
    return bm25


def in_memory_store() -> LangChainVectorStore:
    store = LangChainVectorStore(InMemoryVectorStore(HashingEmbeddings()))
    store.add(DOCS)
    return store


# -- ours as a LangChain retriever --------------------------------------------------------------


def test_documents_carry_id_text_metadata_score_and_rank(bm25: BM25) -> None:
    docs = bm25.as_langchain(k=3).invoke("star explosion")
    hits = bm25.search("star explosion", k=3)
    assert [d.id for d in docs] == [h.id for h in hits]
    by_id = {d.id: d for d in DOCS}
    for doc, hit in zip(docs, hits, strict=True):
        assert isinstance(doc, LCDocument)
        assert doc.page_content == by_id[hit.id].text
        assert doc.metadata == {
            **by_id[hit.id].metadata,
            "score": hit.score,
            "rank": hit.rank,
            "retriever": "bm25",
        }


def test_k_and_filter_are_defaults_that_invoke_overrides(bm25: BM25) -> None:
    retriever = bm25.as_langchain(k=1, filter={"t": "a"})
    assert [d.id for d in retriever.invoke("star")] == [
        bm25.search("star", k=1, filter={"t": "a"})[0].id
    ]
    assert {d.metadata["t"] for d in retriever.invoke("star", k=5)} == {"a"}
    assert len(retriever.invoke("star", k=5)) == 2
    assert [d.id for d in retriever.invoke("star", k=5, filter={"t": "b"})] == ["sun"]
    # filter=None in one call lifts the default filter for that call
    assert {d.id for d in retriever.invoke("star", k=5, filter=None)} == {"sn", "ns", "sun"}
    assert retriever.k == 1  # per-call values do not stick
    assert retriever.filter == {"t": "a"}


def test_k_and_filter_as_configurable_fields(bm25: BM25) -> None:
    configurable = bm25.as_langchain(k=1).configurable_fields(
        k=ConfigurableField(id="top_k"), filter=ConfigurableField(id="where")
    )
    assert len(configurable.invoke("star")) == 1
    docs = configurable.invoke("star", config={"configurable": {"top_k": 3, "where": {"y": 2}}})
    assert [d.id for d in docs] == ["sun"]
    assert len(configurable.invoke("star", config={"configurable": {"top_k": 3}})) == 3


def test_ainvoke_and_abatch_equal_invoke(bm25: BM25) -> None:
    retriever = bm25.as_langchain(k=2)

    async def run() -> tuple[list[LCDocument], list[list[LCDocument]]]:
        single = await retriever.ainvoke("star explosion", k=3, filter={"t": "a"})
        batch = await retriever.abatch(["sourdough yeast", "neutron star"])
        return single, batch

    single, batch = asyncio.run(run())
    assert single == retriever.invoke("star explosion", k=3, filter={"t": "a"})
    assert batch == retriever.batch(["sourdough yeast", "neutron star"])
    assert batch[0][0].id == "bread"


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.tags: list[str] | None = None

    def on_retriever_start(
        self, serialized: dict[str, Any], query: str, *, tags: list[str] | None = None, **kw: Any
    ) -> None:
        self.events.append(("start", query))
        self.tags = tags

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kw: Any) -> None:
        self.events.append(("end", [d.id for d in documents]))

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self.events.append(("error", type(error).__name__))


def test_callbacks_see_start_end_and_errors(bm25: BM25) -> None:
    recorder = Recorder()
    retriever = bm25.as_langchain(k=2, tags=["ours"])
    docs = retriever.invoke("sourdough yeast", config={"callbacks": [recorder], "tags": ["app"]})
    assert recorder.events == [("start", "sourdough yeast"), ("end", [d.id for d in docs])]
    assert set(recorder.tags or []) == {"ours", "app"}
    with pytest.raises(InvalidInputError):
        retriever.invoke("star", config={"callbacks": [recorder]}, k=0)
    assert recorder.events[-2:] == [("start", "star"), ("error", "InvalidInputError")]


def test_async_callbacks_see_start_and_end(bm25: BM25) -> None:
    recorder = Recorder()
    docs = asyncio.run(bm25.as_langchain().ainvoke("neutron", config={"callbacks": [recorder]}))
    assert recorder.events == [("start", "neutron"), ("end", [d.id for d in docs])]
    assert docs[0].id == "ns"


def test_fused_documents_list_member_ranks(bm25: BM25) -> None:
    other = BM25(variant="okapi", k1=1.2, b=0.75)
    hybrid = Hybrid({"lucene": bm25, "okapi": other})
    other.add(DOCS)
    docs = hybrid.as_langchain(k=3).invoke("neutron star")
    hits = hybrid.search("neutron star", k=3)
    for doc, hit in zip(docs, hits, strict=True):
        assert doc.metadata["retriever"] == "hybrid"
        assert doc.metadata["rank"] == hit.rank
        assert doc.metadata["members"] == {
            name: {"rank": m.rank, "score": m.score} for name, m in hit.members.items()
        }
    assert docs[0].metadata["members"]["lucene"]["rank"] == 1


def test_an_lcel_chain_formats_retrieved_documents(bm25: BM25) -> None:
    def numbered(docs: list[LCDocument]) -> str:
        return "\n".join(f"[{d.metadata['rank']}] {d.id}: {d.page_content}" for d in docs)

    chain = bm25.as_langchain(k=2) | RunnableLambda(numbered)
    assert chain.invoke("sourdough bread").splitlines()[0] == (
        "[1] bread: Sourdough bread rises with wild yeast."
    )


def test_retrieved_documents_go_back_into_a_retriever(bm25: BM25) -> None:
    # LangChain Documents in, LangChain Documents out: ids survive, so they index again
    copy = BM25()
    copy.add(DocumentIn.strip(d) for d in bm25.as_langchain(k=5).invoke("star"))
    assert {h.id for h in copy.search("star", k=5)} == {"sn", "ns", "sun"}


class DocumentIn:
    @staticmethod
    def strip(doc: LCDocument) -> LCDocument:
        keep = {k: v for k, v in doc.metadata.items() if k not in ("score", "rank", "retriever")}
        return LCDocument(id=doc.id, page_content=doc.page_content, metadata=keep)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"k": 0}, InvalidInputError),
        ({"k": "3"}, InvalidInputError),
        ({"filter": {"t": {"$like": "a"}}}, FilterError),
    ],
)
def test_bad_defaults_are_refused_at_construction(
    bm25: BM25, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        bm25.as_langchain(**options)


def test_bad_calls_are_refused(bm25: BM25) -> None:
    retriever = bm25.as_langchain()
    with pytest.raises(InvalidInputError, match="top_k"):
        retriever.invoke("star", top_k=2)
    with pytest.raises(InvalidQueryError):
        retriever.invoke("   ")
    with pytest.raises(FilterError, match="colour"):
        retriever.invoke("star", filter={"colour": "red"})
    with pytest.raises(InvalidInputError, match="rag_retrievers Retriever"):
        LangChainRetriever(retriever=InMemoryVectorStore(HashingEmbeddings()).as_retriever())


# -- LangChain's as ours ------------------------------------------------------------------------


def test_a_vector_store_fuses_with_bm25_in_hybrid(bm25: BM25) -> None:
    hybrid = Hybrid({"bm25": bm25, "store": in_memory_store()})
    hits = hybrid.search("neutron star collapses", k=3)
    assert hits[0].id == "ns"
    assert set(hits[0].members) == {"bm25", "store"}
    assert hits[0].members["store"].rank == 1
    assert hits[0].document == DOCS[1]
    # and the fused Hybrid goes back out to LangChain
    doc = hybrid.as_langchain(k=1).invoke("neutron star collapses")[0]
    assert doc.id == "ns"
    assert set(doc.metadata["members"]) == {"bm25", "store"}


def test_a_hybrid_adds_and_deletes_through_the_vector_store() -> None:
    lc_store = InMemoryVectorStore(HashingEmbeddings())
    hybrid = Hybrid({"bm25": BM25(), "store": LangChainVectorStore(lc_store)})
    hybrid.add(DOCS)
    assert len(lc_store.store) == len(DOCS)
    assert lc_store.get_by_ids(["sun"])[0].metadata == {"t": "b", "y": 2}
    assert hybrid.delete(["sun", "missing"]) == 1
    assert "sun" not in lc_store.store
    assert "sun" not in {h.id for h in hybrid.search("the sun is a star", k=5)}


def test_a_langchain_retriever_fuses_with_bm25(bm25: BM25) -> None:
    lc_store = InMemoryVectorStore(HashingEmbeddings())
    lc_store.add_documents([d.to_langchain() for d in DOCS])
    wrapped = LangChainRetrieverAdapter(lc_store.as_retriever())
    hits = Hybrid([bm25, wrapped]).search("sourdough yeast bread", k=2)
    assert hits[0].id == "bread"
    assert set(hits[0].members) == {"bm25", "langchain-retriever"}


def test_our_retriever_round_trips_through_langchain_with_its_scores(bm25: BM25) -> None:
    wrapped = LangChainRetrieverAdapter(bm25.as_langchain(), score_key="score")
    expected = bm25.search("star", k=3, filter={"t": "a"})
    got = wrapped.search("star", k=3, filter={"t": "a"})
    assert [(h.id, h.rank) for h in got] == [(h.id, h.rank) for h in expected]
    assert [h.score for h in got] == pytest.approx([h.score for h in expected])
    assert got[0].document is not None
    assert got[0].document.metadata["t"] == "a"
    # without score_key the scores are 1/rank
    assert [h.score for h in LangChainRetrieverAdapter(bm25.as_langchain()).search("star")] == [
        1.0,
        0.5,
        pytest.approx(1 / 3),
    ]


class FixedRetriever(BaseRetriever):
    """A LangChain retriever that returns the same documents whatever it is asked."""

    docs: list[LCDocument]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        return list(self.docs)


def test_documents_without_id_or_with_nested_metadata_are_converted() -> None:
    lc_docs = [
        LCDocument(page_content="no id here", metadata={"nested": {"a": [1, 2]}, "n": 1}),
        LCDocument(id="x", page_content="with id", metadata={"obj": Path("p"), "ok": [1, "2"]}),
    ]
    hits = LangChainRetrieverAdapter(FixedRetriever(docs=lc_docs), k_param=None).search("q", k=5)
    assert hits[0].id.startswith("sha256:")
    again = LangChainRetrieverAdapter(FixedRetriever(docs=lc_docs[:1]), k_param=None)
    assert again.search("other query")[0].id == hits[0].id  # the same text, the same id
    assert hits[0].document is not None
    assert json.loads(hits[0].document.metadata["nested"]) == {"a": [1, 2]}
    assert hits[0].document.metadata["n"] == 1
    assert hits[1].document is not None
    assert hits[1].document.metadata == {"obj": json.dumps("p"), "ok": [1, "2"]}


def test_a_fixed_size_retriever_is_cut_to_k_and_filtered() -> None:
    lc_docs = [d.to_langchain() for d in DOCS]
    wrapped = LangChainRetrieverAdapter(FixedRetriever(docs=lc_docs), k_param=None)
    assert [h.id for h in wrapped.search("anything", k=2)] == ["sn", "ns"]
    assert [h.id for h in wrapped.search("anything", k=5, filter={"t": "c"})] == ["bread", "atp"]
    assert [h.rank for h in wrapped.search("anything", k=5, filter={"t": "c"})] == [1, 2]


def test_a_read_only_retriever_refuses_writes_before_anything_changes(bm25: BM25) -> None:
    wrapped = LangChainRetrieverAdapter(FixedRetriever(docs=[]), k_param=None)
    with pytest.raises(UnsupportedOperationError, match="read-only"):
        wrapped.add(DOCS[:1])
    with pytest.raises(UnsupportedOperationError, match="read-only"):
        wrapped.delete(["sn"])
    with pytest.raises(UnsupportedOperationError, match="count"):
        len(wrapped)
    assert wrapped  # truthy although len() is unknown
    hybrid = Hybrid([bm25, wrapped])
    new = Document(id="new", text="Glaciers carve valleys.")
    with pytest.raises(UnsupportedOperationError, match="read-only"):
        hybrid.add([new])
    assert len(bm25) == len(DOCS)  # the BM25 member did not get it either
    assert bm25.search("glaciers valleys", k=1) == []


def test_wrappers_cannot_be_saved_and_say_why(bm25: BM25, tmp_path: Path) -> None:
    store = in_memory_store()
    with pytest.raises(UnsupportedOperationError, match="Persist the LangChain store"):
        store.save(tmp_path / "c")
    with pytest.raises(UnsupportedOperationError):
        LangChainVectorStore.open(tmp_path / "c")
    with pytest.raises(UnsupportedOperationError):
        Hybrid([bm25, store]).save(tmp_path / "h")
    assert list(tmp_path.iterdir()) == []  # refused before writing anything


class DistanceStore(InMemoryVectorStore):
    """Scores are cosine distances (lower is better) and no relevance function, like many
    integrations."""

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        return [(d, 1.0 - s) for d, s in super().similarity_search_with_score(query, k, **kwargs)]


@pytest.mark.parametrize("scores", [None, "distance"])
def test_distances_become_scores_that_fall_with_rank(scores: Any) -> None:
    store = LangChainVectorStore(DistanceStore(HashingEmbeddings()), scores=scores)
    store.add(DOCS)
    hits = store.search("neutron star collapses", k=5)
    assert hits[0].id == "ns"
    embeddings = HashingEmbeddings()
    query = embeddings.embed_query("neutron star collapses")
    cosine = sum(a * b for a, b in zip(query, embeddings.embed_query(DOCS[1].text), strict=True))
    assert hits[0].score == pytest.approx(-(1 - cosine))  # the distance, negated
    values = [h.score for h in hits]
    assert values == sorted(values, reverse=True)
    assert all(v <= 0 for v in values)


def test_relevance_scores_are_refused_when_the_store_has_none() -> None:
    store = LangChainVectorStore(InMemoryVectorStore(HashingEmbeddings()), scores="relevance")
    store.add(DOCS)
    with pytest.raises(UnsupportedOperationError, match="scores='similarity'"):
        store.search("star", k=2)
    similarity = LangChainVectorStore(store.store, scores="similarity").search("star", k=2)
    assert similarity[0].score > similarity[1].score > 0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LangChainVectorStore(BM25()), "VectorStore"),  # type: ignore[arg-type]
        (lambda: LangChainRetrieverAdapter(BM25()), "BaseRetriever"),  # type: ignore[arg-type]
        (
            lambda: LangChainVectorStore(InMemoryVectorStore(HashingEmbeddings()), scores="cos"),
            "scores",
        ),
        (lambda: LangChainRetrieverAdapter(FixedRetriever(docs=[]), k_param=""), "k_param"),
    ],
)
def test_bad_wrapper_arguments_are_refused(make: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        make()


def test_a_missing_score_key_is_reported() -> None:
    wrapped = LangChainRetrieverAdapter(
        FixedRetriever(docs=[LCDocument(id="a", page_content="x")]), k_param=None, score_key="s"
    )
    with pytest.raises(InvalidInputError, match="score_key='s'"):
        wrapped.search("q")


def test_wrappers_compose_with_prf_and_print_as_built(bm25: BM25) -> None:
    store = in_memory_store()
    assert repr(store) == (
        "LangChainVectorStore(store='langchain_core.vectorstores.in_memory.InMemoryVectorStore')"
    )
    hybrid = Hybrid({"bm25": bm25, "store": store})
    hits = PRF(hybrid, method="rm3", fb_docs=2, fb_terms=5, max_df=1.0).search("supernova", k=3)
    assert hits
    assert hits[0].id == "sn"
