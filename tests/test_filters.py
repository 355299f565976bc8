"""compile_filter: the MongoDB/Chroma filter dialect, its semantics and its errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rag_retrievers import BM25, Document, FilterError, InvalidInputError
from rag_retrievers.filters import compile_filter

DOC = {
    "year": 2020,
    "score": 0.5,
    "lang": "en",
    "draft": False,
    "tags": ["ir", "bm25"],
    "none": None,
}


def matches(spec: Any, metadata: dict[str, Any] = DOC) -> bool:
    return compile_filter(spec).matches(metadata)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # equality, implicit and explicit
        ({"year": 2020}, True),
        ({"year": 2021}, False),
        ({"year": 2020.0}, True),  # int and float compare as numbers
        ({"score": 0.5}, True),
        ({"lang": "en"}, True),
        ({"lang": "EN"}, False),  # case-sensitive
        ({"draft": False}, True),
        ({"none": None}, True),
        ({"year": {"$eq": 2020}}, True),
        ({"year": {"$eq": 1999}}, False),
        ({"year": {"$ne": 1999}}, True),
        ({"year": {"$ne": 2020}}, False),
        # $in / $nin
        ({"lang": {"$in": ["de", "en"]}}, True),
        ({"lang": {"$in": ["de", "fr"]}}, False),
        ({"lang": {"$in": []}}, False),
        ({"lang": {"$nin": ["de", "fr"]}}, True),
        ({"lang": {"$nin": ["en"]}}, False),
        ({"lang": {"$nin": []}}, True),
        ({"year": {"$in": (2019, 2020)}}, True),  # a tuple is a list too
        # ordering on numbers
        ({"year": {"$gt": 2019}}, True),
        ({"year": {"$gt": 2020}}, False),
        ({"year": {"$gte": 2020}}, True),
        ({"year": {"$gte": 2020.5}}, False),
        ({"year": {"$lt": 2021}}, True),
        ({"year": {"$lt": 2020}}, False),
        ({"year": {"$lte": 2020}}, True),
        ({"year": {"$lte": 2019}}, False),
        ({"score": {"$gt": 0.25, "$lt": 0.75}}, True),  # several operators on one field: AND
        ({"score": {"$gt": 0.25, "$lt": 0.4}}, False),
        ({"year": {"$eq": 2020, "$ne": 2020}}, False),
        # ordering on strings is lexicographic
        ({"lang": {"$gte": "de"}}, True),
        ({"lang": {"$lt": "de"}}, False),
        # implicit AND of several keys
        ({"year": 2020, "lang": "en"}, True),
        ({"year": 2020, "lang": "de"}, False),
        # $and / $or, nested
        ({"$and": [{"year": 2020}, {"lang": "en"}]}, True),
        ({"$and": [{"year": 2020}, {"lang": "de"}]}, False),
        ({"$or": [{"year": 1999}, {"lang": "en"}]}, True),
        ({"$or": [{"year": 1999}, {"lang": "de"}]}, False),
        ({"$or": [{"$and": [{"year": 2020}, {"draft": True}]}, {"tags": "ir"}]}, True),
        ({"$and": [{"$or": [{"year": 1}, {"year": 2}]}, {"lang": "en"}]}, False),
        ({"$or": [{"year": 1999}], "lang": "en"}, False),  # $or AND-ed with a field
        ({"$or": [{"year": 2020}], "lang": "en"}, True),
    ],
)
def test_semantics(spec: dict[str, Any], expected: bool) -> None:
    assert matches(spec) is expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"tags": "ir"}, True),  # any element equals
        ({"tags": "dense"}, False),
        ({"tags": {"$in": ["dense", "bm25"]}}, True),
        ({"tags": {"$in": ["dense", "colbert"]}}, False),
        ({"tags": {"$ne": "ir"}}, False),  # negations hold for every element
        ({"tags": {"$ne": "dense"}}, True),
        ({"tags": {"$nin": ["bm25"]}}, False),
        ({"tags": {"$nin": ["dense", "colbert"]}}, True),
        ({"tags": {"$gt": "c"}}, True),  # "ir" > "c"
        ({"tags": {"$lt": "a"}}, False),
    ],
)
def test_list_valued_fields_match_any_element(spec: dict[str, Any], expected: bool) -> None:
    assert matches(spec) is expected


def test_empty_list_field() -> None:
    md = {"tags": []}
    assert matches({"tags": "ir"}, md) is False
    assert matches({"tags": {"$in": ["ir"]}}, md) is False
    assert matches({"tags": {"$ne": "ir"}}, md) is True
    assert matches({"tags": {"$nin": ["ir"]}}, md) is True


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"missing": 1}, False),
        ({"missing": {"$eq": "x"}}, False),
        ({"missing": {"$in": [1, 2]}}, False),
        ({"missing": {"$gt": 0}}, False),
        ({"missing": {"$lte": 0}}, False),
        ({"missing": {"$ne": 1}}, True),  # MongoDB: a missing field is "not equal"
        ({"missing": {"$nin": [1, 2]}}, True),
        ({"$or": [{"missing": 1}, {"year": 2020}]}, True),
    ],
)
def test_missing_fields(spec: dict[str, Any], expected: bool) -> None:
    assert matches(spec) is expected


@pytest.mark.parametrize(
    ("spec", "metadata", "expected"),
    [
        # bool is not a number, and a number is not a bool
        ({"flag": 1}, {"flag": True}, False),
        ({"flag": True}, {"flag": 1}, False),
        ({"flag": 0}, {"flag": False}, False),
        ({"flag": {"$in": [1, 0]}}, {"flag": True}, False),
        ({"flag": {"$gt": 0}}, {"flag": True}, False),
        ({"flag": {"$gte": False}}, {"flag": False}, False),
        ({"n": {"$lt": True}}, {"n": 0}, False),
        ({"flag": {"$ne": 1}}, {"flag": True}, True),
        ({"flag": True}, {"flag": True}, True),
        # strings are not numbers
        ({"n": "3"}, {"n": 3}, False),
        ({"n": 3}, {"n": "3"}, False),
        ({"n": {"$lt": 5}}, {"n": "3"}, False),
        ({"n": {"$gt": "1"}}, {"n": 3}, False),
        ({"n": {"$in": ["3"]}}, {"n": 3}, False),
        ({"n": {"$nin": ["3"]}}, {"n": 3}, True),
        # None equals only None and is not ordered
        ({"n": None}, {"n": 0}, False),
        ({"n": 0}, {"n": None}, False),
        ({"n": {"$gt": 0}}, {"n": None}, False),
        ({"n": {"$lt": 0}}, {"n": None}, False),
        # mixed-type $in works element by element
        ({"n": {"$in": [1, "a"]}}, {"n": "a"}, True),
        ({"n": {"$in": [1, "a"]}}, {"n": 1.0}, True),
    ],
)
def test_type_mismatches_never_match(
    spec: dict[str, Any], metadata: dict[str, Any], expected: bool
) -> None:
    assert matches(spec, metadata) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"year": {"$regex": "20.*"}}, r"unknown operator '\$regex'; valid operators: \$eq, \$gt"),
        ({"year": {"$exists": True}}, "unknown operator"),
        ({"$not": {"year": 2020}}, r"unknown operator '\$not'"),
        ({"$nor": [{"year": 2020}]}, "unknown operator"),
        ({"year": {"gt": 3}}, "unknown operator 'gt'"),  # operators need their '$'
    ],
)
def test_unknown_operator(spec: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(spec)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        [],
        None,
        "year",
        42,
        [{"year": 2020}],
        {1: 2},
        {"year": {}},
        {"$and": []},
        {"$and": {"year": 2020}},
        {"$or": "year"},
        {"$or": [{}]},
        {"$or": [{"year": 2020}, "lang"]},
        {"$and": [{"$or": []}]},
        {"year": {"$in": 2020}},
        {"year": {"$in": "2020"}},
        {"year": {"$nin": None}},
        {"year": {"$in": [[2020]]}},
        {"year": {"$in": [{"a": 1}]}},
        {"year": {"$gt": [2020]}},
        {"year": {"$eq": {"a": 1}}},
        {"year": [2020, 2021]},  # equality takes a scalar; lists go through $in
    ],
)
def test_malformed_filters(spec: Any) -> None:
    with pytest.raises(FilterError):
        compile_filter(spec)


def test_filter_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="non-empty dict"):
        compile_filter({})
    assert issubclass(FilterError, InvalidInputError)


def test_unknown_field_names_known_fields() -> None:
    with pytest.raises(FilterError, match="unknown metadata field 'yaer'") as info:
        compile_filter({"yaer": 2020}, known_fields=["year", "lang", "tags"])
    assert "known fields: lang, tags, year" in str(info.value)

    # fields inside $and / $or are checked too
    with pytest.raises(FilterError, match="'colour'"):
        compile_filter({"$or": [{"year": 1}, {"$and": [{"colour": "red"}]}]}, known_fields=["year"])

    with pytest.raises(FilterError, match="no document has metadata"):
        compile_filter({"year": 2020}, known_fields=[])

    # known fields pass, and None means "don't check"
    assert compile_filter({"year": 1, "lang": "en"}, known_fields={"year", "lang"}).fields == {
        "year",
        "lang",
    }
    assert compile_filter({"anything": 1}, known_fields=None).matches({"anything": 1})


def test_mask_over_many_documents_skips_deleted_slots() -> None:
    metadatas = [{"year": 2020}, None, {"year": 2021}, {}, {"year": 2020, "lang": "en"}]
    mask = compile_filter({"year": 2020}).mask(metadatas)
    assert mask.dtype == np.bool_
    assert mask.tolist() == [True, False, False, False, True]
    # a deleted slot never matches, not even a negation
    assert compile_filter({"year": {"$ne": 1}}).mask(metadatas).tolist() == [
        True,
        False,
        True,
        True,
        True,
    ]
    assert compile_filter({"year": 1}).mask([]).tolist() == []


def test_compiled_filter_is_a_comparable_value() -> None:
    spec = {"year": {"$gte": 2020}, "$or": [{"lang": "en"}, {"tags": {"$in": ["ir"]}}]}
    assert compile_filter(spec) == compile_filter(spec)
    assert hash(compile_filter(spec)) == hash(compile_filter(spec))
    assert compile_filter(spec).fields == {"year", "lang", "tags"}


def test_filters_through_bm25_search() -> None:
    bm25 = BM25()
    bm25.add(
        [
            Document(id="a", text="sparse retrieval", metadata={"year": 2020, "tags": ["ir"]}),
            Document(id="b", text="sparse retrieval models", metadata={"year": 2022}),
            Document(id="c", text="sparse retrieval evaluation", metadata={"lang": "en"}),
        ]
    )
    ids = lambda spec: sorted(h.id for h in bm25.search("sparse retrieval", k=10, filter=spec))  # noqa: E731
    assert ids({"year": {"$gte": 2021}}) == ["b"]
    assert ids({"year": {"$ne": 2020}}) == ["b", "c"]
    assert ids({"tags": "ir"}) == ["a"]
    assert ids({"$or": [{"lang": "en"}, {"year": 2020}]}) == ["a", "c"]
    with pytest.raises(FilterError, match="known fields: lang, tags, year"):
        bm25.search("sparse", filter={"author": "x"})
    bm25.delete(["c"])  # no live document has "lang" any more
    with pytest.raises(FilterError, match="known fields: tags, year"):
        bm25.search("sparse", filter={"lang": "en"})
