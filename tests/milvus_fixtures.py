"""milvus-lite fixtures shared by the Milvus tests: a database file per test, closed after it.

Import what a test module uses (``from milvus_fixtures import OnMilvus, milvus_uri  # noqa:
F401``); the files live outside ``tmp_path``, whose contents the conformance tests check after a
save.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag_retrievers.engines.milvus import close_stores
from rag_retrievers.testing import RetrieverConformance


@pytest.fixture
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A milvus-lite database file of this test's own."""
    uri = str(tmp_path_factory.mktemp("milvus") / "milvus.db")
    yield uri
    close_stores(uri)


class OnMilvus(RetrieverConformance):
    """The conformance tests with a fresh collection per retriever (:meth:`collection`) in a
    milvus-lite database per test (``self.uri``)."""

    @pytest.fixture(autouse=True)
    def _milvus(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        # a class fixture cannot ask for milvus_uri unless every module imports it
        self.uri = str(tmp_path_factory.mktemp("milvus") / "milvus.db")
        self.n = 0
        yield
        close_stores(self.uri)

    def collection(self) -> str:
        self.n += 1
        return f"c{self.n}"
