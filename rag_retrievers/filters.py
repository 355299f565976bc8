"""Metadata filters in the MongoDB/Chroma dialect, parsed once and evaluated per document.

``{"year": 2020}`` is equality; operators are ``$eq $ne $in $nin $gt $gte $lt $lte`` on a field and
``$and $or`` over a list of filters; several keys in one dict are AND-ed. A list-valued metadata
field matches when any of its elements does, as in MongoDB.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag_retrievers.errors import FilterError
from rag_retrievers.records import METADATA_SCALARS as _SCALARS

Filter = Mapping[str, Any]

_MISSING = object()


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
    numbers = isinstance(value, int | float) and isinstance(operand, int | float)
    if numbers and not isinstance(value, bool) and not isinstance(operand, bool):
        return value == operand
    return type(value) is type(operand) and value == operand


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


@dataclass(frozen=True)
class _Condition:
    field: str
    op: str
    operand: Any

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
    """A validated filter: ``matches(metadata)`` for one document, ``mask(...)`` for many."""

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

    Raises :class:`FilterError` for a malformed filter, an unknown operator or, when
    ``known_fields`` is given, a field that no indexed document has.

    >>> compile_filter({"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}}).matches(
    ...     {"year": 2021, "lang": "en"})
    True
    """
    compiled = _compile(spec, path="filter")
    if known_fields is not None:
        known = set(known_fields)
        unknown = sorted(compiled.fields - known)
        if unknown:
            raise FilterError(
                f"unknown metadata field {unknown[0]!r} in filter; "
                f"known fields: {', '.join(sorted(known)) or '(none: no document has metadata)'}"
            )
    return compiled


def _compile(spec: Any, path: str) -> CompiledFilter:
    if not isinstance(spec, Mapping) or not spec:
        raise FilterError(f"{path} must be a non-empty dict, got {spec!r}")
    parts: list[CompiledFilter] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise FilterError(f"{path}: keys must be strings, got {key!r}")
        if key in _LOGICAL:
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(f"{path}.{key} must be a non-empty list of filters")
            children = tuple(_compile(v, f"{path}.{key}[{i}]") for i, v in enumerate(value))
            parts.append(CompiledFilter(kind=key[1:], children=children))
        elif key.startswith("$"):
            raise FilterError(
                f"{path}: unknown operator {key!r}; at the top level use a field name, $and or $or"
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
                f"{path}: unknown operator {op!r}; valid operators: {', '.join(sorted(_FIELD_OPS))}"
            )
        if op in ("$in", "$nin"):
            if not isinstance(operand, list | tuple | set | frozenset) or not all(
                isinstance(x, _SCALARS) for x in operand
            ):
                raise FilterError(f"{path}.{op} takes a list of scalars, got {operand!r}")
            operand = tuple(operand)
        elif not isinstance(operand, _SCALARS):
            raise FilterError(f"{path}.{op} takes a scalar, got {operand!r}")
        out.append(CompiledFilter(kind="cond", condition=_Condition(field, op, operand)))
    return out
