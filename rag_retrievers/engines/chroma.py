"""The Chroma side of :class:`~rag_retrievers.adapters.dense.Dense`: one Chroma collection that
holds its vectors and answers its approximate (HNSW) nearest-neighbour queries.

Embedded (``chromadb.PersistentClient`` in a working directory: a fresh temporary one, removed
by :meth:`ChromaCollection.close` or when the object is garbage-collected, or ``workdir``), or
on a Chroma server (``host``/``port``, ``chromadb.HttpClient``). The collection's metadata
records the model its vectors come from, so another model, or a collection rag-retrievers did
not make, is refused.

On a server, every request is retried with exponential backoff (``backoff`` seconds, doubling,
at most ``max_backoff`` apart; by default about a minute, enough for a restarted ``chroma run``)
while the server cannot be reached; then
:class:`~rag_retrievers.errors.ChromaUnavailableError` names ``host:port`` and the last error.
Writes are upserts by id, so a retried (or repeated) write never duplicates a document.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rag_retrievers.encoders.identity import check_same_model
from rag_retrievers.errors import (
    ChromaUnavailableError,
    ForeignCollectionError,
    MissingDependencyError,
)
from rag_retrievers.records import Document

#: our metadata keys on a Chroma collection: which model its vectors come from
_META_PREFIX = "rag_retrievers:"

T = TypeVar("T")


def _import_chromadb() -> Any:
    try:
        import chromadb
    except ImportError:
        raise MissingDependencyError("chromadb", "neural") from None
    return chromadb


def _release(client: Any, workdir: Path | None) -> None:
    """Close a Chroma client and remove its temporary working directory (best effort)."""
    if hasattr(client, "close"):
        with contextlib.suppress(Exception):  # best effort; the directory goes anyway
            client.close()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server could not be reached or dropped the connection (worth
    retrying), not that it refused the request."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - chromadb's HTTP client brings it
        return isinstance(exc, ConnectionError)
    if isinstance(exc, httpx.TransportError | ConnectionError):
        return True
    # the constructor's heartbeat: chromadb turns a refused connection into this ValueError
    text = str(exc).lower()
    return isinstance(exc, ValueError) and "could not connect to a chroma server" in text


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class ChromaCollection:
    """A Chroma collection of vectors from the model ``identity`` (an encoder identity).

    ``space`` is Chroma's HNSW space (``cosine`` or ``ip``). An existing collection is refused
    when it records another model or was not made by rag-retrievers, and also when it holds
    vectors, unless ``adopt`` (a reopened snapshot that will :meth:`sync` it); ``overwrite``
    drops it instead.
    """

    #: retries of a server request while the server cannot be reached, the first wait
    #: (seconds, doubling) and the longest wait: 0.5 + 1 + 2 + 4 + 8 x 6 s, about a minute
    retries = 10
    backoff = 0.5
    max_backoff = 8.0
    #: retries of the first connection (a wrong address should not take a minute to report)
    connect_retries = 2

    def __init__(
        self,
        name: str,
        *,
        identity: dict[str, Any],
        space: str,
        host: str | None = None,
        port: int = 8000,
        workdir: str | None = None,
        overwrite: bool = False,
        adopt: bool = False,
    ) -> None:
        chromadb = _import_chromadb()
        from chromadb.config import Settings

        self.name, self.host, self.port = name, host, port
        self.identity, self.space = identity, space
        #: the temporary working directory this object made and removes, if any
        self.workdir: Path | None = None
        settings = Settings(anonymized_telemetry=False)
        if host is None:
            if workdir is None:
                self.workdir = path = Path(tempfile.mkdtemp(prefix="rag-retrievers-chroma-"))
            else:
                path = Path(workdir)
            self.client: Any = chromadb.PersistentClient(path=str(path), settings=settings)
            self._finalizer = weakref.finalize(self, _release, self.client, self.workdir)
            where = f"Chroma collection {name!r} in {path}"
        else:

            def connect() -> Any:  # chromadb >= 1 already raises in the constructor
                client = chromadb.HttpClient(host=host, port=port, settings=settings)
                client.heartbeat()
                return client

            self.client = self._call("connect to", connect, retries=self.connect_retries)
            self._finalizer = weakref.finalize(self, _release, self.client, None)
            where = f"Chroma collection {name!r} on {host}:{port}"
        self.collection: Any = self._call(
            "open a collection on", lambda: self._open_or_create(where, overwrite, adopt)
        )

    @property
    def address(self) -> str:
        """``host:port`` of the server (``None``: embedded)."""
        return f"{self.host}:{self.port}"

    def _call(self, what: str, call: Callable[[], T], *, retries: int | None = None) -> T:
        """``call()``; on a server, retried with exponential backoff while the server cannot be
        reached, then :class:`ChromaUnavailableError` naming ``host:port``."""
        if self.host is None:
            return call()
        retries = self.retries if retries is None else retries
        delay = self.backoff
        for attempt in range(retries + 1):
            try:
                return call()
            except Exception as exc:
                if not _unreachable(exc):
                    raise
                if attempt == retries:
                    raise ChromaUnavailableError(
                        f"cannot {what} the Chroma server at {self.address} after "
                        f"{retries + 1} attempts ({type(exc).__name__}: {exc}); start it "
                        f"(`chroma run --host {self.host} --port {self.port} --path DIR`) or "
                        "wait for it to come back and repeat the call: writes upsert by id, so "
                        "repeating one is safe"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _open_or_create(self, where: str, overwrite: bool, adopt: bool) -> Any:
        names = [getattr(c, "name", c) for c in self.client.list_collections()]
        if self.name in names:
            if not overwrite:
                existing = self.client.get_collection(self.name)
                self._check(existing, where, adopt)
                return existing
            self.client.delete_collection(self.name)
        # get_or_create: a retried create whose first try the server applied finds it made
        return self.client.get_or_create_collection(
            self.name,
            embedding_function=None,
            metadata={"hnsw:space": self.space, **self._metadata()},
        )

    def _metadata(self) -> dict[str, Any]:
        weights = self.identity.get("weights") or {}
        return {
            f"{_META_PREFIX}model": self.identity["name"],
            f"{_META_PREFIX}dimension": self.identity["dimension"],
            f"{_META_PREFIX}weights_sha256": weights.get("sha256") or "",
            f"{_META_PREFIX}similarity": self.identity["similarity"],
        }

    def _check(self, collection: Any, where: str, adopt: bool) -> None:
        meta = dict(collection.metadata or {})
        if f"{_META_PREFIX}dimension" not in meta:
            raise ForeignCollectionError(
                f"{where} exists and was not made by rag-retrievers; choose another collection "
                "name or pass overwrite=True to replace it"
            )
        saved = {
            "name": meta.get(f"{_META_PREFIX}model"),
            "dimension": meta.get(f"{_META_PREFIX}dimension"),
            "similarity": meta.get(f"{_META_PREFIX}similarity"),
            "weights": {"sha256": meta.get(f"{_META_PREFIX}weights_sha256") or None},
        }
        check_same_model(saved, self.identity, where)
        count = collection.count()
        if count and not adopt:
            raise ForeignCollectionError(
                f"{where} already holds {count} vectors, but this new retriever has no documents "
                "for them: reopen the saved collection with Dense.open(PATH), choose another "
                "collection name, or pass overwrite=True to replace it"
            )

    def close(self) -> None:
        """Release the client and remove the temporary working directory, if any."""
        self._finalizer()

    # -- the vectors ---------------------------------------------------------------------------

    def _batch_size(self) -> int:
        return int(self._call("ask the batch size of", self.client.get_max_batch_size))

    def count(self) -> int:
        """How many vectors the collection holds."""
        return int(self._call("count the vectors of", self.collection.count))

    def upsert(self, documents: Sequence[Document], vectors: np.ndarray) -> None:
        ids = [d.id for d in documents]
        size = self._batch_size()
        for part in _chunks(len(ids), size):
            write = partial(self.collection.upsert, ids=ids[part], embeddings=vectors[part])
            self._call("write to", write)

    def ids(self) -> list[str]:
        size = self._batch_size()
        ids: list[str] = []
        while True:
            read = partial(self.collection.get, include=[], limit=size, offset=len(ids))
            page = self._call("read from", read)["ids"]
            ids.extend(page)
            if len(page) < size:
                return ids

    def delete(self, ids: Sequence[str]) -> None:
        size = self._batch_size()
        for part in _chunks(len(ids), size):
            self._call("delete from", partial(self.collection.delete, ids=ids[part]))

    def sync(self, documents: Sequence[Document], vectors: np.ndarray) -> None:
        """Make the collection hold exactly ``documents`` (a reopened snapshot). An existing
        server collection is updated in place, not dropped and recreated: other clients holding
        it keep a valid handle."""
        keep = {d.id for d in documents}
        self.delete([i for i in self.ids() if i not in keep])
        self.upsert(documents, vectors)

    def nearest(self, queries: np.ndarray, n_results: int) -> list[list[str]]:
        """The ids of each query vector's ``n_results`` approximate nearest neighbours."""
        query = partial(
            self.collection.query, query_embeddings=queries, n_results=n_results, include=[]
        )
        result = self._call("search", query)
        return list(result["ids"])
