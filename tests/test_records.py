"""Document, Hit and Answer: validation and the lossless LangChain round trip."""

from __future__ import annotations

import math
from typing import Any

import pytest
from langchain_core.documents import Document as LCDocument
from pydantic import ValidationError

from rag_retrievers import (
    BM25,
    Answer,
    Document,
    Hit,
    InvalidDocumentError,
    InvalidInputError,
    RagRetrieversError,
)

METADATA = {
    "year": 2020,
    "score": 0.25,
    "lang": "en",
    "draft": False,
    "missing": None,
    "tags": ["ir", "bm25"],
    "mixed": [1, 2.5, "x", True, None],
    "empty": [],
    "unicode": "naïve café ✓",
}


# -- validation ---------------------------------------------------------------------------------


def test_a_valid_document() -> None:
    doc = Document(id="d1", text="text", metadata=METADATA)
    assert (doc.id, doc.text, doc.metadata) == ("d1", "text", METADATA)
    assert Document(id="d2", text="").metadata == {}  # empty text is allowed, metadata optional


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "", "text": "x"},
        {"text": "x"},
        {"id": None, "text": "x"},
        {"id": 7, "text": "x"},
        {"id": "a"},
        {"id": "a", "text": None},
        {"id": "a", "text": 5},
        {"id": "a", "text": ["x"]},
        {"id": "a", "text": "x", "metadata": {"nested": {"a": 1}}},
        {"id": "a", "text": "x", "metadata": {"nested": [1, [2]]}},
        {"id": "a", "text": "x", "metadata": {"nested": [{"a": 1}]}},
        {"id": "a", "text": "x", "metadata": {"nan": math.nan}},
        {"id": "a", "text": "x", "metadata": {"inf": math.inf}},
        {"id": "a", "text": "x", "metadata": {"neg_inf": -math.inf}},
        {"id": "a", "text": "x", "metadata": {"bytes": b"x"}},
        {"id": "a", "text": "x", "metadata": {"": 1}},
        {"id": "a", "text": "x", "metadata": {"$op": 1}},
        {"id": "a", "text": "x", "metadata": {1: "x"}},
        {"id": "a", "text": "x", "metadata": "year=2020"},
        {"id": "a", "text": "x", "page_content": "x"},  # unknown fields are refused
    ],
)
def test_invalid_documents(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        Document(**fields)
    # through coerce (the path add() takes) the error is ours and says what is wrong
    with pytest.raises(InvalidDocumentError, match="invalid document"):
        Document.coerce(fields)


@pytest.mark.parametrize("fields", [{"id": "a", "text": b"bytes"}, {"id": b"a", "text": "x"}])
def test_bytes_are_not_strings(fields: dict[str, Any]) -> None:
    """A document "has non-string text" (errors.InvalidDocumentError) when given bytes; pydantic's
    lax mode must not decode them silently (metadata already refuses bytes)."""
    with pytest.raises(InvalidDocumentError):
        Document.coerce(fields)


@pytest.mark.parametrize("value", [[1.0, math.nan], [math.inf], ["a", -math.inf]])
def test_non_finite_numbers_inside_list_metadata_are_refused(value: list[Any]) -> None:
    """The finiteness rule holds for list elements too: otherwise NaN is written to
    documents.jsonl as the non-JSON token ``NaN`` and never equals itself in a filter."""
    with pytest.raises(InvalidDocumentError, match="must be finite"):
        Document.coerce({"id": "a", "text": "x", "metadata": {"values": value}})


def test_nan_is_reported_by_name() -> None:
    with pytest.raises(InvalidDocumentError, match=r"metadata\['ratio'\] must be finite"):
        Document.coerce({"id": "a", "text": "x", "metadata": {"ratio": math.nan}})
    with pytest.raises(InvalidDocumentError, match=r"metadata\['deep'\].*got dict"):
        Document.coerce({"id": "a", "text": "x", "metadata": {"deep": {"x": 1}}})


def test_documents_are_frozen_values() -> None:
    doc = Document(id="a", text="x", metadata={"k": 1})
    with pytest.raises(ValidationError):
        doc.text = "y"  # type: ignore[misc]
    assert doc == Document(id="a", text="x", metadata={"k": 1})
    assert doc != Document(id="a", text="x", metadata={"k": 2})


def test_invalid_document_error_is_in_our_hierarchy() -> None:
    assert issubclass(InvalidDocumentError, InvalidInputError)
    assert issubclass(InvalidDocumentError, RagRetrieversError)
    assert issubclass(InvalidDocumentError, ValueError)


# -- LangChain round trip -----------------------------------------------------------------------


def test_round_trip_through_langchain_is_lossless() -> None:
    doc = Document(id="d1", text="Reciprocal rank fusion.\n  Two lines.", metadata=METADATA)
    lc = doc.to_langchain()
    assert isinstance(lc, LCDocument)
    assert (lc.id, lc.page_content, lc.metadata) == ("d1", doc.text, METADATA)
    back = Document.from_langchain(lc)
    assert back == doc
    assert back.metadata == METADATA
    assert type(back.metadata["year"]) is int
    assert type(back.metadata["score"]) is float
    assert back.metadata["draft"] is False

    # and from the LangChain side
    original = LCDocument(id="x", page_content="text", metadata={"a": [1, "b"], "n": None})
    assert Document.from_langchain(original).to_langchain() == original
    assert Document.coerce(original).to_langchain() == original


def test_langchain_conversion_copies_metadata() -> None:
    doc = Document(id="d1", text="t", metadata={"k": 1})
    lc = doc.to_langchain()
    lc.metadata["k"] = 2
    lc.metadata["new"] = True
    assert doc.metadata == {"k": 1}

    lc = LCDocument(id="d2", page_content="t", metadata={"k": 1})
    ours = Document.from_langchain(lc)
    lc.metadata["k"] = 3
    assert ours.metadata == {"k": 1}


def test_langchain_document_without_id_is_refused() -> None:
    with pytest.raises(InvalidDocumentError, match="needs an id"):
        Document.from_langchain(LCDocument(page_content="no id"))
    with pytest.raises(InvalidDocumentError, match="needs an id"):
        Document.coerce(LCDocument(page_content="no id", metadata={"a": 1}))
    with pytest.raises(InvalidDocumentError, match="needs an id"):
        Document.coerce(LCDocument(id="", page_content="empty id"))


def test_langchain_document_with_unstorable_metadata_is_refused() -> None:
    lc = LCDocument(id="a", page_content="t", metadata={"source": {"url": "http://x"}})
    with pytest.raises(InvalidDocumentError, match="metadata"):
        Document.coerce(lc)


# -- coerce -------------------------------------------------------------------------------------


def test_coerce_accepts_the_three_shapes() -> None:
    doc = Document(id="a", text="t", metadata={"k": "v"})
    assert Document.coerce(doc) is doc
    assert Document.coerce({"id": "a", "text": "t", "metadata": {"k": "v"}}) == doc
    assert Document.coerce({"id": "a", "text": "t"}) == Document(id="a", text="t")
    assert Document.coerce(doc.to_langchain()) == doc


@pytest.mark.parametrize("value", [None, 5, "just text", ["a", "t"], ("a", "t"), object(), 1.5])
def test_coerce_of_wrong_type(value: Any) -> None:
    with pytest.raises(InvalidDocumentError, match="expected a Document, a dict or a langchain"):
        Document.coerce(value)


def test_bad_documents_never_reach_the_index() -> None:
    bm25 = BM25()
    bm25.add([Document(id="keep", text="kept text")])
    with pytest.raises(InvalidDocumentError):
        bm25.add([{"id": "new", "text": "fine"}, {"id": "bad", "text": "x", "metadata": {"d": {}}}])
    with pytest.raises(InvalidDocumentError):
        bm25.add([LCDocument(page_content="no id")])
    with pytest.raises(InvalidDocumentError):
        bm25.add([42])  # type: ignore[list-item]
    assert len(bm25) == 1
    assert bm25.search("fine text", k=5)[0].id == "keep"


# -- Hit and Answer -----------------------------------------------------------------------------


def test_hit_to_langchain_puts_score_rank_and_retriever_in_metadata() -> None:
    doc = Document(id="d1", text="body", metadata={"year": 2020, "tags": ["a"]})
    hit = Hit(id="d1", score=3.25, rank=2, document=doc, source="bm25")
    lc = hit.to_langchain()
    assert lc.id == "d1"
    assert lc.page_content == "body"
    assert lc.metadata == {
        "year": 2020,
        "tags": ["a"],
        "score": 3.25,
        "rank": 2,
        "retriever": "bm25",
    }
    assert doc.metadata == {"year": 2020, "tags": ["a"]}  # the document is not changed

    bare = Hit(id="x", score=0.5, rank=1).to_langchain()
    assert (bare.id, bare.page_content) == ("x", "")
    assert bare.metadata == {"score": 0.5, "rank": 1, "retriever": ""}


def test_hits_from_bm25_convert_to_langchain() -> None:
    bm25 = BM25()
    bm25.add([Document(id="a", text="sparse retrieval", metadata={"k": 1})])
    (hit,) = bm25.search("retrieval")
    lc = hit.to_langchain()
    assert lc.metadata["retriever"] == "bm25"
    assert lc.metadata["rank"] == 1
    assert lc.metadata["score"] == pytest.approx(hit.score)
    assert lc.metadata["k"] == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "a", "score": 1.0, "rank": 0},
        {"id": "a", "score": 1.0, "rank": -1},
        {"id": "a", "score": "high", "rank": 1},
        {"id": "a", "score": 1.0, "rank": 1, "extra": 1},
    ],
)
def test_invalid_hits(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Hit(**fields)


def test_answer() -> None:
    hit = Hit(id="d1", score=1.0, rank=1, document=Document(id="d1", text="ctx"), source="bm25")
    answer = Answer(text="42", citations=["d1"], contexts=[hit])
    assert answer.contexts[0].document.text == "ctx"
    assert Answer(text="none") == Answer(text="none", citations=[], contexts=[])
    assert Answer.model_validate_json(answer.model_dump_json()) == answer
    with pytest.raises(ValidationError):
        Answer(text="x", unknown=1)
    with pytest.raises(ValidationError):
        answer.text = "changed"  # type: ignore[misc]
