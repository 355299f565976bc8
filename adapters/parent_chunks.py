"""How :class:`~rag_retrievers.adapters.parent.Parent` cuts parents into chunks and puts
parents back together from chunks cut elsewhere: pure functions over documents.

>>> parent = Document(id="p", text="One sentence. Another one.", metadata={"page": 2})
>>> chunks = split_document(parent, lambda text: text.split(". "), overlap=0)
>>> [(c.id, c.text) for c in chunks]
[('p#0', 'One sentence'), ('p#1', 'Another one.')]
>>> chunks[1].metadata
{'page': 2, 'parent_id': 'p', 'start': 14, 'end': 26}
>>> print(assemble("p", chunks).text)  # the gap between two chunks: a newline
One sentence
Another one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from rag_retrievers.errors import InvalidInputError, MissingDependencyError
from rag_retrievers.records import Document

__all__ = [
    "SEPARATORS",
    "Splitter",
    "TextSplitter",
    "assemble",
    "builtin_splitter",
    "check_splitter",
    "split_document",
]

#: the built-in splitter's separators (regular expressions), coarsest first: paragraphs, lines,
#: sentence ends, words, characters
SEPARATORS = (r"\n\n", r"\n", r"(?<=[.!?])\s+", r"\s+", "")
#: metadata keys a chunk has of its own, not its parent's
_CHUNK_KEYS = ("parent_id", "start", "end")


@runtime_checkable
class TextSplitter(Protocol):
    """What a splitter offers: LangChain's ``TextSplitter.split_text``."""

    def split_text(self, text: str) -> list[str]: ...


Splitter = TextSplitter | Callable[[str], list[str]]


def check_splitter(splitter: object) -> None:
    """Refuse what is neither a ``TextSplitter`` nor a function (a str included)."""
    if isinstance(splitter, str) or not (isinstance(splitter, TextSplitter) or callable(splitter)):
        saved = isinstance(splitter, str) and splitter == "custom"
        raise InvalidInputError(
            "splitter must be a text splitter (with split_text) or a function str -> list[str], "
            f"got {splitter!r}"
            + (" (a config says 'custom' where code cannot be saved)" if saved else "")
            + ": pass the splitter itself"
        )


def builtin_splitter(chunk_size: int, chunk_overlap: int) -> TextSplitter:
    """The default splitter: LangChain's recursive splitter over :data:`SEPARATORS`, sizes in
    characters."""
    try:
        from langchain_text_splitters import RecursiveCharacterTextSplitter
    except ImportError:
        raise MissingDependencyError(
            "langchain-text-splitters (Parent's default splitter; or pass splitter=)", "ingest"
        ) from None
    return RecursiveCharacterTextSplitter(
        separators=list(SEPARATORS),
        is_separator_regex=True,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
    )


def _offsets(text: str, pieces: list[str], overlap: int) -> list[tuple[int, int] | None]:
    """Where each piece lies in ``text``, found left to right (``None`` if a splitter changed
    it); a piece starts at least ``len(previous) - overlap`` after the previous one."""
    spans: list[tuple[int, int] | None] = []
    cursor = previous = 0
    for piece in pieces:
        at = text.find(piece, cursor)
        if at < 0:
            at = text.find(piece, previous)
        if at < 0:
            spans.append(None)
            continue
        spans.append((at, at + len(piece)))
        previous, cursor = at + 1, max(at + 1, at + len(piece) - overlap)
    return spans


def split_document(document: Document, splitter: Splitter, *, overlap: int) -> list[Document]:
    """``document`` cut by ``splitter`` into chunks ``"{id}#0"``, ``"{id}#1"``...: the parent's
    metadata plus ``parent_id`` and the chunk's offsets ``start``/``end`` (shifted by the
    parent's own ``start``; left out where the chunk is not found in the text). Blank pieces
    are dropped; ``overlap`` is the most characters two pieces share (0 if unknown)."""
    pieces = (
        splitter.split_text(document.text)
        if isinstance(splitter, TextSplitter)
        else splitter(document.text)
    )
    if isinstance(pieces, str) or not isinstance(pieces, Iterable):
        raise InvalidInputError(
            f"the splitter returned {type(pieces).__name__} for {document.id!r}, not a list"
        )
    pieces = list(pieces)
    if not all(isinstance(piece, str) for piece in pieces):
        raise InvalidInputError(f"the splitter returned a non-str chunk for {document.id!r}")
    pieces = [piece for piece in pieces if piece.strip()]
    start = document.metadata.get("start")
    shift = start if type(start) is int else 0
    kept = {k: v for k, v in document.metadata.items() if k not in _CHUNK_KEYS}
    chunks = []
    for i, (piece, span) in enumerate(
        zip(pieces, _offsets(document.text, pieces, overlap), strict=True)
    ):
        metadata = {**kept, "parent_id": document.id}
        if span is not None:
            metadata["start"], metadata["end"] = shift + span[0], shift + span[1]
        chunks.append(Document(id=f"{document.id}#{i}", text=piece, metadata=metadata))
    return chunks


def _span(doc: Document) -> tuple[int, int] | None:
    start, end = doc.metadata.get("start"), doc.metadata.get("end")
    return (start, end) if type(start) is int and type(end) is int else None


def assemble(parent_id: str, chunks: list[Document]) -> Document:
    """A parent rebuilt from its chunks: in ``start`` order (chunks without offsets after, as
    given), overlaps dropped by their offsets, other joins a newline; metadata: the items all
    chunks share, less ``parent_id``, with the span of their offsets."""
    ordered = sorted(chunks, key=lambda c: (0, s[0]) if (s := _span(c)) else (1, 0))
    text, reached = "", None
    for chunk in ordered:
        span = _span(chunk)
        if text and span is not None and reached is not None and span[0] < reached:
            text += chunk.text[reached - span[0] :]
        else:
            text += ("\n" if text else "") + chunk.text
        reached = None if span is None else max(span[1], reached or 0)
    common = dict(chunks[0].metadata)
    for chunk in chunks[1:]:
        other = chunk.metadata
        common = {
            k: v
            for k, v in common.items()
            if k in other and (type(v), v) == (type(other[k]), other[k])
        }
    common = {k: v for k, v in common.items() if k not in _CHUNK_KEYS}
    spans = [_span(c) for c in chunks]
    if all(spans):
        common["start"] = min(s[0] for s in spans if s)
        common["end"] = max(s[1] for s in spans if s)
    return Document(id=parent_id, text=text, metadata=common)
