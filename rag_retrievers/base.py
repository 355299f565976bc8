"""The one interface every retriever implements, and the base class that does the shared work.

An adapter writes five methods: ``_add``, ``_delete``, ``_search_batch``, ``_write_data`` and
``_read_data`` (plus ``__len__`` and ``config``). The base validates input before any state
changes, batches and shows progress on large adds, serialises writers against readers, provides
async variants and owns the collection directory.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self

from rag_retrievers._rwlock import ReadWriteLock
from rag_retrievers.errors import (
    DuplicateIdError,
    ForeignCollectionError,
    InvalidInputError,
    UnknownNameError,
    check_k,
    check_query,
)
from rag_retrievers.filters import CompiledFilter, Filter, compile_filter
from rag_retrievers.records import Document, Hit
from rag_retrievers.storage import data_dir, read_manifest, save_collection

if TYPE_CHECKING:
    from langchain_core.documents import Document as LCDocument
    from tqdm.auto import tqdm

    from rag_retrievers.langchain_retriever import LangChainRetriever

PROGRESS_MIN_ITEMS = 500


class ComparedByConfig:
    """For composites (Hybrid, PRF): equal when built alike, so they can key a results table.

    Equality is by construction (``config()``, members included), not by indexed contents.
    """

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.config() == other.config())  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(repr(self))


def show_progress(requested: bool | None, n_items: int) -> bool:
    """Progress bars: on when asked, else only for large jobs on an interactive terminal."""
    if requested is not None:
        return requested
    return n_items >= PROGRESS_MIN_ITEMS and sys.stderr.isatty()


class Retriever(ABC):
    """Base class of every retriever: add documents, search them, save and reopen them.

    Subclasses are registered by name (:func:`rag_retrievers.registry.register_retriever`) and
    checked by :class:`rag_retrievers.testing.RetrieverConformance`.
    """

    name: ClassVar[str] = ""
    #: documents per locked write; searches run between batches of a large add
    add_batch_size: ClassVar[int] = 20_000

    def __init__(self) -> None:
        self._lock = ReadWriteLock()
        self.path: Path | None = None

    # -- the interface -------------------------------------------------------------------------

    def add(
        self,
        documents: Iterable[Document | dict[str, Any] | LCDocument],
        *,
        show_progress: bool | None = None,
    ) -> None:
        """Insert or replace (by id) documents. Input is checked in full before anything changes."""
        docs = [Document.coerce(d) for d in documents]
        seen: set[str] = set()
        for doc in docs:
            if doc.id in seen:
                raise DuplicateIdError(f"document id {doc.id!r} occurs twice in one add() batch")
            seen.add(doc.id)
        self._check_documents(docs)
        batches = [
            docs[i : i + self.add_batch_size] for i in range(0, len(docs), self.add_batch_size)
        ]
        progress = progress_bar(len(docs), "indexing", "doc", show_progress)
        try:
            for batch in batches:
                with self._lock.write():
                    self._add(batch)
                if progress is not None:
                    progress.update(len(batch))
        finally:
            if progress is not None:
                progress.close()

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; unknown ids are ignored. Returns how many were deleted."""
        if isinstance(ids, str):
            raise InvalidInputError("delete() takes a list of ids, got a single str")
        ids = list(dict.fromkeys(ids))
        for doc_id in ids:
            if not isinstance(doc_id, str) or not doc_id:
                raise InvalidInputError(f"document ids are non-empty strings, got {doc_id!r}")
        if not ids:
            return 0
        with self._lock.write():
            return self._delete(ids)

    def search(self, query: str, k: int = 10, filter: Filter | None = None) -> list[Hit]:
        """The ``k`` best hits for ``query``, best first, optionally only documents matching
        the metadata ``filter`` (see :mod:`rag_retrievers.filters`)."""
        return self.search_batch([query], k=k, filter=filter)[0]

    def search_batch(
        self, queries: Sequence[str], k: int = 10, filter: Filter | None = None
    ) -> list[list[Hit]]:
        """One ranked list per query, in the order of ``queries``."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InvalidInputError("search_batch() takes a list of query strings")
        queries = [check_query(q) for q in queries]
        check_k(k)
        with self._lock.read():
            compiled = self._compile_filter(filter)
            if not queries:
                return []
            return self._search_batch(queries, k, compiled)

    def search_compiled(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        """For wrappers (Hybrid, PRF): queries and ``k`` already validated, the filter already
        compiled by the wrapper."""
        with self._lock.read():
            return self._search_batch(queries, k, filter) if queries else []

    async def asearch(self, query: str, k: int = 10, filter: Filter | None = None) -> list[Hit]:
        """:meth:`search` in a worker thread, so an event loop is never blocked."""
        return await asyncio.to_thread(self.search, query, k, filter)

    async def asearch_batch(
        self, queries: Sequence[str], k: int = 10, filter: Filter | None = None
    ) -> list[list[Hit]]:
        return await asyncio.to_thread(self.search_batch, queries, k, filter)

    def as_langchain(
        self, *, k: int = 4, filter: Filter | None = None, **options: Any
    ) -> LangChainRetriever:
        """This retriever as a LangChain ``BaseRetriever`` searching it: ``k`` and ``filter``
        are defaults that ``invoke(query, k=..., filter=...)`` overrides per call; ``options``
        go to :class:`~rag_retrievers.langchain_retriever.LangChainRetriever` (``tags``,
        ``metadata``...). Scores and ranks arrive in each Document's metadata.

        >>> from rag_retrievers import BM25, Document
        >>> bm25 = BM25()
        >>> bm25.add([Document(id="1", text="BM25 weighs rare terms higher")])
        >>> [doc.id for doc in bm25.as_langchain(k=3).invoke("rare terms")]
        ['1']
        """
        from rag_retrievers.langchain_retriever import LangChainRetriever

        return LangChainRetriever(retriever=self, k=k, filter=filter, **options)

    @abstractmethod
    def __len__(self) -> int:
        """Number of documents in the collection."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON values) that rebuild an empty retriever like this one."""

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({args})"

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the collection to ``path`` (default: where it was opened or last saved).

        The write is atomic: a crash leaves the previously saved state readable.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise InvalidInputError("save() needs a path: this collection was never saved")
        with self._lock.read():
            write_data = self._snapshot()
            config, extra = self.config(), self._manifest_extra()
        # files are written and hashed outside the lock: adds, deletes and searches go on
        save_collection(
            target, retriever=self.name, config=config, write_data=write_data, extra=extra
        )
        self.path = target
        return target

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> Self:
        """Restore a saved collection; on the base class, whichever retriever saved it.

        ``options`` that are not None go to the adapter's ``_read_data``, for what a manifest
        cannot know, e.g. ``Splade.open(path, model="./copy-of-the-model", device="cuda")``
        (the adapter refuses a model that is not the one the collection was built with).
        """
        from rag_retrievers.registry import retriever_class, retriever_names

        manifest = read_manifest(path)
        try:
            saved_as = retriever_class(manifest["retriever"])
        except UnknownNameError:
            raise ForeignCollectionError(
                f"{path} was saved by retriever {manifest['retriever']!r}, which is not "
                f"registered here; registered: {', '.join(retriever_names())}"
            ) from None
        if cls is not Retriever and not issubclass(saved_as, cls):
            raise ForeignCollectionError(
                f"{path} holds a {manifest['retriever']!r} collection, not {cls.name!r}"
            )
        given = {name: value for name, value in options.items() if value is not None}
        accepted = set(inspect.signature(saved_as._read_data).parameters) - {"folder", "manifest"}
        unknown = sorted(set(given) - accepted)
        if unknown:
            raise InvalidInputError(
                f"{saved_as.__name__}.open takes no option {', '.join(unknown)}; "
                f"it takes: {', '.join(sorted(accepted)) or 'none'}"
            )
        retriever = saved_as._read_data(data_dir(path, manifest), manifest, **given)
        retriever.path = Path(path)
        return retriever  # type: ignore[return-value]

    # -- what an adapter writes ----------------------------------------------------------------

    @abstractmethod
    def _add(self, documents: list[Document]) -> None:
        """Upsert documents (ids unique within the list, already validated)."""

    @abstractmethod
    def _delete(self, ids: list[str]) -> int:
        """Delete ids that exist; return how many did."""

    @abstractmethod
    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        """Ranked hits per query; queries and ``k`` are already validated."""

    @abstractmethod
    def _write_data(self, folder: Path) -> None:
        """Write the collection's data files into ``folder`` (a fresh, empty directory)."""

    @classmethod
    @abstractmethod
    def _read_data(cls, folder: Path, manifest: dict[str, Any]) -> Self:
        """Rebuild a retriever from the files ``_write_data`` wrote and the manifest."""

    def _snapshot(self) -> Callable[[Path], None]:
        """A writer of the state as it is now, called under the read lock.

        An adapter that can copy its state cheaply overrides this so that the slow part, writing
        files, runs outside the lock. The default writes under the read lock when called.
        """

        def write(folder: Path) -> None:
            with self._lock.read():
                self._write_data(folder)

        return write

    def _metadata_fields(self) -> set[str] | None:
        """Metadata fields a filter may name; ``None`` if the adapter cannot tell."""
        return None

    def _check_documents(self, documents: list[Document]) -> None:  # noqa: B027 - optional hook
        """Adapter-specific checks of an add() batch, before any state changes."""

    def _manifest_extra(self) -> dict[str, Any]:
        """More manifest entries, e.g. ``{"model": ...}`` for retrievers with an encoder."""
        return {}

    def _compile_filter(self, filter: Filter | None) -> CompiledFilter | None:
        if filter is None:
            return None
        return compile_filter(filter, self._metadata_fields())


def progress_bar(total: int, desc: str, unit: str, requested: bool | None) -> tqdm[NoReturn] | None:
    """A tqdm bar when :func:`show_progress` says so, else ``None``."""
    if not show_progress(requested, total):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
