"""Citations a reader can follow: each cited passage's file and page, or heading path.

A folder run (:mod:`rag_retrievers.ingest`) gives every chunk the metadata ``source`` (the file,
relative to the folder), ``page`` (PDF) and ``heading`` (Markdown, HTML). :func:`cited_sources`
turns an :class:`~rag_retrievers.records.Answer`'s cited ids into those places, labelled as a
reader would write them (:func:`source_label`): ``constitution.pdf p. 3``,
``bill-of-rights.html, The Bill of Rights > Amendment IV``; a document without a ``source`` is
named by its id. ``rag-retrievers ask`` prints them under the answer and puts them in ``--json``
as ``sources``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rag_retrievers.records import Answer, Hit


@dataclass(frozen=True)
class CitedSource:
    """A cited passage as a reader finds it: its number in the answer (``[n]``), its document
    id, and where it comes from (``label``: ``"guide.pdf p. 3"``, ``"notes.md, Install >
    Linux"`` or, for a document without a ``source``, its id)."""

    number: int
    id: str
    label: str
    source: str | None = None
    page: int | None = None
    heading: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "id": self.id,
            "label": self.label,
            "source": self.source,
            "page": self.page,
            "heading": self.heading,
        }


def source_label(hit: Hit) -> str:
    """Where a hit comes from, for a citation: ``source p. N`` for a page of a PDF,
    ``source, Heading > Sub`` for a section, ``source`` for a whole file, else the document id
    (the metadata a folder run writes: ``source``, ``page``, ``heading``).

    >>> from rag_retrievers.records import Document, Hit
    >>> doc = Document(id="c.pdf#4", text="...", metadata={"source": "c.pdf", "page": 3})
    >>> source_label(Hit(id=doc.id, score=1.0, rank=1, document=doc))
    'c.pdf p. 3'
    >>> source_label(Hit(id="paris", score=1.0, rank=1))
    'paris'
    """
    metadata = hit.document.metadata if hit.document is not None else {}
    source = metadata.get("source")
    if not isinstance(source, str) or not source.strip():
        return hit.id
    page, heading = metadata.get("page"), metadata.get("heading")
    if isinstance(page, int) and not isinstance(page, bool):
        return f"{source} p. {page}"
    if isinstance(heading, str) and heading.strip():
        return f"{source}, {heading}"
    return source


def cited_sources(answer: Answer) -> list[CitedSource]:
    """The passages ``answer`` cites, in citation order, each with its number and
    :func:`source_label`: what ``rag-retrievers ask`` prints under the answer and puts in
    ``--json`` as ``sources``."""
    numbered = {hit.id: (number, hit) for number, hit in enumerate(answer.contexts, 1)}
    out = []
    for doc_id in answer.citations:
        if doc_id not in numbered:
            continue
        number, hit = numbered[doc_id]
        metadata = hit.document.metadata if hit.document is not None else {}
        source, page, heading = (metadata.get(k) for k in ("source", "page", "heading"))
        out.append(
            CitedSource(
                number=number,
                id=doc_id,
                label=source_label(hit),
                source=source if isinstance(source, str) else None,
                page=page if isinstance(page, int) and not isinstance(page, bool) else None,
                heading=heading if isinstance(heading, str) else None,
            )
        )
    return out
