"""Metadata filters in the MongoDB/Chroma dialect, parsed once and evaluated per document.

``{"year": 2020}`` is equality; operators are ``$eq $ne $in $nin $gt $gte $lt $lte`` on a field and
``$and $or`` over a list of filters; several keys in one dict are AND-ed. A list-valued metadata
field matches when any of its elements does, as in MongoDB.

Operands are ``str``, ``int``, ``float`` (finite: NaN and infinities are refused), ``bool`` or
``None``. Numbers compare with numbers (``1`` equals ``1.0``), but a bool is never a number:
``{"n": 1}`` does not match ``True``. Filters nest at most :data:`MAX_FILTER_DEPTH` dicts deep.
"""

from __future__ import annotations

import math
import operator
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag_retrievers.errors import FilterError
from rag_retrievers.records import METADATA_SCALARS as _SCALARS

Filter = Mapping[str, Any]

#: how many dicts deep a filter may nest (``{"$and": [{"$or": [...]}]}`` is 3 with the leaf)
MAX_FILTER_DEPTH = 32

_MISSING = object()

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = 6


def _show(value: Any) -> str:
    """A short repr for messages, safe for values nested too deeply for ``repr``."""
    return _SHORT.repr(value)


def _kind(value: Any) -> str | None:
    """The comparison class of a scalar: values of different kinds are never equal."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return None


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(value: Any, operand: Any) -> bool:
        # Only like with like: numbers with numbers, strings with strings; never bool as number.
        if isinstance(value, bool) or isinstance(operand, bool):
            return False
        if isinstance(value, int | float) and isinstance(operand, int | float):
            return op(value, operand)
        if isinstance(value, str) and isinstance(operand, str):
            return op(value, operand)
        return False

    return compare


def _equal(value: Any, operand: Any) -> bool:
    kind = _kind(value)
    return kind is not None and kind == _kind(operand) and bool(value == operand)


def _typed(operand: Any) -> Any:
    """``operand`` tagged with its kind: equal typed forms mean equal results in every filter
    (Python's ``1 == True`` and ``hash(1) == hash(True)`` must not make two filters one)."""
    if isinstance(operand, tuple):
        return tuple((_kind(x), x) for x in operand)
    return (_kind(operand), operand)


_FIELD_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _equal,
    "$ne": lambda v, o: not _equal(v, o),
    "$in": lambda v, o: any(_equal(v, x) for x in o),
    "$nin": lambda v, o: not any(_equal(v, x) for x in o),
    "$gt": _ordered(operator.gt),
    "$gte": _ordered(operator.ge),
    "$lt": _ordered(operator.lt),
    "$lte": _ordered(operator.le),
}
_NEGATIVE = {"$ne", "$nin"}
_LOGICAL = ("$and", "$or")


@dataclass(frozen=True, eq=False)
class _Condition:
    field: str
    op: str
    operand: Any

    # equality and hash by the typed operand: CompiledFilter keys caches (DocumentStore's masks)
    def _key(self) -> tuple[str, str, Any]:
        return (self.field, self.op, _typed(self.operand))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Condition):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        value = metadata.get(self.field, _MISSING)
        test = _FIELD_OPS[self.op]
        if value is _MISSING:
            return self.op in _NEGATIVE
        if isinstance(value, list):
            if self.op in _NEGATIVE:
                return all(test(v, self.operand) for v in value)
            return any(test(v, self.operand) for v in value)
        return test(value, self.operand)


@dataclass(frozen=True)
class CompiledFilter:
    """A validated filter: ``matches(metadata)`` for one document, ``mask(...)`` for many.

    A value: two compiled filters are equal (and hash alike) only when they match the same
    documents by construction, operand types included (``{"n": 1}`` vs ``{"n": True}``).
    """

    kind: str  # "and" | "or" | "cond"
    children: tuple[CompiledFilter, ...] = ()
    condition: _Condition | None = None

    @property
    def fields(self) -> frozenset[str]:
        if self.condition is not None:
            return frozenset({self.condition.field})
        return frozenset().union(*(c.fields for c in self.children))

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        if self.condition is not None:
            return self.condition.matches(metadata)
        results = (c.matches(metadata) for c in self.children)
        return all(results) if self.kind == "and" else any(results)

    def mask(self, metadatas: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
        """Boolean array: which of ``metadatas`` match (``None`` marks a deleted slot)."""
        return np.fromiter(
            (m is not None and self.matches(m) for m in metadatas), dtype=bool, count=len(metadatas)
        )


def compile_filter(spec: Filter, known_fields: Iterable[str] | None = None) -> CompiledFilter:
    """Validate ``spec`` and return its compiled form.

    Raises :class:`FilterError` for a malformed filter, an unknown operator, a non-finite
    number, nesting deeper than :data:`MAX_FILTER_DEPTH` or, when ``known_fields`` is given, a
    field that no indexed document has.

    >>> compile_filter({"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}}).matches(
    ...     {"year": 2021, "lang": "en"})
    True
    """
    compiled = _compile(spec, path="filter", depth=1)
    if known_fields is not None:
        known = set(known_fields)
        unknown = sorted(compiled.fields - known)
        if unknown:
            raise FilterError(
                f"unknown metadata field {unknown[0]!r} in filter; "
                f"known fields: {', '.join(sorted(known)) or '(none: no document has metadata)'}"
            )
    return compiled


def _compile(spec: Any, path: str, depth: int) -> CompiledFilter:
    # the depth is checked before recursing, so no filter can exhaust Python's stack
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(
            f"filter nests more than {MAX_FILTER_DEPTH} levels of $and/$or; "
            f"flatten it (several keys in one dict are AND-ed, $in lists alternatives)"
        )
    if not isinstance(spec, Mapping) or not spec:
        raise FilterError(f"{path} must be a non-empty dict, got {_show(spec)}")
    parts: list[CompiledFilter] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise FilterError(f"{path}: keys must be strings, got {_show(key)}")
        if key in _LOGICAL:
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(f"{path}.{key} must be a non-empty list of filters")
            children = tuple(
                _compile(v, f"{path}.{key}[{i}]", depth + 1) for i, v in enumerate(value)
            )
            parts.append(CompiledFilter(kind=key[1:], children=children))
        elif key.startswith("$"):
            raise FilterError(
                f"{path}: unknown operator {_show(key)}; "
                "at the top level use a field name, $and or $or"
            )
        else:
            parts.extend(_compile_field(key, value, f"{path}.{key}"))
    return parts[0] if len(parts) == 1 else CompiledFilter(kind="and", children=tuple(parts))


def _compile_field(field: str, value: Any, path: str) -> list[CompiledFilter]:
    if not isinstance(value, Mapping):
        value = {"$eq": value}
    if not value:
        raise FilterError(f"{path} must not be an empty dict")
    out = []
    for op, operand in value.items():
        if op not in _FIELD_OPS:
            raise FilterError(
                f"{path}: unknown operator {_show(op)}; "
                f"valid operators: {', '.join(sorted(_FIELD_OPS))}"
            )
        if op in ("$in", "$nin"):
            if not isinstance(operand, list | tuple | set | frozenset) or not all(
                isinstance(x, _SCALARS) for x in operand
            ):
                raise FilterError(f"{path}.{op} takes a list of scalars, got {_show(operand)}")
            operand = tuple(_scalar(x, f"{path}.{op}") for x in operand)
        elif not isinstance(operand, _SCALARS):
            raise FilterError(f"{path}.{op} takes a scalar, got {_show(operand)}")
        else:
            operand = _scalar(operand, f"{path}.{op}")
        out.append(CompiledFilter(kind="cond", condition=_Condition(field, op, operand)))
    return out


def _scalar(value: Any, path: str) -> Any:
    """A filter operand as its plain type (a numpy float or str subclass as float/str), finite."""
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{path}: numbers in filters must be finite, got {value!r}")
    if value is None or isinstance(value, bool):
        return value
    for plain in (int, float, str):
        if isinstance(value, plain):
            return plain(value)
    return value
