"""BM25 with its vectors in Milvus (milvus-lite, started per test on a file in tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.slow  # a milvus-lite server per test

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from rag_retrievers.adapters.bm25 import BM25  # noqa: E402

from rag_retrievers.milvus import close_stores  # noqa: E402
from rag_retrievers.testing import RetrieverConformance  # noqa: E402


@pytest.fixture
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # not in tmp_path: the conformance tests check what a save leaves there
    uri = str(tmp_path_factory.mktemp("milvus") / "milvus.db")
    yield uri
    close_stores(uri)


class TestBM25OnMilvus(RetrieverConformance):
    @pytest.fixture(autouse=True)
    def _uri(self, milvus_uri: str) -> None:
        self.uri = milvus_uri
        self.n = 0

    def make_retriever(self) -> BM25:
        self.n += 1
        return BM25(uri=self.uri, collection=f"c{self.n}", reweight_tolerance=0.0)
