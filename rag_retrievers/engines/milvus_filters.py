"""Our metadata filters as Milvus boolean expressions over the JSON field ``metadata``.

A :class:`~rag_retrievers.engines.milvus.MilvusStore` row keeps a document's metadata in one JSON
field; :func:`filter_expression` states a compiled filter over it, and says when the statement is
only a superset of what the filter matches (the caller then re-checks the hits).
"""

from __future__ import annotations

import json
import math
from typing import Any

from rag_retrievers.filters import CompiledFilter


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if math.isfinite(value) else "null"
    return json.dumps(value)  # strings: double quotes, backslash escapes


def filter_expression(
    filter: CompiledFilter, list_fields: frozenset[str] | set[str] = frozenset()
) -> tuple[str | None, bool]:
    """Our filter as a Milvus boolean expression over the JSON field ``metadata``.

    Returns ``(expression, exact)``: the expression selects every document the filter matches
    (``None``: no restriction), and ``exact`` says it selects no others. Conditions Milvus
    cannot state with our semantics become "no restriction" (``exact=False``): ranges on
    fields that hold lists (ours: any element in range), ``None`` operands, and bool operands
    (Milvus equates ``true`` with ``1``). Callers re-check hits when ``exact`` is false.

    >>> from rag_retrievers.filters import compile_filter
    >>> filter_expression(compile_filter({"year": {"$gte": 2020}, "topic": "bio"}))
    ('(metadata["year"] >= 2020 and (metadata["topic"] == "bio" or json_contains(metadata["topic"], "bio")))', True)
    """  # noqa: E501
    expression, exact = _expression(filter, frozenset(list_fields))
    return expression, exact


def _expression(node: CompiledFilter, list_fields: frozenset[str]) -> tuple[str | None, bool]:
    if node.condition is None:
        parts = [_expression(child, list_fields) for child in node.children]
        exact = all(e for _, e in parts)
        exprs = [x for x, _ in parts]
        if node.kind == "and":
            kept = [x for x in exprs if x is not None]
            return ("(" + " and ".join(kept) + ")" if kept else None), exact
        if any(x is None for x in exprs):  # one unrestricted branch: the OR is unrestricted
            return None, False
        return "(" + " or ".join(x for x in exprs if x is not None) + ")", exact
    cond = node.condition
    ref = f"metadata[{json.dumps(cond.field)}]"
    operands = cond.operand if isinstance(cond.operand, tuple) else (cond.operand,)
    if any(o is None or isinstance(o, bool) for o in operands):
        return None, False
    if cond.op in ("$eq", "$ne", "$in", "$nin"):
        # a list-valued field matches when an element does (MongoDB's rule, and ours)
        matches = " or ".join(
            f"{ref} == {_literal(o)} or json_contains({ref}, {_literal(o)})" for o in operands
        )
        if not operands:
            matches = "false"
        if cond.op in ("$eq", "$in"):
            return f"({matches})", True
        # ours: a document without the field matches $ne/$nin. `exists` in parentheses: Milvus
        # 2.3 parses `exists a or b` as `exists (a or b)` and refuses it
        return f"(not (exists {ref}) or not ({matches}))", True
    if cond.field in list_fields:
        return None, False
    symbol = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
    return f"{ref} {symbol} {_literal(cond.operand)}", True
