"""BM25 with its vectors in Milvus (milvus-lite, started per test on a file in tmp_path)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # a milvus-lite server per test

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from milvus_fixtures import OnMilvus, milvus_uri  # noqa: E402, F401
from rag_retrievers.adapters.bm25 import BM25  # noqa: E402

from rag_retrievers.engines.options import MilvusOptions  # noqa: E402


class TestBM25OnMilvus(OnMilvus):
    def make_retriever(self) -> BM25:
        return BM25(
            engine=MilvusOptions(self.uri, collection=self.collection()), reweight_tolerance=0.0
        )
