"""Chunks cut to the retriever's measure: at paragraphs, then sentences, then words, with overlap.

:class:`Chunker` splits each loaded unit (a page, a section, a file) with LangChain's
``RecursiveCharacterTextSplitter`` (from ``langchain-text-splitters``): it tries a blank line
first, then a line break, then the end of a sentence, then a clause, then a space, and merges the
pieces back into chunks of at most ``size`` with ``overlap`` of the previous chunk repeated.
Lengths are measured with the model's own tokenizer (:func:`~.tokens.token_limits`: every model
behind the retriever, the strictest counts) or, for a retriever without a model (BM25), in words.
A chunk the splitter leaves too long for a model (token counts do not add up exactly across a cut)
is cut again at words, so **no chunk exceeds the model's maximum sequence length**.

Each chunk is a :class:`~rag_retrievers.records.Document` with id ``"{source}#{n}"`` (``n``
counts the file's chunks from 0, so an unchanged file gets the same ids on every run) and the
metadata ``source``, ``page`` (PDF), ``heading`` (Markdown, HTML, a JSONL record's title),
``start`` and ``end`` (character offsets in the unit's text), ``parent_id`` and
``content_hash`` (the sha256 of the file).

>>> from rag_retrievers.ingest.loaders import load_bytes
>>> text = b"One sentence here. Another one follows. A third ends it."
>>> chunks = Chunker(size=7, overlap=3).chunk(load_bytes(text, "a.txt", ".txt"))
>>> for chunk in chunks:
...     print(chunk.id, chunk.text)
a.txt#0 One sentence here. Another one follows.
a.txt#1 Another one follows. A third ends it.
>>> {k: chunks[1].metadata[k] for k in ("source", "start", "end", "parent_id")}
{'source': 'a.txt', 'start': 19, 'end': 56, 'parent_id': 'a.txt'}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rag_retrievers.errors import InvalidInputError, MissingDependencyError
from rag_retrievers.ingest.tokens import TokenLimit, count_words, token_limits
from rag_retrievers.records import Document

if TYPE_CHECKING:
    from rag_retrievers.ingest.loaders import LoadedFile

#: chunk length for a retriever without a model, in words (see docs/ingest.md for the table)
DEFAULT_WORDS = 128
#: overlap for a retriever without a model, in words
DEFAULT_WORD_OVERLAP = 32
#: overlap as a share of the chunk size when the size comes from a model's limit
DEFAULT_OVERLAP_SHARE = 0.25
#: where a chunk may end, most preferred first (regular expressions)
SEPARATORS = (
    r"\n\s*\n",  # a blank line: between paragraphs
    r"\n",  # a line break: list items, verse, table rows
    r"(?<=[.!?])\s+",  # after a sentence
    r"(?<=[;:,])\s+",  # after a clause
    r"\s+",  # between words
    "",  # anywhere: a word longer than a chunk
)


def _check_int(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidInputError(f"{name} must be an int >= {least}, got {value!r}")
    return value


class Chunker:
    """Split loaded files into chunks of at most ``size`` tokens (words without ``limits``)
    overlapping by ``overlap``; see the module docstring.

    ``limits`` are the models the chunks are for (:meth:`for_retriever` finds them). ``size``
    defaults to what the strictest model reads (its special tokens and prompt left out), or
    :data:`DEFAULT_WORDS` words; a ``size`` larger than a model reads is refused.
    """

    def __init__(
        self,
        size: int | None = None,
        overlap: int | None = None,
        *,
        limits: Sequence[TokenLimit] = (),
    ) -> None:
        self.limits = tuple(limits)
        room = min((limit.max_tokens - limit.overhead for limit in self.limits), default=None)
        if room is not None and room < 1:
            raise InvalidInputError(f"the model {self.limits[0].model!r} reads no text")
        if size is None:
            size = room if room is not None else DEFAULT_WORDS
        self.size = _check_int("chunk size", size, 1)
        if room is not None and self.size > room:
            strictest = min(self.limits, key=lambda limit: limit.max_tokens - limit.overhead)
            raise InvalidInputError(
                f"chunk size {self.size} is more than {strictest.model!r} reads: {room} tokens "
                f"({strictest.max_tokens} less {strictest.overhead} special or prompt tokens)"
            )
        if overlap is None:
            overlap = (
                int(self.size * DEFAULT_OVERLAP_SHARE)
                if self.limits
                else min(DEFAULT_WORD_OVERLAP, self.size // 4)
            )
        self.overlap = _check_int("chunk overlap", overlap, 0)
        if self.overlap >= self.size:
            raise InvalidInputError(
                f"chunk overlap must be less than the chunk size ({self.size}), got {self.overlap}"
            )
        self._splitter: Any = None

    @classmethod
    def for_retriever(
        cls, retriever: object, size: int | None = None, overlap: int | None = None
    ) -> Chunker:
        """A chunker measuring with the tokenizers of ``retriever``'s models (words for BM25)."""
        return cls(size, overlap, limits=token_limits(retriever))

    @property
    def unit(self) -> str:
        """What ``size`` counts: ``words`` or ``tokens of MODEL[, MODEL]``."""
        if not self.limits:
            return "words"
        return "tokens of " + ", ".join(sorted({limit.model for limit in self.limits}))

    def identity(self) -> dict[str, Any]:
        """What decides the chunks (a change re-chunks every file): size, overlap, unit."""
        return {"size": self.size, "overlap": self.overlap, "unit": self.unit}

    def __repr__(self) -> str:
        return f"Chunker(size={self.size}, overlap={self.overlap}, unit={self.unit!r})"

    # -- measuring -----------------------------------------------------------------------------

    def length(self, text: str) -> int:
        """``text``'s length as ``size`` counts it: the most content tokens any model needs
        for it (its special and prompt tokens left out), or words."""
        if not self.limits:
            return count_words(text)
        return max(limit.count(text) - limit.overhead for limit in self.limits)

    def fits(self, text: str) -> bool:
        """Whether every model reads ``text`` whole (and it is at most ``size`` long)."""
        if not self.limits:
            return count_words(text) <= self.size
        return all(limit.count(text) <= limit.max_tokens for limit in self.limits) and (
            self.length(text) <= self.size
        )

    # -- splitting -----------------------------------------------------------------------------

    def _split_text(self) -> Callable[[str], list[str]]:
        if self._splitter is None:
            try:
                from langchain_text_splitters import RecursiveCharacterTextSplitter
            except ImportError:
                raise MissingDependencyError("langchain-text-splitters", "ingest") from None
            self._splitter = RecursiveCharacterTextSplitter(
                separators=list(SEPARATORS),
                is_separator_regex=True,
                keep_separator="end",
                chunk_size=self.size,
                chunk_overlap=self.overlap,
                length_function=self.length,
                strip_whitespace=True,
            )
        split: Callable[[str], list[str]] = self._splitter.split_text
        return split

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` character offsets of the chunks of ``text``, in order."""
        spans: list[tuple[int, int]] = []
        cursor = 0
        for piece in self._split_text()(text):
            start = text.find(piece, cursor)
            if start < 0:  # the splitter keeps pieces verbatim; never expected
                start = text.find(piece)
            end = start + len(piece)
            cursor = start + 1
            for span in self._fit(text, start, end):
                spans.append(span)
        return spans

    def _fit(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """``text[start:end]`` as spans that fit every model: cut at words when it does not."""
        if self.fits(text[start:end]):
            return [(start, end)]
        out = []
        while start < end:
            words = [start] + [i + 1 for i in range(start, end) if text[i].isspace()] + [end]
            lo, hi = 1, len(words) - 1  # the longest run of whole words that fits
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.fits(text[start : words[mid]]):
                    lo = mid
                else:
                    hi = mid - 1
            cut = words[lo]
            if not self.fits(text[start:cut]):  # one word longer than a chunk: at characters
                cut = start + 1
                while cut < end and self.fits(text[start : cut + 1]):
                    cut += 1
            piece = text[start:cut]
            stripped_start = start + len(piece) - len(piece.lstrip())
            stripped_end = start + len(piece.rstrip())
            if stripped_end > stripped_start:
                out.append((stripped_start, stripped_end))
            start = cut
        return out

    def chunk(self, loaded: LoadedFile) -> list[Document]:
        """The chunks of a loaded file, as documents (see the module docstring)."""
        documents: list[Document] = []
        for unit in loaded.units:
            for start, end in self.spans(unit.text):
                metadata: dict[str, Any] = dict(unit.metadata)
                metadata.update(source=loaded.source)
                if unit.page is not None:
                    metadata["page"] = unit.page
                if unit.heading is not None:
                    metadata["heading"] = unit.heading
                metadata.update(
                    start=start,
                    end=end,
                    parent_id=unit.parent_id,
                    content_hash=loaded.sha256,
                )
                documents.append(
                    Document(
                        id=f"{loaded.source}#{len(documents)}",
                        text=unit.text[start:end],
                        metadata=metadata,
                    )
                )
        return documents
