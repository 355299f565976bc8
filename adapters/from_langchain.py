"""LangChain retrievers and vector stores as our Retrievers, so they fuse with ours in Hybrid.

>>> from langchain_core.embeddings import DeterministicFakeEmbedding
>>> from langchain_core.vectorstores import InMemoryVectorStore
>>> from rag_retrievers import BM25, Document
>>> from rag_retrievers.adapters.hybrid import Hybrid
>>> store = LangChainVectorStore(InMemoryVectorStore(DeterministicFakeEmbedding(size=16)))
>>> hybrid = Hybrid({"bm25": BM25(), "store": store})
>>> hybrid.add([Document(id="a", text="BM25 ranks by term statistics"),
...             Document(id="b", text="embeddings place texts in a vector space")])
>>> hit = hybrid.search("term statistics", k=2)[0]
>>> hit.id, sorted(hit.members)
('a', ['bm25', 'store'])

- :class:`LangChainVectorStore` wraps any ``langchain_core.vectorstores.VectorStore``
  (InMemoryVectorStore, langchain-chroma's ``Chroma``, ...): ``add``/``delete`` go to the
  store, searches ask it for scored neighbours.
- :class:`LangChainRetrieverAdapter` wraps any ``langchain_core.retrievers.BaseRetriever``;
  it is read-only: ``add``/``delete`` raise :class:`UnsupportedOperationError`.

What neither can do, and says so with :class:`UnsupportedOperationError`: ``save``/``open``
(an arbitrary LangChain object has no file format we could write and restore exactly: persist
the store with its own means and wrap it again). Filters use our dialect
(:mod:`rag_retrievers.filters`) on the metadata of the documents LangChain returns: the
wrapper asks for more results until ``k`` match or the source has no more, so a selective
filter costs several calls. A wrapper cannot list the store's metadata fields, so a filter
on an unknown field matches nothing instead of raising
:class:`~rag_retrievers.errors.FilterError`.

Documents coming back from LangChain keep their id; one without an id gets
``"sha256:" + the first 16 hex digits of the SHA-256 of its text``. Metadata values our
:class:`~rag_retrievers.records.Document` cannot hold (nested dicts, objects) arrive as JSON
text.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, Self

from pydantic import ValidationError

from rag_retrievers.base import Retriever
from rag_retrievers.errors import InvalidInputError, RagRetrieversError
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.records import METADATA_SCALARS, Document, Hit

if TYPE_CHECKING:
    import os

    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.vectorstores import VectorStore

Scores = Literal["relevance", "similarity", "distance"]
SCORES = ("relevance", "similarity", "distance")
#: the most results a filtered search asks the source for before it gives up looking
MAX_FETCH = 100_000


class UnsupportedOperationError(RagRetrieversError, NotImplementedError):
    """The wrapped LangChain object cannot do this (write to a read-only retriever, save...)."""


def _qualname(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _storable(value: Any) -> Any:
    """``value`` if our Document can hold it as metadata, else its JSON text."""
    items = value if isinstance(value, list) else [value]
    if all(
        isinstance(v, METADATA_SCALARS) and not (isinstance(v, float) and not math.isfinite(v))
        for v in items
    ):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def document_from_langchain(doc: LCDocument) -> Document:
    """Our Document for one LangChain returned: its id (or a hash of its text), its text, its
    metadata with values we cannot store as JSON text."""
    doc_id = doc.id or "sha256:" + hashlib.sha256(doc.page_content.encode()).hexdigest()[:16]
    metadata = {
        key: _storable(value)
        for key, value in doc.metadata.items()
        if isinstance(key, str) and key and not key.startswith("$")
    }
    try:
        return Document(id=doc_id, text=doc.page_content, metadata=metadata)
    except ValidationError as exc:  # e.g. a non-str page_content from a broken integration
        raise InvalidInputError(f"cannot convert LangChain document {doc_id!r}: {exc}") from None


def collect(
    fetch: Callable[[int], list[tuple[Document, float]]],
    k: int,
    filter: CompiledFilter | None,
) -> list[tuple[Document, float]]:
    """The first ``k`` results of ``fetch(n)`` (best first, at most ``n``) that pass ``filter``:
    asks for ``k`` unfiltered; filtered, for four times more until ``k`` match or the source
    returns fewer than asked (it has no more)."""
    if filter is None:
        return fetch(k)[:k]
    n = max(4 * k, 20)
    while True:
        results = fetch(n)
        seen: set[str] = set()
        kept = []
        for doc, score in results:
            if doc.id not in seen and filter.matches(doc.metadata):
                seen.add(doc.id)
                kept.append((doc, score))
        if len(kept) >= k or len(results) < n or n >= MAX_FETCH:
            return kept[:k]
        n = min(4 * n, MAX_FETCH)


def ranked(results: list[tuple[Document, float]], source: str) -> list[Hit]:
    """Hits in the order given (the source's best first), duplicates of an id dropped."""
    hits: list[Hit] = []
    seen: set[str] = set()
    for doc, score in results:
        if doc.id in seen:
            continue
        seen.add(doc.id)
        hits.append(Hit(id=doc.id, score=score, rank=len(hits) + 1, document=doc, source=source))
    return hits


class _NotPersistable(Retriever):
    """What both wrappers share: no files of their own, so no save or open."""

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        self._refuse_persistence()

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> Self:
        cls._refuse_persistence()

    def _snapshot(self) -> Callable[[Path], None]:
        # called by a Hybrid's save before it writes anything: refuse there, not halfway
        self._refuse_persistence()

    def _write_data(self, folder: Path) -> None:
        self._refuse_persistence()

    @classmethod
    def _read_data(cls, folder: Path, manifest: dict[str, Any]) -> Self:
        cls._refuse_persistence()

    @classmethod
    def _refuse_persistence(cls) -> NoReturn:
        raise UnsupportedOperationError(
            f"{cls.__name__} cannot be saved or opened: it wraps a LangChain object whose "
            "state lives in that object (or its server). Persist the LangChain store with its "
            "own means (e.g. Chroma's persist_directory) and wrap it again after restarting."
        )


class LangChainVectorStore(_NotPersistable):
    """Any LangChain ``VectorStore`` as a Retriever: ``add`` replaces documents by id in the
    store (deletes the ids it already holds, then ``add_documents(..., ids=...)``), ``delete``
    deletes from it, ``search`` asks it for scored neighbours.

    ``scores`` says what the store's scores are: ``"relevance"`` (its
    ``similarity_search_with_relevance_scores``, 0..1, higher is better), ``"similarity"`` (its
    ``similarity_search_with_score``, higher is better) or ``"distance"`` (the same, lower is
    better; negated here so that higher is better). The default ``None`` uses relevance scores
    where the store defines them, else raw scores, read as similarities when they fall in the
    order the store returned them and as distances when they rise.

    ``len()`` counts the documents added through this wrapper and not deleted: a VectorStore
    has no count, so documents already in the store when it was wrapped are found by searches
    but not counted.

    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> from langchain_core.vectorstores import InMemoryVectorStore
    >>> store = LangChainVectorStore(InMemoryVectorStore(DeterministicFakeEmbedding(size=8)))
    >>> store.add([Document(id="x", text="some text")])
    >>> [(hit.id, hit.rank) for hit in store.search("some text", k=3)]
    [('x', 1)]
    """

    name: ClassVar[str] = "langchain-vectorstore"

    def __init__(self, store: VectorStore, *, scores: Scores | None = None) -> None:
        super().__init__()
        from langchain_core.vectorstores import VectorStore

        if not isinstance(store, VectorStore):
            raise InvalidInputError(
                f"store must be a langchain_core VectorStore, got {type(store).__name__}"
            )
        if scores is not None and scores not in SCORES:
            raise InvalidInputError(
                f"scores must be None or one of {', '.join(SCORES)}, got {scores!r}"
            )
        self.store = store
        self.scores: Scores | None = scores
        self._ids: set[str] = set()

    def config(self) -> dict[str, Any]:
        return {"store": _qualname(self.store), "scores": self.scores}

    def __len__(self) -> int:
        return len(self._ids)

    def _add(self, documents: list[Document]) -> None:
        ids = [d.id for d in documents]
        # stores differ on an existing id (Chroma merges the old metadata into the new, FAISS
        # refuses): deleting first makes every store replace, as add() promises
        present = self._present(ids)
        if present:
            self.store.delete(present)
        self.store.add_documents([d.to_langchain() for d in documents], ids=ids)
        self._ids.update(ids)

    def _delete(self, ids: list[str]) -> int:
        present = self._present(ids)
        if present:
            self.store.delete(present)
        self._ids.difference_update(ids)
        return len(present)

    def _present(self, ids: list[str]) -> list[str]:
        """Those of ``ids`` the store holds."""
        try:
            found = {doc.id for doc in self.store.get_by_ids(ids) if doc.id is not None}
        except NotImplementedError:  # the store cannot look ids up: trust what we added
            found = self._ids.intersection(ids)
        return [doc_id for doc_id in ids if doc_id in found]

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        return [
            ranked(collect(partial(self._scored, query), k, filter), self.name) for query in queries
        ]

    def _scored(self, query: str, n: int) -> list[tuple[Document, float]]:
        mode = self.scores
        results = None
        if mode in (None, "relevance"):
            try:
                # the protected method is the one stores override; the public one only adds a
                # score threshold and a warning for scores outside [0, 1] (cosine can be < 0)
                results = self.store._similarity_search_with_relevance_scores(query, k=n)
            except NotImplementedError:
                if mode == "relevance":
                    raise UnsupportedOperationError(
                        f"{_qualname(self.store)} defines no relevance scores; "
                        "pass scores='similarity' or scores='distance'"
                    ) from None
        if results is None:
            results = self.store.similarity_search_with_score(query, k=n)
            values = [score for _, score in results]
            rising = any(b > a for a, b in itertools.pairwise(values))
            if mode == "distance" or (mode is None and rising):
                results = [(doc, -score) for doc, score in results]
        return [(document_from_langchain(doc), float(score)) for doc, score in results]


class LangChainRetrieverAdapter(_NotPersistable):
    """Any LangChain ``BaseRetriever`` as a read-only Retriever, for example to fuse it with
    ours in :class:`~rag_retrievers.adapters.hybrid.Hybrid`.

    ``k_param`` is the ``invoke()`` keyword that sets the number of results (``"k"`` for
    vector-store retrievers; ``None`` if the retriever takes none: then it returns what it
    returns, cut to ``k``). Scores are ``1 / rank`` unless ``score_key`` names the metadata
    field that holds the retriever's own score (higher is better). ``add``, ``delete`` and
    ``len`` raise :class:`UnsupportedOperationError`: the documents live in the LangChain
    retriever and are indexed there.

    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> from langchain_core.vectorstores import InMemoryVectorStore
    >>> lc_store = InMemoryVectorStore(DeterministicFakeEmbedding(size=8))
    >>> _ = lc_store.add_texts(["some text"], ids=["x"])
    >>> wrapped = LangChainRetrieverAdapter(lc_store.as_retriever())
    >>> [(hit.id, hit.score) for hit in wrapped.search("some text", k=2)]
    [('x', 1.0)]
    """

    name: ClassVar[str] = "langchain-retriever"

    def __init__(
        self,
        retriever: BaseRetriever,
        *,
        k_param: str | None = "k",
        score_key: str | None = None,
    ) -> None:
        super().__init__()
        from langchain_core.retrievers import BaseRetriever

        if not isinstance(retriever, BaseRetriever):
            raise InvalidInputError(
                f"retriever must be a langchain_core BaseRetriever, got {type(retriever).__name__}"
            )
        for what, value in (("k_param", k_param), ("score_key", score_key)):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInputError(f"{what} must be None or a non-empty str, got {value!r}")
        self.retriever = retriever
        self.k_param = k_param
        self.score_key = score_key

    def config(self) -> dict[str, Any]:
        return {
            "retriever": _qualname(self.retriever),
            "k_param": self.k_param,
            "score_key": self.score_key,
        }

    def __len__(self) -> int:
        raise UnsupportedOperationError(
            f"{type(self).__name__} cannot count documents: a LangChain BaseRetriever does "
            "not say how many it holds"
        )

    def __bool__(self) -> bool:
        return True  # not empty-by-len: len() is unknown

    def _check_documents(self, documents: list[Document]) -> None:
        # Hybrid checks every member before any member changes: a read-only member stops it
        raise UnsupportedOperationError(self._read_only("add"))

    def _add(self, documents: list[Document]) -> None:
        raise UnsupportedOperationError(self._read_only("add"))

    def _delete(self, ids: list[str]) -> int:
        raise UnsupportedOperationError(self._read_only("delete"))

    def _read_only(self, what: str) -> str:
        return (
            f"cannot {what} documents through {type(self).__name__}: a LangChain "
            f"BaseRetriever ({_qualname(self.retriever)}) is read-only; index documents in "
            "its own store, or wrap a VectorStore with LangChainVectorStore"
        )

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        return [
            ranked(collect(partial(self._scored, query), k, filter), self.name) for query in queries
        ]

    def _scored(self, query: str, n: int) -> list[tuple[Document, float]]:
        options: dict[str, Any] = {} if self.k_param is None else {self.k_param: n}
        docs = self.retriever.invoke(query, None, **options)
        results = []
        for rank, doc in enumerate(docs, 1):
            if self.score_key is None:
                score = 1.0 / rank
            else:
                value = doc.metadata.get(self.score_key)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidInputError(
                        f"score_key={self.score_key!r}: document {doc.id!r} has no numeric "
                        f"metadata[{self.score_key!r}] (got {value!r})"
                    )
                score = float(value)
            results.append((document_from_langchain(doc), score))
        if self.score_key is not None:
            # best first by the retriever's own scores; stable, so ties keep its order
            results.sort(key=lambda pair: -pair[1])
        return results
