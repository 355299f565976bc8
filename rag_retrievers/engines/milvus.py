"""Milvus as the vector engine of our retrievers: embedded (milvus-lite) or a server, by ``uri``.

A :class:`MilvusStore` is one Milvus collection laid out for rag-retrievers: ``id`` (VARCHAR
primary key, our document id), ``metadata`` (JSON, for filter expressions) and one vector field
per retriever that uses it (dense ``FLOAT_VECTOR`` or ``SPARSE_FLOAT_VECTOR``). Several
retrievers may share a collection, each with its own field: then a
:class:`~rag_retrievers.adapters.hybrid.Hybrid` of them fuses inside Milvus (``hybrid_search``
with its RRF ranker) instead of in this process.

- The collection is created on the first write, with every field that retrievers attached by
  then; an existing collection is checked field by field (type, dimension, metric and the model
  identity recorded in the collection's properties) and refused on any difference.
- Searches are exact by default: ``FLAT`` for dense fields, ``SPARSE_INVERTED_INDEX`` with
  ``drop_ratio_build = drop_ratio_search = 0`` for sparse ones. A dense field may ask for an
  approximate index instead (:class:`~rag_retrievers.engines.milvus_index.MilvusIndex`: HNSW,
  IVF_FLAT), recorded and checked with the rest of the field.
- A server is asked its version once: a field it cannot hold (sparse vectors before Milvus 2.4,
  a second vector field before 2.6) is refused when the retriever is constructed
  (:class:`~rag_retrievers.engines.milvus_connection.MilvusFeatureError`).
- Requests are retried while a server is away or recovering, then
  :class:`~rag_retrievers.errors.MilvusUnavailableError` names the uri (``retries``,
  ``backoff``, ``max_backoff``: by default about a minute, enough for a restarted standalone
  server to reload its collections).

Stores are shared per ``(uri, collection)`` within a process (:func:`milvus_store`), so the
retrievers of one collection see the same schema, the same client and the same write lock.

What ``uri`` may name, and the retries while Milvus cannot be reached, are in
:mod:`rag_retrievers.engines.milvus_connection`; filters as Milvus expressions in
:mod:`rag_retrievers.engines.milvus_filters`. Their public names are importable from here too
(``__all__``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from rag_retrievers.engines.milvus_connection import (
    HYBRID_SEARCH,
    SHARED_COLLECTION,
    SPARSE_VECTORS,
    Feature,
    MilvusFeatureError,
    check_uri,
    import_pymilvus,
    is_server_uri,
    parse_version,
    retrying,
)
from rag_retrievers.engines.milvus_filters import filter_expression
from rag_retrievers.engines.milvus_index import MilvusIndex
from rag_retrievers.errors import (
    CollectionError,
    ForeignCollectionError,
    InvalidInputError,
    MilvusUnavailableError,
)

# with the names of milvus_connection and milvus_filters that were always imported from here
__all__ = [
    "SPARSE_PLACEHOLDER",
    "Kind",
    "MilvusFeatureError",
    "MilvusIndex",
    "MilvusStore",
    "MilvusUnavailableError",
    "SchemaMismatchError",
    "VectorField",
    "check_uri",
    "close_stores",
    "filter_expression",
    "is_server_uri",
    "milvus_store",
]

T = TypeVar("T")

#: collection property holding a field's description (kind, dimension, metric, model)
_PROPERTY_PREFIX = "rag_retrievers.field."
_ID_MAX_LENGTH = 4096
#: sparse vectors must hold a non-zero weight; a row that has no value yet for a field of a
#: shared collection gets this one (dimension 0 is never used: term ids are stored + 1)
SPARSE_PLACEHOLDER = {0: 1e-30}

Kind = Literal["dense", "sparse"]


class SchemaMismatchError(ForeignCollectionError):
    """An existing Milvus collection does not have the fields, types or model this retriever
    needs."""


@dataclass(frozen=True)
class VectorField:
    """One retriever's vector field: ``kind``, ``dim`` (dense), ``metric``, the identity of
    what produced the vectors (model name, weights sha256, BM25 parameters...) and, for dense
    fields, the ``index`` (``FLAT`` unless given; sparse fields always use an exact
    ``SPARSE_INVERTED_INDEX``)."""

    kind: Kind
    metric: Literal["IP", "COSINE", "L2"] = "IP"
    dim: int | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    index: MilvusIndex | None = None

    def __post_init__(self) -> None:
        if self.kind == "dense":
            object.__setattr__(self, "index", MilvusIndex.coerce(self.index))
        elif self.index is not None and MilvusIndex.coerce(self.index) != MilvusIndex():
            raise InvalidInputError(
                f"index={self.index!r}: sparse fields are searched exactly "
                "(SPARSE_INVERTED_INDEX); FLAT, HNSW and IVF_FLAT are for dense fields"
            )
        else:
            object.__setattr__(self, "index", None)

    def description(self) -> dict[str, Any]:
        """What the collection's properties record of this field: the index by what builds it
        (its search parameters, ``ef`` and ``nprobe``, belong to each retriever)."""
        described: dict[str, Any] = {
            "kind": self.kind,
            "metric": self.metric,
            "dim": self.dim,
            "identity": self.identity,
        }
        if self.index is not None:
            described["index"] = self.index.build_params()
        return json.loads(json.dumps(described, sort_keys=True))

    def describe(self) -> str:
        return json.dumps(self.description(), sort_keys=True)

    @classmethod
    def from_description(cls, text: str) -> VectorField:
        """The field a collection's property describes (one written before indexes were
        recorded is a ``FLAT`` dense field)."""
        described = json.loads(text)
        index = described.pop("index", None)
        return cls(**described, index=None if index is None else MilvusIndex.coerce(index))


def _index_text(build: Mapping[str, Any]) -> str:
    """``HNSW (M=8, efConstruction=64)`` for a recorded index description."""
    params = ", ".join(f"{k}={v}" for k, v in build.items() if k != "type")
    return f"{build.get('type')}" + (f" ({params})" if params else "")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MilvusStore:
    """One Milvus collection shared by the retrievers that attach a vector field to it.

    Use :func:`milvus_store` to get the process-wide store of a ``(uri, collection)``.

    >>> store = milvus_store("/tmp/rag.db", "docs")  # doctest: +SKIP
    >>> store.attach("bm25", VectorField("sparse"))  # doctest: +SKIP
    >>> store.upsert("bm25", ["a"], [{"topic": "x"}], [{1: 0.5}])  # doctest: +SKIP
    >>> store.search("bm25", [{1: 2.0}], k=1)  # doctest: +SKIP
    [[('a', 1.0)]]
    """

    #: rows per insert call (Milvus limits one request's size)
    insert_batch_size = 1000
    #: queries per search call
    search_batch_size = 64
    #: retries of a request while the server is away or recovering, the first wait (seconds,
    #: doubling) and the longest: 0.5 + 1 + 2 + 4 + 8 x 6, about a minute, covers a standalone
    #: server's restart and its reloading of the collections (a session TTL: 30 s by default)
    retries = 10
    backoff = 0.5
    max_backoff = 8.0
    #: retries of the first connection (a wrong address should not take a minute to report)
    connect_retries = 3

    def __init__(
        self,
        uri: str,
        collection: str,
        *,
        token: str | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        """``retries``/``backoff`` (default: the class attributes) govern every request, the
        first connection included when given."""
        self.uri = check_uri(uri)
        if not isinstance(collection, str) or not collection:
            raise InvalidInputError(f"collection must be a non-empty str, got {collection!r}")
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
        ):
            raise InvalidInputError(f"retries must be an int >= 0, got {retries!r}")
        if backoff is not None and (
            isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0
        ):
            raise InvalidInputError(f"backoff must be a number of seconds >= 0, got {backoff!r}")
        self.collection = collection
        self.fields: dict[str, VectorField] = {}
        self.lock = threading.RLock()  # one writer at a time: rows of shared fields are merged
        if retries is not None:
            self.retries = retries
        if backoff is not None:
            self.backoff = float(backoff)
        self._created = False
        self._dirty = False  # written since the last flush (milvus-lite only)
        pymilvus = import_pymilvus()
        if not is_server_uri(uri) and not Path(uri).parent.is_dir():
            raise InvalidInputError(f"uri {uri!r}: folder {Path(uri).parent} does not exist")
        self.client = retrying(
            "connect to",
            uri,
            self.connect_retries if retries is None else retries,
            self.backoff,
            lambda: pymilvus.MilvusClient(uri=uri, token=token or "", timeout=10),
            max_backoff=self.max_backoff,
        )
        self._closed = False
        #: what every read asks: a server answers reads at ``Session`` consistency, which sees
        #: every write of this client before it (as ``Strong`` does) without waiting for the
        #: server's next time tick when nothing was written (``Strong``: ~200 ms a search)
        self._reads: dict[str, Any] = {"consistency_level": "Session"} if is_server_uri(uri) else {}
        #: the server's version as it states it (``None`` for milvus-lite)
        self.version: str | None = None
        if is_server_uri(uri):
            self.version = str(self._retry("ask the version of", self.client.get_server_version))

    def __repr__(self) -> str:
        return f"MilvusStore({self.uri!r}, {self.collection!r}, fields={sorted(self.fields)})"

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        return retrying(
            what, self.uri, self.retries, self.backoff, call, max_backoff=self.max_backoff
        )

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``self.client.method(collection, *args, **kwargs)``, with retries and our errors."""
        return self._retry(
            what, partial(getattr(self.client, method), self.collection, *args, **kwargs)
        )

    # -- what the server can do ----------------------------------------------------------------

    def supports(self, feature: Feature) -> bool:
        """Whether this Milvus has ``feature``: milvus-lite and servers whose version cannot be
        read are given the benefit of the doubt (the server refuses what it cannot do)."""
        version = parse_version(self.version) if self.version is not None else None
        return version is None or version[:2] >= feature.since

    def require(self, feature: Feature, needed_by: str, instead: str) -> None:
        """Raise :class:`MilvusFeatureError` unless this Milvus has ``feature``."""
        if not self.supports(feature):
            raise MilvusFeatureError(
                f"{needed_by} needs {feature.name}, which Milvus servers have since "
                f"{feature.since_text}; the server at {self.uri} is version {self.version}. "
                f"Upgrade it to {feature.since_text} or later, or {instead}"
            )

    def exists(self) -> bool:
        return bool(self._call("list collections of", "has_collection"))

    # -- schema --------------------------------------------------------------------------------

    def attach(self, name: str, spec: VectorField, *, overwrite: bool = False) -> None:
        """Declare the vector field ``name``; an existing collection must already hold it, as
        ``spec`` describes it. ``overwrite`` drops an existing collection (every field)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInputError(f"field must be an identifier, got {name!r}")
        if name in ("id", "metadata"):
            raise InvalidInputError(f"field {name!r} is reserved; choose another field name")
        with self.lock:
            self._check_features(name, spec, overwrite)
            known = self.fields.get(name)
            if known is not None and known.describe() != spec.describe():
                raise SchemaMismatchError(
                    f"field {name!r} of Milvus collection {self.collection!r} at {self.uri} is "
                    f"already used for {known.describe()}; this retriever needs "
                    f"{spec.describe()}: give it another field or collection"
                )
            if overwrite and self.exists():
                self._call("drop a collection on", "drop_collection")
                self._created = False
                self.fields = {}
            if self.exists():
                self._check_existing(name, spec)
                if not self._created:  # milvus-lite (re)started: its collections are released
                    self._call("load a collection on", "load_collection")
                self._created = True
            elif self._created:
                raise SchemaMismatchError(
                    f"Milvus collection {self.collection!r} at {self.uri} disappeared"
                )
            self.fields[name] = spec

    def _check_features(self, name: str, spec: VectorField, overwrite: bool) -> None:
        """Refuse, before anything changes, a field this server cannot hold."""
        who = f"{spec.identity.get('retriever') or spec.kind} (field {name!r})"
        if spec.kind == "sparse":
            self.require(
                SPARSE_VECTORS,
                who,
                "keep this retriever in-process (no engine): a Hybrid then fuses it with the "
                "members on Milvus in this process",
            )
        others = [] if overwrite else sorted(set(self.fields) - {name})
        if others:
            self._require_shared(who, others)

    def _require_shared(self, who: str, others: list[str]) -> None:
        self.require(
            SHARED_COLLECTION,
            f"{who} in Milvus collection {self.collection!r}, which already has the vector "
            f"field(s) {others},",
            "give each retriever a collection of its own: a Hybrid of them fuses in this "
            "process (hybrid_search, fusion inside Milvus, needs them in one collection)",
        )

    def _check_existing(self, name: str, spec: VectorField) -> None:
        info = self._call("describe a collection on", "describe_collection")
        where = f"Milvus collection {self.collection!r} at {self.uri}"
        properties = info.get("properties") or {}
        declared = {
            key[len(_PROPERTY_PREFIX) :]: value
            for key, value in properties.items()
            if key.startswith(_PROPERTY_PREFIX)
        }
        if not declared:
            raise SchemaMismatchError(
                f"{where} exists and was not made by rag-retrievers; choose another collection "
                "name or pass overwrite=True to replace it"
            )
        if name not in declared:
            who = f"{spec.identity.get('retriever') or spec.kind} (field {name!r})"
            self._require_shared(who, sorted(declared))
            raise SchemaMismatchError(
                f"{where} has the vector fields {sorted(declared)}, not {name!r}: retrievers "
                "sharing a collection must be created before its first write (Milvus cannot add "
                "a vector field later); use another collection or overwrite=True"
            )
        saved = VectorField.from_description(declared[name]).description()
        wanted = spec.description()
        differences = sorted(key for key in wanted if saved.get(key) != wanted[key])
        if differences == ["index"]:
            raise SchemaMismatchError(
                f"{where}: field {name!r} is indexed {_index_text(saved['index'])}; this "
                f"retriever asks for {_index_text(wanted['index'])}. Pass the collection's index "
                "(MilvusOptions(index=...); Retriever.open without one reuses the saved index), "
                "use another collection, or overwrite=True to rebuild it"
            )
        if differences:
            raise SchemaMismatchError(
                f"{where}: field {name!r} holds {saved}; this retriever needs {wanted} "
                f"(differs in {', '.join(differences)}). Vectors of another model, dimension "
                "or weighting are not comparable: use the matching retriever, another "
                "collection, or overwrite=True"
            )
        for other, description in declared.items():
            self.fields.setdefault(other, VectorField.from_description(description))

    def _create(self) -> None:
        pymilvus = import_pymilvus()
        DataType = pymilvus.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=_ID_MAX_LENGTH)
        schema.add_field("metadata", DataType.JSON)
        index = self.client.prepare_index_params()
        for name, spec in self.fields.items():
            if spec.kind == "dense":
                kind = spec.index or MilvusIndex()  # VectorField gives every dense field one
                schema.add_field(name, DataType.FLOAT_VECTOR, dim=spec.dim)
                index.add_index(
                    name, index_type=kind.type, metric_type=spec.metric, params=kind.index_params()
                )
            else:
                schema.add_field(name, DataType.SPARSE_FLOAT_VECTOR)
                index.add_index(
                    name,
                    index_type="SPARSE_INVERTED_INDEX",
                    metric_type="IP",
                    params={"drop_ratio_build": 0.0},
                )
        properties = {_PROPERTY_PREFIX + n: s.describe() for n, s in self.fields.items()}
        try:
            self._call(
                "create a collection on",
                "create_collection",
                schema=schema,
                index_params=index,
                consistency_level="Strong",  # a search sees every write before it (lite)
                properties=properties,
            )
        except MilvusUnavailableError:
            raise
        except CollectionError:
            # refused as existing: a retried create whose first try reached the server before it
            # went away, or another client's create. Ours if it describes these fields
            if not self.exists():
                raise
            for name, spec in list(self.fields.items()):
                self._check_existing(name, spec)
        self._created = True

    def _placeholder(self, name: str) -> Any:
        spec = self.fields[name]
        return SPARSE_PLACEHOLDER if spec.kind == "sparse" else [0.0] * (spec.dim or 0)

    # -- writes --------------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
        vectors: Sequence[Any],
    ) -> None:
        """Insert or replace rows: field ``name`` and the metadata; other fields keep their
        values (rows new to the collection get placeholders there until their retriever writes
        them)."""
        with self.lock:
            if not self._created:
                self._create()
            others = [n for n in self.fields if n != name]
            self._dirty = True
            size = self.insert_batch_size
            for part in range(0, len(ids), size):
                rows = [
                    {"id": i, "metadata": dict(m), name: v}
                    for i, m, v in zip(
                        ids[part : part + size],
                        metadatas[part : part + size],
                        vectors[part : part + size],
                        strict=True,
                    )
                ]
                if not others:
                    self._call("write to", "upsert", rows)
                    continue
                present = self._present([r["id"] for r in rows])
                old = [r for r in rows if r["id"] in present]
                new = [
                    {**r, **{n: self._placeholder(n) for n in others}}
                    for r in rows
                    if r["id"] not in present
                ]
                if old:
                    self._call("write to", "upsert", old, partial_update=True)
                if new:
                    self._call("write to", "upsert", new)

    def _present(self, ids: Sequence[str]) -> set[str]:
        found = self._call(
            "read from",
            "query",
            filter=f"id in {json.dumps(list(ids))}",
            output_fields=["id"],
            **self._reads,
        )
        return {row["id"] for row in found}

    def delete(self, ids: Sequence[str]) -> None:
        with self.lock:
            if not self._created or not ids:
                return
            self._dirty = True
            for part in _chunks(list(ids), self.insert_batch_size):
                self._call("delete from", "delete", ids=list(part))

    def ids(self) -> list[str]:
        """Every id in the collection (read again from the start if the server goes away)."""
        if not self._created:
            return []

        def read() -> list[str]:
            out: list[str] = []
            iterator = self.client.query_iterator(
                self.collection, batch_size=1000, filter="", output_fields=["id"], **self._reads
            )
            try:
                while page := iterator.next():
                    out.extend(row["id"] for row in page)
            finally:
                with contextlib.suppress(Exception):
                    iterator.close()
            return out

        return self._retry("read from", read)

    def count(self) -> int:
        if not self._created:
            return 0
        rows = self._call(
            "read from", "query", filter="", output_fields=["count(*)"], **self._reads
        )
        return int(rows[0]["count(*)"])

    # -- reads ---------------------------------------------------------------------------------

    def _flush_lite(self) -> None:
        """milvus-lite searches unflushed rows one by one in Python (seconds for a few thousand
        rows), flushed ones through its index: flush before a search that follows writes. A
        server searches growing segments itself, and rate-limits flushes: never there."""
        if self._dirty and not is_server_uri(self.uri):
            with self.lock:
                if self._dirty:
                    self._call("flush", "flush")
                    self._dirty = False

    def _search_params(self, name: str, k: int, index: MilvusIndex | None = None) -> dict[str, Any]:
        spec = self.fields[name]
        if spec.kind == "sparse" or spec.index is None:
            return {"metric_type": "IP", "params": {"drop_ratio_search": 0.0}}
        return {"metric_type": spec.metric, "params": (index or spec.index).search_params(k)}

    def search(
        self,
        name: str,
        vectors: Sequence[Any],
        k: int,
        expression: str | None = None,
        *,
        index: MilvusIndex | None = None,
    ) -> list[list[tuple[str, float]]]:
        """The ``k`` nearest rows of field ``name`` for each query vector, as (id, score);
        ``index`` sets the search parameters (``ef``, ``nprobe``: the field's otherwise)."""
        if not self._created or not vectors:
            return [[] for _ in vectors]
        self._flush_lite()
        out: list[list[tuple[str, float]]] = []
        for part in _chunks(list(vectors), self.search_batch_size):
            result = self._call(
                "search",
                "search",
                data=list(part),
                anns_field=name,
                limit=k,
                filter=expression or "",
                search_params=self._search_params(name, k, index),
                output_fields=["id"],
                **self._reads,
            )
            out.extend([(hit["id"], float(hit["distance"])) for hit in hits] for hits in result)
        return out

    def hybrid_search(
        self,
        requests: Sequence[tuple[str, Sequence[Any], int]],
        k: int,
        *,
        rrf_k: float = 60,
        expression: str | None = None,
    ) -> list[list[tuple[str, float]]]:
        """RRF fusion inside Milvus: ``requests`` are (field, query vectors, depth), the same
        number of queries each; returns the fused (id, score) lists, best first."""
        self.require(
            HYBRID_SEARCH,
            f"fusion inside Milvus collection {self.collection!r}",
            "fuse the members in this process",
        )
        pymilvus = import_pymilvus()
        n_queries = len(requests[0][1])
        if not self._created or not n_queries:
            return [[] for _ in range(n_queries)]
        self._flush_lite()
        out: list[list[tuple[str, float]]] = []
        for start in range(0, n_queries, self.search_batch_size):
            stop = start + self.search_batch_size
            reqs = [
                pymilvus.AnnSearchRequest(
                    data=list(vectors[start:stop]),
                    anns_field=name,
                    param=self._search_params(name, depth),
                    limit=depth,
                    expr=expression or None,
                )
                for name, vectors, depth in requests
            ]
            result = self._call(
                "search",
                "hybrid_search",
                reqs,
                ranker=pymilvus.RRFRanker(rrf_k),
                limit=k,
                output_fields=["id"],
                **self._reads,
            )
            out.extend([(hit["id"], float(hit["distance"])) for hit in hits] for hits in result)
        return out

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client; for milvus-lite also stop its embedded server. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _STORES.pop((_key(self.uri), self.collection), None)
        with contextlib.suppress(Exception):  # best effort: the server may be gone already
            self.client.close()
        if not is_server_uri(self.uri) and not any(key[0] == _key(self.uri) for key in _STORES):
            try:
                from milvus_lite.server_manager import server_manager_instance
            except ImportError:
                return
            server_manager_instance.release_server(self.uri)


_STORES: dict[tuple[str, str], MilvusStore] = {}
_STORES_LOCK = threading.Lock()


def _key(uri: str) -> str:
    return uri if is_server_uri(uri) else os.path.abspath(uri)


def milvus_store(
    uri: str,
    collection: str,
    *,
    token: str | None = None,
    retries: int | None = None,
    backoff: float | None = None,
) -> MilvusStore:
    """The process-wide :class:`MilvusStore` of ``(uri, collection)`` (created on first use;
    ``retries``/``backoff`` apply to a store this call creates)."""
    check_uri(uri)
    key = (_key(uri), collection)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = MilvusStore(uri, collection, token=token, retries=retries, backoff=backoff)
            _STORES[key] = store
        return store


def close_stores(uri: str | None = None) -> None:
    """Close every shared store (of ``uri`` only, if given), stopping milvus-lite servers."""
    with _STORES_LOCK:
        stores = [s for (u, _), s in _STORES.items() if uri is None or u == _key(uri)]
    for store in stores:
        store.close()
