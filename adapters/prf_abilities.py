"""What a base exposes for pseudo-relevance feedback (:class:`~rag_retrievers.adapters.prf.PRF`):
runtime-checkable Protocols a retriever opts into by having their methods, one per kind of query
PRF can refine, and accessors that return the retriever as that ability, or ``None``.

- :class:`TermVectors`: term-weight vectors on one sparse index (BM25, SPLADE): ``rm3`` and
  ``rocchio``.
- :class:`QueryVectors`: embedding vectors (dense): vector ``rocchio``.
- :class:`TokenVectors`: bags of token vectors scored by MaxSim (ColBERT): ``colbert-prf``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from rag_retrievers.base import Retriever
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.records import Hit

__all__ = [
    "QueryVectors",
    "TermVectors",
    "TokenVectors",
    "query_vectors",
    "term_vectors",
    "token_vectors",
]


@runtime_checkable
class TermVectors(Protocol):
    """A retriever whose queries and documents are term-weight vectors on one sparse index."""

    def query_terms(self, query: str) -> dict[str, float]:
        """The query as term -> weight before any collection weighting (BM25: term counts)."""
        ...

    def document_terms(self, doc_id: str) -> dict[str, float]:
        """A stored document as term -> weight (BM25: term counts; SPLADE: its weights)."""
        ...

    def document_fraction(self, term: str) -> float:
        """The fraction of live documents that contain ``term`` (0 if none)."""
        ...

    def search_terms(
        self, terms: Mapping[str, float], k: int, filter: CompiledFilter | None
    ) -> list[Hit]:
        """Search with a weighted bag of terms in the space of :meth:`query_terms` (BM25 weighs
        each by idf, as Lucene scores a boosted term query)."""
        ...


@runtime_checkable
class QueryVectors(Protocol):
    """A retriever that scores queries and documents as embedding vectors."""

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """One row per query."""
        ...

    def document_vectors(self, doc_ids: list[str]) -> np.ndarray:
        """One row per stored document id."""
        ...

    def search_vectors(
        self, vectors: np.ndarray, k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        """Ranked hits per query vector."""
        ...


@runtime_checkable
class TokenVectors(Protocol):
    """A late-interaction retriever: queries and documents as bags of token vectors, scored by
    MaxSim (the ColBERT adapter). Called under the retriever's read lock."""

    def encode_query_tokens(self, queries: list[str]) -> list[np.ndarray]:
        """Each query's token vectors, as searched."""
        ...

    def document_tokens(self, doc_ids: list[str]) -> list[np.ndarray]:
        """Each stored document's token vectors."""
        ...

    def token_idf(self, vectors: np.ndarray) -> np.ndarray:
        """An inverse document frequency for each vector, from the collection."""
        ...

    def search_tokens(
        self, queries: list[np.ndarray], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        """Ranked hits per query given as token vectors."""
        ...


def term_vectors(retriever: Retriever) -> TermVectors | None:
    """The retriever's term vectors, if it has them."""
    if isinstance(retriever, TermVectors):
        return retriever
    return None


def query_vectors(retriever: Retriever) -> QueryVectors | None:
    return retriever if isinstance(retriever, QueryVectors) else None


def token_vectors(retriever: Retriever) -> TokenVectors | None:
    return retriever if isinstance(retriever, TokenVectors) else None
