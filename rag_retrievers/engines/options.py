"""Where a retriever keeps its vectors, as one value: ``engine=MilvusOptions(...)`` or
``engine=ChromaOptions(...)``.

Plain frozen dataclasses (no client is imported or connected here): the adapter that receives
one validates it against the engines it supports and connects. ``config()`` records an engine as
``{"milvus": {...}}`` or ``{"chroma": {...}}`` (never the token, never ``overwrite``), a form the
constructors take too, so a retriever's config rebuilds it; :meth:`Retriever.open` never connects
to what a manifest records, only to the options its caller passes.

>>> MilvusOptions("vectors.db", collection="docs")
MilvusOptions(uri='vectors.db', collection='docs')
>>> ChromaOptions(host="127.0.0.1").to_config()
{'chroma': {'host': '127.0.0.1', 'port': 8000}}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

from rag_retrievers.engines.milvus_index import MilvusIndex
from rag_retrievers.errors import InvalidInputError

if TYPE_CHECKING:
    from rag_retrievers.engines.milvus import VectorField
    from rag_retrievers.engines.milvus_search import MilvusField

__all__ = [
    "DEFAULT_COLLECTION",
    "ChromaOptions",
    "EngineOptions",
    "MilvusOptions",
    "engine_from",
    "milvus_field",
]

#: the engine collection a retriever uses when its options name none
DEFAULT_COLLECTION = "rag_retrievers"


def _name(label: str, value: object, *, none_ok: bool = True) -> None:
    if value is None and none_ok:
        return
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{label} must be a non-empty str, got {value!r}")


class _Options:
    """What both option types share: validation, a short ``repr``, the config form."""

    kind: str = ""
    #: fields a config records (not credentials, not ``overwrite``, not local folders)
    recorded: tuple[str, ...] = ()
    #: set by ``Retriever.open`` only: the engine's collection is about to be replaced by a
    #: saved snapshot, so finding it non-empty is expected (a new retriever refuses that)
    adopt: bool

    def __repr__(self) -> str:
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.repr and getattr(self, f.name) != f.default
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _check_common(self) -> None:
        kind = type(self).__name__
        _name(f"{kind}.collection", getattr(self, "collection", None))
        overwrite = getattr(self, "overwrite", None)
        if not isinstance(overwrite, bool):
            raise InvalidInputError(f"{kind}.overwrite must be a bool, got {overwrite!r}")

    def to_config(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.recorded}
        if isinstance(values.get("index"), MilvusIndex):  # its JSON form, every parameter
            values["index"] = {"type": values["index"].type, **values["index"].params()}
        return {self.kind: {key: value for key, value in values.items() if value is not None}}

    def adopting(self) -> Self:
        """A copy marked as reopening a saved snapshot onto this engine."""
        return self._copy(adopt=True)

    def resolved(self, field: str) -> Self:
        """A copy with the names left out filled in: the default collection and, for Milvus,
        ``field`` (the retriever's name)."""
        names = {"collection": getattr(self, "collection", None) or DEFAULT_COLLECTION}
        if "field" in self.recorded:
            names["field"] = getattr(self, "field", None) or field
        return self._copy(adopt=self.adopt, **names)

    def _copy(self, *, adopt: bool, **changes: Any) -> Self:
        copy = dataclasses.replace(self, **changes)  # type: ignore[type-var]
        object.__setattr__(copy, "adopt", adopt)  # not an init field: frozen, set once here
        return copy


@dataclass(frozen=True, repr=False)
class MilvusOptions(_Options):
    """Vectors in Milvus: ``uri`` is a local ``PATH.db`` (milvus-lite) or ``http://host:19530``.

    ``collection`` defaults to ``rag_retrievers`` for a new retriever (``open`` needs it named);
    ``field`` to the retriever's name (``bm25``, ``dense``, ``splade``, ``colbert``), so several
    retrievers can share one collection. A new retriever refuses a field that already holds
    vectors unless ``overwrite=True``.

    ``index``: how a dense field (Dense's vectors, ColBERT's MUVERA encodings) is indexed: a
    :class:`~rag_retrievers.engines.milvus_index.MilvusIndex`, a type name (``"FLAT"``,
    ``"HNSW"``, ``"IVF_FLAT"``) or a mapping (``{"type": "HNSW", "M": 32, "ef": 128}``), checked
    here. Left out: ``FLAT`` (exact) for a new retriever; for :meth:`Retriever.open`, the index
    the collection was saved with (another one is refused by the collection). Sparse fields
    (BM25, SPLADE) are always searched exactly and refuse an approximate index.

    >>> MilvusOptions("http://127.0.0.1:19530", collection="docs", field="body")
    MilvusOptions(uri='http://127.0.0.1:19530', collection='docs', field='body')
    >>> MilvusOptions("http://127.0.0.1:19530", index="hnsw").to_config()["milvus"]["index"]
    {'type': 'HNSW', 'M': 16, 'efConstruction': 200, 'ef': 64}
    """

    uri: str
    collection: str | None = None
    field: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    overwrite: bool = False
    index: MilvusIndex | str | Mapping[str, Any] | None = None  # a MilvusIndex once made
    adopt: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)

    kind = "milvus"
    recorded = ("uri", "collection", "field", "index")

    def __post_init__(self) -> None:
        self._check_common()
        _name("MilvusOptions.uri", self.uri, none_ok=False)
        _name("MilvusOptions.field", self.field)
        if self.token is not None and not isinstance(self.token, str):
            raise InvalidInputError("MilvusOptions.token must be a str or None")
        if self.index is not None:  # refused here, before anything connects
            try:
                index = MilvusIndex.coerce(self.index)
            except InvalidInputError as err:
                raise InvalidInputError(f"MilvusOptions.index: {err}") from None
            object.__setattr__(self, "index", index)


@dataclass(frozen=True, repr=False)
class ChromaOptions(_Options):
    """Vectors in Chroma: embedded in ``workdir`` (a fresh temporary folder when ``None``), or on
    a Chroma server (``chroma run``) at ``host``/``port``.

    >>> ChromaOptions(host="127.0.0.1", port=8000, collection="docs")
    ChromaOptions(host='127.0.0.1', collection='docs')
    """

    host: str | None = None
    port: int = 8000
    collection: str | None = None
    workdir: str | None = None
    overwrite: bool = False
    adopt: bool = dataclasses.field(default=False, init=False, repr=False, compare=False)

    kind = "chroma"
    recorded = ("host", "port", "collection")

    def __post_init__(self) -> None:
        self._check_common()
        _name("ChromaOptions.host", self.host)
        _name("ChromaOptions.workdir", self.workdir)
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidInputError(f"ChromaOptions.port must be an int in 1..65535, got {port!r}")
        if self.host is not None and self.workdir is not None:
            raise InvalidInputError(
                "ChromaOptions: workdir is for embedded Chroma; a server (host) keeps its own data"
            )

    @property
    def server(self) -> bool:
        return self.host is not None


EngineOptions = MilvusOptions | ChromaOptions
_KINDS: dict[str, type[MilvusOptions] | type[ChromaOptions]] = {
    "milvus": MilvusOptions,
    "chroma": ChromaOptions,
}


E = TypeVar("E", MilvusOptions, ChromaOptions, EngineOptions)


def engine_from(value: object, supported: tuple[type[E], ...], owner: str) -> E | None:
    """``value`` as options of one of the ``supported`` engines: an options object, its config
    form (``{"milvus": {...}}``) or ``None``; anything else is refused naming what is taken."""
    names = " or ".join(cls.__name__ for cls in supported)
    if value is None or isinstance(value, supported):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        [(kind, fields)] = value.items()
        cls = _KINDS.get(kind) if isinstance(kind, str) else None
        if cls in supported and isinstance(fields, Mapping):
            known = {f.name for f in dataclasses.fields(cls) if f.init}
            unknown = sorted(str(key) for key in fields if key not in known)
            if unknown:
                raise InvalidInputError(
                    f"{owner}: engine {kind!r} takes no option {', '.join(unknown)}; it takes: "
                    f"{', '.join(sorted(known))}"
                )
            return cls(**fields)
    raise InvalidInputError(f"{owner}: engine must be {names} or None, got {value!r}")


def milvus_field(
    options: MilvusOptions, field: str, spec: VectorField
) -> tuple[MilvusField, dict[str, Any]]:
    """Connect a retriever's Milvus field (``field`` unless the options name one) and return it
    with the options' config form, names filled in."""
    from rag_retrievers.engines.milvus_search import MilvusField

    e = options.resolved(field)
    connected = MilvusField(
        e.uri,
        e.collection or DEFAULT_COLLECTION,
        e.field or field,
        spec,
        token=e.token,
        overwrite=e.overwrite,
        adopt=e.adopt,
        index=e.index,
    )
    return connected, e.to_config()
