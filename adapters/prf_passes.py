"""The two passes of pseudo-relevance feedback, one class per kind of query a base exposes.

:class:`~rag_retrievers.adapters.prf.PRF` runs the base's first pass, then hands the feedback
documents to one of these: :class:`TermPasses` (``rm3`` and ``rocchio`` on term vectors: BM25,
SPLADE), :class:`VectorPasses` (``rocchio`` on embeddings: dense) or :class:`TokenPasses`
(``colbert-prf`` on token vectors: ColBERT). Each refines the queries (:meth:`refine`) and
searches the refined queries on its source (:meth:`search`); :func:`passes_for` picks the class
and the retriever (the base, or a Hybrid's member) a method needs. The maths are pure functions
in :mod:`rag_retrievers.scoring.feedback`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rag_retrievers.adapters.prf_abilities import (
    QueryVectors,
    TermVectors,
    TokenVectors,
    query_vectors,
    term_vectors,
    token_vectors,
)

from rag_retrievers.base import Retriever
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.name_registry import Registry
from rag_retrievers.records import Hit
from rag_retrievers.scoring.feedback import (
    colbert_prf,
    feedback_term_filter,
    rm3,
    rocchio,
    vector_rocchio,
)

__all__ = [
    "FeedbackSettings",
    "Passes",
    "RefinedQuery",
    "TermPasses",
    "TokenPasses",
    "VectorPasses",
    "passes_for",
]


class RefinedQuery(BaseModel):
    """What PRF searches with in its second pass.

    ``terms`` is the refined term-weight query (term vectors) and ``expansion`` its terms that
    the original query lacks; ``vector`` the refined embedding (vector Rocchio); ``tokens`` the
    refined token vectors (ColBERT-PRF: the query's, then the weighted expansion embeddings, whose
    weights are ``expansion_weights``). ``feedback`` lists the feedback documents' ids,
    ``member`` the Hybrid member that searched the refined query (``None`` for a plain base).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str
    method: str
    feedback: list[str] = Field(default_factory=list)
    terms: dict[str, float] | None = None
    vector: list[float] | None = None
    tokens: list[list[float]] | None = None
    expansion_weights: list[float] | None = None
    member: str | None = None
    original_terms: list[str] = Field(default_factory=list)

    @property
    def expansion(self) -> dict[str, float]:
        """The refined query's terms that the original query lacks, with their weights."""
        original = set(self.original_terms)
        return {t: w for t, w in (self.terms or {}).items() if t not in original}


@dataclass(frozen=True)
class FeedbackSettings:
    """A PRF's validated options (see :class:`~rag_retrievers.adapters.prf.PRF`)."""

    method: str
    fb_docs: int
    fb_terms: int
    original_weight: float
    alpha: float
    beta: float
    max_df: float
    clusters: int


class Passes(Protocol):
    """Refine queries from their feedback documents, and search the refined queries."""

    def refine(self, queries: list[str], first: list[list[Hit]]) -> list[RefinedQuery]: ...

    def search(
        self, refined: list[RefinedQuery], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]: ...


class TermPasses:
    """``rm3`` or ``rocchio`` on term-weight vectors."""

    def __init__(self, source: TermVectors, settings: FeedbackSettings, member: str | None):
        self.source, self.settings, self.member = source, settings, member

    def refine(self, queries: list[str], first: list[list[Hit]]) -> list[RefinedQuery]:
        return [self._refine(q, hits) for q, hits in zip(queries, first, strict=True)]

    def _refine(self, query: str, hits: list[Hit]) -> RefinedQuery:
        s, terms = self.settings, self.source
        original = terms.query_terms(query)
        hits = hits[: s.fb_docs]
        keep = feedback_term_filter(terms.document_fraction, s.max_df)
        docs = [{t: v for t, v in terms.document_terms(h.id).items() if keep(t)} for h in hits]
        if not hits:
            refined = dict(original)
        elif s.method == "rm3":
            refined = rm3(
                original,
                [(d, h.score) for d, h in zip(docs, hits, strict=True)],
                fb_terms=s.fb_terms,
                original_weight=s.original_weight,
            )
        else:
            refined = rocchio(original, docs, fb_terms=s.fb_terms, alpha=s.alpha, beta=s.beta)
        return RefinedQuery(
            query=query,
            method=s.method,
            feedback=[h.id for h in hits],
            terms=refined,
            member=self.member,
            original_terms=list(original),
        )

    def search(
        self, refined: list[RefinedQuery], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        return [self.source.search_terms(r.terms or {}, k, filter) for r in refined]


class VectorPasses:
    """``rocchio`` on embeddings (vector PRF)."""

    def __init__(self, source: QueryVectors, settings: FeedbackSettings, member: str | None):
        self.source, self.settings, self.member = source, settings, member

    def refine(self, queries: list[str], first: list[list[Hit]]) -> list[RefinedQuery]:
        s, refined = self.settings, []
        for query, q_vec, hits in zip(
            queries, self.source.encode_queries(queries), first, strict=True
        ):
            ids = [h.id for h in hits[: s.fb_docs]]
            docs = self.source.document_vectors(ids) if ids else np.zeros((0, len(q_vec)))
            vec = vector_rocchio(q_vec, docs, alpha=s.alpha, beta=s.beta)
            refined.append(
                RefinedQuery(
                    query=query,
                    method=s.method,
                    feedback=ids,
                    vector=[float(x) for x in vec],
                    member=self.member,
                )
            )
        return refined

    def search(
        self, refined: list[RefinedQuery], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        matrix = np.asarray([r.vector for r in refined], dtype=np.float32)
        return self.source.search_vectors(matrix, k, filter)


class TokenPasses:
    """``colbert-prf`` on bags of token vectors."""

    def __init__(self, source: TokenVectors, settings: FeedbackSettings, member: str | None):
        self.source, self.settings, self.member = source, settings, member

    def refine(self, queries: list[str], first: list[list[Hit]]) -> list[RefinedQuery]:
        s, refined = self.settings, []
        for query, q_tokens, hits in zip(
            queries, self.source.encode_query_tokens(queries), first, strict=True
        ):
            ids = [h.id for h in hits[: s.fb_docs]]
            feedback = self.source.document_tokens(ids) if ids else []
            stacked = np.concatenate(feedback) if feedback else np.empty((0, q_tokens.shape[1]))
            vectors, weights = colbert_prf(
                stacked,
                self.source.token_idf,
                n_clusters=s.clusters,
                fb_embs=s.fb_terms,
                beta=s.beta,
            )
            expanded = np.concatenate([q_tokens, vectors * weights[:, None]]).astype(np.float32)
            refined.append(
                RefinedQuery(
                    query=query,
                    method=s.method,
                    feedback=ids,
                    tokens=expanded.tolist(),
                    expansion_weights=weights.tolist(),
                    member=self.member,
                )
            )
        return refined

    def search(
        self, refined: list[RefinedQuery], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        queries = [np.asarray(r.tokens, dtype=np.float32) for r in refined]
        return self.source.search_tokens(queries, k, filter)


@dataclass(frozen=True)
class FeedbackMethod:
    """What a PRF method needs of its base: abilities in order of preference, each with the
    passes that use it, and what to say when no candidate has any."""

    abilities: tuple[tuple[Callable[[Retriever], Any], Callable[..., Passes]], ...]
    needs: str


_TERMS = "TermVectors (query_terms, document_terms, document_fraction, search_terms)"
_VECTORS = "QueryVectors (encode_queries, document_vectors, search_vectors)"
_TOKENS = "TokenVectors (encode_query_tokens, document_tokens, token_idf, search_tokens)"

#: the PRF methods by name
METHODS: Registry[FeedbackMethod] = Registry("PRF method")
METHODS.register(
    "rm3", FeedbackMethod(((term_vectors, TermPasses),), f"a base with term vectors: {_TERMS}")
)
METHODS.register(
    "rocchio",
    FeedbackMethod(
        ((term_vectors, TermPasses), (query_vectors, VectorPasses)),
        f"a base with term vectors or query vectors: {_TERMS} or {_VECTORS}",
    ),
)
METHODS.register(
    "colbert-prf",
    FeedbackMethod(
        ((token_vectors, TokenPasses),), f"a late-interaction base (ColBERT): {_TOKENS}"
    ),
)


def passes_for(
    settings: FeedbackSettings, candidates: Sequence[tuple[str | None, Retriever]]
) -> tuple[str | None, Retriever, Passes]:
    """The first of ``candidates`` (``(member name or None, retriever)``: the base, or a
    Hybrid's members) with the ability ``settings.method`` needs, and its passes: the
    method's abilities in order (``rocchio``: term vectors first, then embeddings), each
    looked for in every candidate; an error names what the method needs."""
    method = METHODS.get(settings.method)
    for ability_of, passes in method.abilities:
        for name, retriever in candidates:
            if (ability := ability_of(retriever)) is not None:
                return name, retriever, passes(ability, settings, name)
    shown = ", ".join(f"{type(r).__name__}" for _, r in candidates)
    raise InvalidInputError(
        f"PRF method {settings.method!r} needs {method.needs}; {shown} has none of them"
    )
