"""Typed records that flow through the package: Document in, Hit out, Answer from generation.

Each converts losslessly to and from ``langchain_core.documents.Document`` (id, page_content,
metadata), the shape LangChain apps already hold.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rag_retrievers.errors import InvalidDocumentError

if TYPE_CHECKING:
    from langchain_core.documents import Document as LCDocument

#: the types a metadata value (or an element of a list value) may have
METADATA_SCALARS = (str, int, float, bool, type(None))
_SCALARS = METADATA_SCALARS


def _check_encodable(where: str, text: str) -> None:
    """Refuse a lone surrogate (``"\\ud800"``): it cannot be written as UTF-8, so a collection
    holding one could never be saved."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")  # a C loop: far faster than a regular expression
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{where} holds a lone surrogate {text[exc.start]!a} at position {exc.start}, "
            "which is not valid Unicode and cannot be saved as UTF-8"
        ) from None


def _check_metadata_value(key: str, value: Any) -> None:
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"metadata[{key!r}] must be finite, got {v!r}")
        if isinstance(v, str):
            _check_encodable(f"metadata[{key!r}]", v)
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        return
    raise ValueError(
        f"metadata[{key!r}] must be a str, int, float, bool, None or a list of those "
        f"(JSON-storable and filterable), got {type(value).__name__}"
    )


class Document(BaseModel):
    """A unit of text to retrieve, with a caller-chosen id and filterable metadata.

    >>> doc = Document(id="d1", text="BM25 is a ranking function.", metadata={"year": 1994})
    >>> Document.from_langchain(doc.to_langchain()) == doc
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, strict=True)
    text: str = Field(strict=True)
    metadata: dict[str, Any] = Field(default_factory=dict)

    if not TYPE_CHECKING:  # type checkers keep pydantic's signature, with its field names

        def __init__(self, **data: Any) -> None:
            # our error, on one line, instead of pydantic's multi-line ValidationError
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise InvalidDocumentError(_first_error(exc)) from None

    @model_validator(mode="before")
    @classmethod
    def _is_encodable(cls, data: Any) -> Any:
        # before pydantic's own check, which reports a surrogate as "unable to parse raw data"
        if isinstance(data, dict):
            for name in ("id", "text"):
                value = data.get(name)
                if isinstance(value, str):
                    _check_encodable(name, value)
        return data

    @field_validator("metadata")
    @classmethod
    def _metadata_is_storable(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        for key, value in metadata.items():
            if not isinstance(key, str) or not key or key.startswith("$"):
                raise ValueError(
                    f"metadata keys must be non-empty strings not starting with '$', got {key!r}"
                )
            _check_encodable(f"metadata key {key!a}", key)
            _check_metadata_value(key, value)
        return metadata

    @classmethod
    def coerce(cls, value: Document | dict[str, Any] | LCDocument) -> Document:
        """Accept a Document, a ``{"id", "text", "metadata"}`` dict or a LangChain Document."""
        if isinstance(value, Document):
            return value
        try:
            if isinstance(value, dict):
                return cls.model_validate(value)
        except ValidationError as exc:
            raise InvalidDocumentError(_first_error(exc)) from None
        if type(value).__name__ == "Document" and hasattr(value, "page_content"):
            return cls.from_langchain(value)
        raise InvalidDocumentError(
            f"expected a Document, a dict or a langchain Document, got {type(value).__name__}"
        )

    def to_langchain(self) -> LCDocument:
        from langchain_core.documents import Document as LCDocument

        return LCDocument(id=self.id, page_content=self.text, metadata=_copy(self.metadata))

    @classmethod
    def from_langchain(cls, doc: LCDocument) -> Document:
        if not doc.id:
            raise InvalidDocumentError(
                "a langchain Document needs an id to be indexed: set Document(id=...)"
            )
        return cls(id=doc.id, text=doc.page_content, metadata=dict(doc.metadata))


class Hit(BaseModel):
    """One ranked result: ``rank`` starts at 1; ``score`` is comparable within one search."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    score: float
    rank: int = Field(ge=1)
    document: Document | None = None
    source: str = ""

    def to_langchain(self) -> LCDocument:
        """The hit's document with ``score``, ``rank`` and ``retriever`` added to its metadata."""
        from langchain_core.documents import Document as LCDocument

        doc = self.document
        metadata = _copy(doc.metadata) if doc else {}
        metadata.update(score=self.score, rank=self.rank, retriever=self.source)
        return LCDocument(id=self.id, page_content=doc.text if doc else "", metadata=metadata)


class MemberRank(BaseModel):
    """Where one member ranked a fused document: 1-based ``rank`` and the member's ``score``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int
    score: float


class FusedHit(Hit):
    """A fused hit: a :class:`Hit` plus the members that found it, keyed by member name, and
    the members that failed on this query (only with ``on_error="skip"``)."""

    members: dict[str, MemberRank] = Field(default_factory=dict)
    failed: tuple[str, ...] = ()


class Answer(BaseModel):
    """A generated answer with the ids it cites and the contexts it was given.

    ``contexts`` are the hits in the order the model saw them numbered ([1] is the first);
    ``citations_from`` says where ``citations`` came from: ``"model"`` (the answer's own [n]
    markers), ``"overlap"`` (the model cited nothing; the passages holding most of the answer's
    words were cited for it) or ``None`` (no citations).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    citations: list[str] = Field(default_factory=list)
    contexts: list[Hit] = Field(default_factory=list)
    citations_from: Literal["model", "overlap"] | None = None


def _copy(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy a caller may change without changing the stored document (values are scalars or
    lists of scalars, so one level of list copies suffices)."""
    return {k: list(v) if isinstance(v, list) else v for k, v in metadata.items()}


def _first_error(exc: ValidationError) -> str:
    return f"invalid document: {validation_message(exc)}"


def validation_message(exc: ValidationError) -> str:
    """A pydantic error on one line: its first problem as ``field: message``, and how many more.

    >>> try:
    ...     Document.model_validate({"id": "a", "text": 5})
    ... except ValidationError as exc:
    ...     print(validation_message(exc))
    text: Input should be a valid string
    """
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return " ".join(str(exc).split())
    err = errors[0]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, InvalidDocumentError):  # Document.__init__ already said it in one line
        return str(cause).removeprefix("invalid document: ")
    # our validators' own words, without pydantic's "Value error, " prefix; they name the field
    # themselves where pydantic gives no location (a model validator)
    ours = err["type"] == "value_error" and cause is not None
    message = str(cause) if ours else err["msg"]
    where = ".".join(str(p) for p in err["loc"]) or ("" if ours else exc.title)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"{where + ': ' if where else ''}{message}{more}".split())
