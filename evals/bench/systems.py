"""The compared BM25 systems behind one small interface, registered by name in :data:`ENGINES`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any, Protocol

from rag_retrievers.errors import MissingDependencyError
from rag_retrievers.records import Document

K = 10  # hits per query, for every system


class Engine(Protocol):
    """A BM25 system built over documents; returns ranked document ids."""

    def search(self, query: str, k: int) -> list[str]: ...

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]: ...


class OursEngine:
    """:class:`rag_retrievers.BM25` with its defaults (Lucene, k1 0.9, b 0.4, stopwords, stems)."""

    def __init__(self, documents: list[Document]) -> None:
        from rag_retrievers.adapters.bm25 import BM25

        self._bm25 = BM25()
        self._bm25.add(documents, show_progress=False)

    def search(self, query: str, k: int) -> list[str]:
        return [hit.id for hit in self._bm25.search(query, k=k)]

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        return [[hit.id for hit in hits] for hits in self._bm25.search_batch(queries, k=k)]


class Bm25sEngine:
    """bm25s, numpy backend, ``method="lucene"``, k1 0.9, b 0.4, its own tokenizer with English
    stopwords and the Snowball stemmer; queries are tokenized inside the timed call."""

    def __init__(self, documents: list[Document]) -> None:
        self._bm25s, stemmer_module = _import_library("bm25s")
        self._stemmer = stemmer_module.Stemmer("english")
        self._ids = [d.id for d in documents]
        tokens = self._tokenize([d.text for d in documents], return_ids=True)
        self._model = self._bm25s.BM25(method="lucene", k1=0.9, b=0.4, backend="numpy")
        self._model.index(tokens, show_progress=False)

    def _tokenize(self, texts: list[str], *, return_ids: bool) -> Any:
        return self._bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stemmer, return_ids=return_ids, show_progress=False
        )

    def search(self, query: str, k: int) -> list[str]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        tokens = self._tokenize(queries, return_ids=False)
        rows, scores = self._model.retrieve(
            tokens, k=k, show_progress=False, n_threads=0, backend_selection="numpy"
        )
        ids = self._ids
        return [
            [ids[r] for r, s in zip(row.tolist(), srow.tolist(), strict=True) if s > 0]
            for row, srow in zip(rows, scores, strict=True)
        ]


class RankBm25Engine:
    """``rank_bm25.BM25Okapi`` (k1 0.9, b 0.4) over our Analyzer's terms; the analysis is part of
    its build and query time. It has no batch API: a batch is a loop of ``get_scores``."""

    def __init__(self, documents: list[Document]) -> None:
        from rag_retrievers.encoders.analysis import Analyzer

        (rank_bm25,) = _import_library("rank-bm25")
        self._analyzer = Analyzer()
        self._ids = [d.id for d in documents]
        self._model = rank_bm25.BM25Okapi(
            self._analyzer.analyze_many([d.text for d in documents]), k1=0.9, b=0.4
        )

    def search(self, query: str, k: int) -> list[str]:
        return self._ranked(self._analyzer.analyze(query), k)

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        return [self._ranked(terms, k) for terms in self._analyzer.analyze_many(queries)]

    def _ranked(self, terms: list[str], k: int) -> list[str]:
        from rag_retrievers.scoring.topk import top_k

        rows, _ = top_k(self._model.get_scores(terms), k)
        return [self._ids[r] for r in rows.tolist()]


ENGINES: dict[str, Callable[[list[Document]], Engine]] = {
    "ours": OursEngine,
    "bm25s": Bm25sEngine,
    "rank-bm25": RankBm25Engine,
}
SYSTEMS = tuple(ENGINES)

# the compared libraries: system name (also its package on PyPI) -> the modules it imports
_LIBRARIES = {"bm25s": ("bm25s", "Stemmer"), "rank-bm25": ("rank_bm25",)}


def check_dependencies() -> None:
    """Raise :class:`MissingDependencyError` now if a compared library is not installed."""
    for package, modules in _LIBRARIES.items():
        if any(find_spec(module) is None for module in modules):
            raise MissingDependencyError(package, "bench")


def _import_library(system: str) -> list[Any]:
    """The modules of a compared system's library; a missing one names the ``bench`` extra."""
    try:
        return [importlib.import_module(module) for module in _LIBRARIES[system]]
    except ImportError:
        raise MissingDependencyError(system, "bench") from None


def import_engine(system: str) -> None:
    """Import a system's libraries now, so the memory baseline already holds them."""
    if system in _LIBRARIES:
        _import_library(system)
    import rag_retrievers.adapters.bm25  # noqa: F401
    import scipy.sparse  # noqa: F401 - used by ours, bm25s (numpy backend imports it) and top_k
