"""The one interface every retriever implements, and the base class that does the shared work.

An adapter writes five methods: ``_add``, ``_delete``, ``_search_batch``, ``_write_data`` and
``_read_data`` (plus ``__len__`` and ``config``). The base validates input before any state
changes, batches and shows progress on large adds, serialises writers against readers, provides
async variants and owns the collection directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from rag_retrievers.errors import (
    CollectionError,
    CorruptCollectionError,
    DuplicateIdError,
    ForeignCollectionError,
    InvalidInputError,
    UnknownNameError,
    check_k,
    check_query,
)
from rag_retrievers.filters import CompiledFilter, Filter, compile_filter
from rag_retrievers.index.lock import ReadWriteLock
from rag_retrievers.index.storage import (
    collection_path,
    current_generation,
    data_dir,
    read_manifest,
    save_collection,
)
from rag_retrievers.progress import progress_bar
from rag_retrievers.records import Document, Hit

if TYPE_CHECKING:
    from langchain_core.documents import Document as LCDocument

    from rag_retrievers.engines.options import EngineOptions
    from rag_retrievers.langchain_retriever import LangChainRetriever

#: tries of an open that finds its generation removed by a concurrent save
_OPEN_ATTEMPTS = 20


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


class Retriever(ABC):
    """Base class of every retriever: add documents, search them, save and reopen them.

    Subclasses are registered by name (:func:`rag_retrievers.registry.register_retriever`) and
    checked by :class:`rag_retrievers.testing.RetrieverConformance`.
    """

    name: ClassVar[str] = ""
    #: the keys :meth:`config` may write: a manifest's config holding any other is refused
    config_keys: ClassVar[frozenset[str]] = frozenset()
    #: the engines whose options (``engine=``) the constructor takes; :meth:`open` takes them
    #: from its caller, never from a manifest
    engines: ClassVar[tuple[type[EngineOptions], ...]] = ()
    #: documents per locked write; searches run between batches of a large add
    add_batch_size: ClassVar[int] = 20_000

    def __init__(self) -> None:
        self._lock = ReadWriteLock()
        self.path: Path | None = None
        #: where the vectors are, as given to the constructor (``None``: in this process)
        self.engine: EngineOptions | None = None

    # -- the interface -------------------------------------------------------------------------

    def add(
        self,
        documents: Iterable[Document | dict[str, Any] | LCDocument],
        *,
        show_progress: bool | None = None,
    ) -> None:
        """Insert or replace (by id) documents. Input is checked in full before anything changes."""
        from rag_retrievers.errors import InvalidDocumentError

        if isinstance(documents, str | bytes | dict | Document) or not isinstance(
            documents, Iterable
        ):
            single = isinstance(documents, dict | Document)
            one = " (put a single document in a list)" if single else ""
            raise InvalidInputError(
                "add() takes an iterable (e.g. a list) of documents (Document, dict with id, text "
                f"and metadata, or langchain Document), got {type(documents).__name__}{one}"
            )
        docs = []
        for number, d in enumerate(documents):
            try:
                docs.append(Document.coerce(d))
            except InvalidDocumentError as exc:  # one line, naming the document by position
                message = str(exc).removeprefix("invalid document: ")
                raise InvalidDocumentError(f"document {number}: {message}") from None
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
        if isinstance(ids, bytes) or not isinstance(ids, Iterable):
            raise InvalidInputError(
                f"delete() takes an iterable (e.g. a list) of id strings, got {type(ids).__name__}"
            )
        given = list(ids)
        for doc_id in given:
            if not isinstance(doc_id, str) or not doc_id:
                got = repr(doc_id) if isinstance(doc_id, str) else type(doc_id).__name__
                raise InvalidInputError(f"document ids are non-empty strings, got {got}")
        ids = list(dict.fromkeys(given))
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
        k = check_k(k)  # a numpy integer becomes an int
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
        from pydantic import ValidationError

        from rag_retrievers.langchain_retriever import LangChainRetriever
        from rag_retrievers.records import validation_message

        check_k(k)
        try:
            return LangChainRetriever(retriever=self, k=k, filter=filter, **options)
        except ValidationError as exc:
            raise InvalidInputError(f"as_langchain(): {validation_message(exc)}") from None

    @abstractmethod
    def __len__(self) -> int:
        """Number of documents in the collection."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON values) that rebuild an empty retriever like this one."""

    def __repr__(self) -> str:
        changed = self._changed_config()
        if "engine" in changed:  # as constructed (MilvusOptions(...)), not its config form
            changed["engine"] = self.engine
        args = ", ".join(f"{key}={value!r}" for key, value in changed.items())
        return f"{type(self).__name__}({args})"

    def _changed_config(self) -> dict[str, Any]:
        """:meth:`config` less what the constructor would choose anyway: a ``repr`` reads as
        the shortest construction of this retriever."""
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        defaults.update(self._config_defaults())
        return {
            key: value
            for key, value in self.config().items()
            if key not in defaults or defaults[key] != value
        }

    def _config_defaults(self) -> dict[str, Any]:
        """Config values that a constructor default stands for (e.g. an analyzer's config)."""
        return {}

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the collection to ``path`` (default: where it was opened or last saved).

        The write is atomic: a crash leaves the previously saved state readable.
        """
        target = collection_path(path) if path is not None else self.path
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
        cannot know or must not decide, e.g. ``Splade.open(path, model="./copy-of-the-model")``
        (refused unless it is the model the collection was built with), or where its engine is:
        ``Dense.open(path, engine=MilvusOptions("http://127.0.0.1:19530", collection="docs"))``.
        A manifest never names an engine to connect to, a credential or a code-running option:
        opening a folder from someone else connects to and writes to nothing the caller did not
        name.

        A folder that another process is saving to opens as one of its completed saves.
        """
        root = collection_path(path)
        given = {name: value for name, value in options.items() if value is not None}
        for attempt in range(1, _OPEN_ATTEMPTS + 1):
            seen = current_generation(root)
            try:
                return cls._open_once(root, given)
            except (CollectionError, OSError) as exc:
                # a save in another process may have removed the generation being read: retry
                moved = seen is not None and current_generation(root) != seen
                if moved and attempt < _OPEN_ATTEMPTS:
                    time.sleep(0.002 * attempt)
                    continue
                if isinstance(exc, CollectionError):
                    raise
                raise CorruptCollectionError(f"{root}: a data file cannot be read: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _open_once(cls, root: Path, given: dict[str, Any]) -> Self:
        from rag_retrievers.registry import saved_class

        manifest = read_manifest(root)
        saved_as = saved_class(manifest, root)
        if cls is not Retriever and not issubclass(saved_as, cls):
            raise ForeignCollectionError(
                f"{root} holds a {manifest['retriever']!r} collection, not {cls.name!r}"
            )
        accepted = set(inspect.signature(saved_as._read_data).parameters) - {"folder", "manifest"}
        unknown = sorted(set(given) - accepted)
        if unknown:
            raise InvalidInputError(
                f"{saved_as.__name__}.open takes no option {', '.join(unknown)}; "
                f"it takes: {', '.join(sorted(accepted)) or 'none'}"
            )
        retriever = saved_as._restore(data_dir(root, manifest), manifest, root, **given)
        retriever.path = root
        return retriever  # type: ignore[return-value]

    @classmethod
    def _restore(
        cls, folder: Path, manifest: dict[str, Any], where: Path, **options: Any
    ) -> Retriever:
        """``_read_data`` behind the checks every manifest gets: its config holds only keys that
        :meth:`config` writes; the engine it records is never connected to: ``_read_data`` gets
        ``engine=`` only from the caller of :meth:`open` (see :func:`reconnect`)."""
        config = _legacy_engine(manifest["config"], cls.engines)
        unknown = sorted(set(config) - cls.config_keys)
        if unknown:
            raise CorruptCollectionError(
                f"{where}: the manifest's config holds {', '.join(map(repr, unknown))}, which a "
                f"{cls.name!r} collection never records; it may hold: "
                f"{', '.join(sorted(cls.config_keys)) or 'nothing'}"
            )
        recorded = config.pop("engine", None)
        if cls.engines:
            options["engine"] = reconnect(cls, recorded, where, options.get("engine"))
        try:
            return cls._read_data(folder, {**manifest, "config": config}, **options)
        except (CollectionError, UnknownNameError):
            raise
        except InvalidInputError as exc:
            raise CorruptCollectionError(f"{where}: the manifest's config: {exc}") from None
        except (TypeError, KeyError, ValueError, RecursionError) as exc:
            raise CorruptCollectionError(
                f"{where}: the manifest does not fit {cls.__name__}: {exc!r}"
            ) from None

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


def reconnect(
    cls: type[Retriever], recorded: object, where: Path, given: object
) -> EngineOptions | None:
    """The engine a reopened collection connects to: only what the caller of ``open`` gave.

    A collection saved on an engine and opened without one opens in-process (searches are
    answered by the saved index), with a warning that says how to reconnect. Given options must
    name the collection (the saved snapshot replaces its contents); a Milvus field or index left
    unnamed is the one the collection was saved with.
    """
    from rag_retrievers.engines.options import MilvusOptions, engine_from

    saved = recorded if isinstance(recorded, dict) else {}
    [(kind, fields)] = saved.items() if len(saved) == 1 else [("", {})]
    fields = fields if isinstance(fields, dict) else {}
    engine = engine_from(given, cls.engines, f"{cls.__name__}.open")
    if engine is None:
        if fields.get("uri") is not None or fields.get("host") is not None:
            option = "MilvusOptions(uri=...)" if kind == "milvus" else "ChromaOptions(host=...)"
            warnings.warn(
                f"{where} was saved with its vectors on an engine ({kind}); it opens in-process. "
                f"To reconnect, pass engine={option} with collection="
                f"{fields.get('collection')!r} to open()",
                EngineNotReconnectedWarning,
                stacklevel=5,
            )
        return None
    if engine.collection is None:
        raise InvalidInputError(
            f"opening {where} on an engine needs its collection named: the saved snapshot "
            f"replaces that collection's contents (it was saved as {fields.get('collection')!r})"
        )
    field = fields.get("field")
    if isinstance(engine, MilvusOptions) and engine.field is None and kind == "milvus":
        if field is not None and not (isinstance(field, str) and field):
            raise CorruptCollectionError(f"{where}: the manifest records field {field!r}")
        engine = dataclasses.replace(engine, field=field)
    index = fields.get("index")
    if isinstance(engine, MilvusOptions) and engine.index is None and index is not None:
        # the index the collection was built with; one given that differs is refused by the
        # collection (its properties record the index), naming both
        try:
            engine = dataclasses.replace(engine, index=index)
        except InvalidInputError as err:
            raise CorruptCollectionError(f"{where}: the manifest records {err}") from None
    return engine.adopting()


def _legacy_engine(config: dict[str, Any], engines: tuple[type, ...]) -> dict[str, Any]:
    """A config that records its engine as flat keys (Milvus ``uri``, ``collection``, ``field``;
    Chroma ``host``, ``port``, ``collection``: manifests written before engine options were one
    value) in today's form, ``engine={"milvus": {...}}``. Only an engine the class supports is
    translated; any other key stays, to be refused by name."""
    from rag_retrievers.engines.options import ChromaOptions, MilvusOptions

    options = MilvusOptions if "uri" in config else ChromaOptions
    flat = [key for key in options.recorded if key in config]
    if options not in engines or "engine" in config or not flat:
        return dict(config)
    rest = {key: value for key, value in config.items() if key not in flat}
    return {**rest, "engine": {options.kind: {key: config[key] for key in flat}}}


class EngineNotReconnectedWarning(UserWarning):
    """A collection saved on an engine was opened in-process: the caller named no engine."""
