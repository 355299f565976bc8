"""The index of a dense Milvus vector field: exact ``FLAT`` (the default), or approximate
``HNSW`` and ``IVF_FLAT``.

A :class:`MilvusIndex` holds what builds the index (recorded in the collection's properties and
checked when a collection is reopened, like the model identity) and what each search asks of it
(``ef``, ``nprobe``: per retriever, never recorded).

- ``FLAT``: every vector is scored; exact.
- ``HNSW`` (Malkov & Yashunin 2018, "Efficient and robust approximate nearest neighbor search
  using Hierarchical Navigable Small World graphs"): ``M`` links per node, ``efConstruction``
  candidates while building; ``ef`` candidates per search (at least ``k``: Milvus refuses less).
- ``IVF_FLAT`` (an inverted file over ``nlist`` k-means cells, Jégou et al. 2011): a search
  scores the vectors of the ``nprobe`` nearest cells.

Milvus indexes sealed segments; rows still in a growing segment are searched by brute force, so
the approximation shows on collections of more than a segment's rows.

>>> MilvusIndex.coerce("HNSW")
MilvusIndex(type='HNSW', M=16, efConstruction=200, ef=64)
>>> MilvusIndex.coerce({"type": "IVF_FLAT", "nlist": 256}).build_params()
{'type': 'IVF_FLAT', 'nlist': 256}
>>> MilvusIndex.coerce(None).exact
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from rag_retrievers.errors import InvalidInputError

__all__ = ["IndexType", "MilvusIndex"]

IndexType = Literal["FLAT", "HNSW", "IVF_FLAT"]

#: per index type: its parameters (build-time first) and their defaults
_PARAMETERS: dict[str, dict[str, int]] = {
    "FLAT": {},
    "HNSW": {"M": 16, "efConstruction": 200, "ef": 64},
    "IVF_FLAT": {"nlist": 128, "nprobe": 16},
}
#: parameters a search sets: not part of what the collection records
_SEARCH = ("ef", "nprobe")
#: allowed ranges (Milvus 2.3 to 2.6 accept these)
_RANGES: dict[str, tuple[int, int]] = {
    "M": (2, 2048),
    "efConstruction": (1, 2**31 - 1),
    "ef": (1, 32768),
    "nlist": (1, 65536),
    "nprobe": (1, 65536),
}


@dataclass(frozen=True, repr=False)
class MilvusIndex:
    """How a dense vector field is indexed and searched. Parameters another type does not take
    are refused; those left out get the defaults (HNSW: ``M=16, efConstruction=200, ef=64``;
    IVF_FLAT: ``nlist=128, nprobe=16``, or ``nlist`` if smaller)."""

    type: IndexType = "FLAT"
    M: int | None = None
    efConstruction: int | None = None
    ef: int | None = None
    nlist: int | None = None
    nprobe: int | None = None

    def __post_init__(self) -> None:
        if self.type not in get_args(IndexType):
            raise InvalidInputError(
                f"index type must be one of {', '.join(get_args(IndexType))}, got {self.type!r}"
            )
        allowed = _PARAMETERS[self.type]
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if field.name not in allowed:
                if value is not None:
                    takes = ", ".join(allowed) or "no parameters"
                    raise InvalidInputError(
                        f"index {self.type} takes {takes}, not {field.name}={value!r}"
                    )
                continue
            if value is None:
                default = allowed[field.name]
                if field.name == "nprobe":  # never more cells than there are
                    default = min(default, self.nlist or default)
                object.__setattr__(self, field.name, default)
                continue
            low, high = _RANGES[field.name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInputError(
                    f"index {self.type}: {field.name} must be an int in {low}..{high}, "
                    f"got {value!r}"
                )
        if self.type == "IVF_FLAT" and (self.nprobe or 0) > (self.nlist or 0):
            raise InvalidInputError(
                f"index IVF_FLAT: nprobe ({self.nprobe}) cannot exceed nlist ({self.nlist})"
            )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"MilvusIndex(type={self.type!r}{', ' if params else ''}{params})"

    @classmethod
    def coerce(cls, value: object) -> MilvusIndex:
        """``value`` as an index: ``None`` (FLAT), a type name (``"HNSW"``), a mapping with
        ``type`` and parameters (``{"type": "HNSW", "M": 32, "ef": 128}``) or an index."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(value.upper())  # type: ignore[arg-type]
        if isinstance(value, Mapping):
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(str(key) for key in value if key not in names)
            if unknown:
                raise InvalidInputError(
                    f"index takes {', '.join(sorted(names))}; unknown: {', '.join(unknown)}"
                )
            fields = dict(value)
            if isinstance(fields.get("type"), str):
                fields["type"] = fields["type"].upper()
            return cls(**fields)
        raise InvalidInputError(
            "index must be None, an index type name (FLAT, HNSW, IVF_FLAT), a mapping such as "
            f"{{'type': 'HNSW', 'M': 16}} or a MilvusIndex, got {value!r}"
        )

    @property
    def exact(self) -> bool:
        """Whether searches score every vector (``FLAT``)."""
        return self.type == "FLAT"

    def params(self) -> dict[str, int]:
        """Every parameter of this type, build and search."""
        return {name: getattr(self, name) for name in _PARAMETERS[self.type]}

    def build_params(self) -> dict[str, Any]:
        """What builds the index: the type and its build parameters (recorded with the
        collection; another value on an existing field is refused)."""
        build = {k: v for k, v in self.params().items() if k not in _SEARCH}
        return {"type": self.type, **build}

    def index_params(self) -> dict[str, int]:
        """The ``params`` of Milvus's ``add_index``."""
        return {k: v for k, v in self.params().items() if k not in _SEARCH}

    def search_params(self, k: int) -> dict[str, int]:
        """The ``params`` of a Milvus search for ``k`` hits (HNSW's ``ef`` at least ``k``)."""
        if self.type == "HNSW":
            return {"ef": max(int(self.ef or 0), k)}
        if self.type == "IVF_FLAT":
            return {"nprobe": int(self.nprobe or 0)}
        return {}
