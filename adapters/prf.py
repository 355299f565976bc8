"""Pseudo-relevance feedback: refine the query from the base retriever's first results.

``PRF(base, method="rm3")`` searches ``base``, builds a refined query from the top ``fb_docs``
hits and searches again with it. The refined query is inspectable with :meth:`PRF.refine`.

>>> from rag_retrievers import BM25, Document
>>> bm25 = BM25()
>>> bm25.add([Document(id="1", text="Caramelised onions need low heat."),
...           Document(id="2", text="Onions and garlic in low heat become sweet."),
...           Document(id="3", text="The marathon runner kept a steady pace."),
...           Document(id="4", text="Knead the dough, let it rise."),
...           Document(id="5", text="Tennis tie-break rules.")])
>>> prf = PRF(bm25, method="rm3", fb_docs=2, fb_terms=3, max_df=1.0)
>>> refined = prf.refine("caramelised onions")
>>> refined.feedback
['1', '2']
>>> sorted(refined.expansion)
['heat', 'low']

Methods:

- ``rm3`` (Lavrenko & Croft 2001, "Relevance-based language models", SIGIR; RM3 as in
  Abdul-Jaleel et al. 2004, "UMass at TREC 2004", and Anserini's ``Rm3Reranker``): needs term
  vectors (BM25, SPLADE: see :class:`TermVectors`).
- ``rocchio`` (Rocchio 1971, "Relevance feedback in information retrieval"): on term vectors as
  Anserini's ``RocchioReranker`` (``alpha`` x query + ``beta`` x mean feedback document, L2
  normalised), or on embeddings for bases that expose :class:`QueryVectors` (dense: vector PRF,
  Li et al. 2021, "Pseudo relevance feedback with deep language models and dense retrievers").
- ``colbert-prf`` (Wang et al. 2021, "Pseudo-relevance feedback for multiple representation
  dense retrieval"): for late-interaction bases (:class:`TokenVectors`, the ColBERT adapter):
  k-means over the feedback documents' token vectors, the ``fb_terms`` centroids with the
  highest idf appended to the query's token vectors with weight ``beta * idf``.

A :class:`~rag_retrievers.adapters.hybrid.Hybrid` base gives its fused ranking as feedback; the
refined query goes to its first member with the needed ability (term vectors for ``rm3``), the
other members search the original query again, and the results are fused as the Hybrid fuses.

This module holds the :class:`PRF` wrapper and its :class:`RefinedQuery`; the abilities a base
needs for each method (:class:`TermVectors`, :class:`QueryVectors`, :class:`TokenVectors`) are in
:mod:`rag_retrievers.adapters.prf_abilities`, and the feedback maths (RM3, Rocchio, ColBERT-PRF's
expansion embeddings) in :mod:`rag_retrievers.feedback`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rag_retrievers.adapters.hybrid import Hybrid
from rag_retrievers.adapters.members import build_retriever, member_search, retriever_spec
from rag_retrievers.adapters.prf_abilities import (
    QueryVectors,
    TermVectors,
    TokenVectors,
    query_vectors,
    term_vectors,
    token_vectors,
)

from rag_retrievers.base import ComparedByConfig, Retriever
from rag_retrievers.errors import (
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    UnknownNameError,
    check_query,
)
from rag_retrievers.feedback import colbert_prf, feedback_term_filter, rm3, rocchio, vector_rocchio
from rag_retrievers.filters import CompiledFilter, Filter
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever, retriever_class

# the abilities live in adapters.prf_abilities; re-exported here because code imports them from
# this module, where they began
__all__ = [
    "METHODS",
    "PRF",
    "Method",
    "QueryVectors",
    "RefinedQuery",
    "TermVectors",
    "TokenVectors",
    "query_vectors",
    "term_vectors",
    "token_vectors",
]

Method = Literal["rm3", "rocchio", "colbert-prf"]
METHODS = ("rm3", "rocchio", "colbert-prf")


# -- records ------------------------------------------------------------------------------------


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


# -- the wrapper --------------------------------------------------------------------------------


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@register_retriever("prf")
class PRF(ComparedByConfig, Retriever):
    """Pseudo-relevance feedback around any retriever (see the module docstring).

    Defaults are Anserini's: ``fb_docs=10, fb_terms=10, original_weight=0.5`` (RM3's lambda),
    ``alpha=1.0, beta=0.75`` (Rocchio), ``max_df=0.1`` (feedback terms in at most 10% of the
    documents); ColBERT-PRF's are the paper's: ``fb_docs=3``, ``fb_terms=10`` expansion
    embeddings from ``clusters=24`` k-means centroids, ``beta=1.0``. ``fb_docs=0`` searches the
    base unchanged.
    """

    def __init__(
        self,
        base: Retriever | Mapping[str, Any] | str,
        method: Method = "rm3",
        *,
        fb_docs: int | None = None,
        fb_terms: int = 10,
        original_weight: float = 0.5,
        alpha: float = 1.0,
        beta: float | None = None,
        max_df: float = 0.1,
        clusters: int = 24,
    ) -> None:
        super().__init__()
        self.base = build_retriever(base, "base")
        if method not in METHODS:
            raise UnknownNameError("PRF method", method, METHODS)
        self.method: Method = method
        late = method == "colbert-prf"
        fb_docs = (3 if late else 10) if fb_docs is None else fb_docs
        beta = (1.0 if late else 0.75) if beta is None else beta
        for name, value in [("fb_docs", fb_docs), ("fb_terms", fb_terms), ("clusters", clusters)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an int >= 0, got {value!r}")
        self.fb_docs, self.fb_terms, self.clusters = fb_docs, fb_terms, clusters
        if not (_number(original_weight) and 0 <= original_weight <= 1):
            raise InvalidInputError(
                f"original_weight must be a number in [0, 1], got {original_weight!r}"
            )
        for name, number in [("alpha", alpha), ("beta", beta)]:
            if not _number(number):
                raise InvalidInputError(f"{name} must be a finite number, got {number!r}")
        if late and beta < 0:  # each weight is folded into its vector: MaxSim scales by w >= 0 only
            raise InvalidInputError(f"colbert-prf needs beta >= 0, got {beta!r}")
        if not (_number(max_df) and 0 < max_df <= 1):
            raise InvalidInputError(f"max_df must be a number in (0, 1], got {max_df!r}")
        self.original_weight, self.alpha, self.beta = original_weight, alpha, beta
        self.max_df = max_df
        self._source_name, self._source = self._find_source()

    def _find_source(self) -> tuple[str | None, Retriever]:
        """The retriever that searches the refined query: the base, or a Hybrid's member."""
        candidates: list[tuple[str | None, Retriever]] = [(None, self.base)]
        if isinstance(self.base, Hybrid):
            candidates = list(zip(self.base.names, self.base.retrievers, strict=True))
        if self.method == "colbert-prf":
            for name, retriever in candidates:
                if token_vectors(retriever) is not None:
                    return name, retriever
            shown = ", ".join(f"{type(r).__name__}" for _, r in candidates)
            raise InvalidInputError(
                f"PRF method 'colbert-prf' needs a late-interaction base (ColBERT); {shown} has "
                "no TokenVectors (encode_query_tokens, document_tokens, token_idf, search_tokens)"
            )
        for name, retriever in candidates:
            if term_vectors(retriever) is not None:
                return name, retriever
        if self.method == "rocchio":
            for name, retriever in candidates:
                if query_vectors(retriever) is not None:
                    return name, retriever
        need = "term vectors" if self.method == "rm3" else "term vectors or query vectors"
        shown = ", ".join(f"{type(r).__name__}" for _, r in candidates)
        raise InvalidInputError(
            f"PRF method {self.method!r} needs a base with {need}; {shown} has neither "
            "TermVectors (query_terms, document_terms, document_fraction, search_terms) nor "
            "QueryVectors (encode_queries, document_vectors, search_vectors)"
        )

    # -- value semantics -----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "base": retriever_spec(self.base),
            "method": self.method,
            "fb_docs": self.fb_docs,
            "fb_terms": self.fb_terms,
            "original_weight": self.original_weight,
            "alpha": self.alpha,
            "beta": self.beta,
            "max_df": self.max_df,
            "clusters": self.clusters,
        }

    def __repr__(self) -> str:
        config = self.config()
        del config["base"]
        options = "".join(f", {key}={value!r}" for key, value in config.items())
        return f"{type(self).__name__}({self.base!r}{options})"

    # -- refinement ----------------------------------------------------------------------------

    def refine(self, query: str, filter: Filter | None = None) -> RefinedQuery:
        """The refined query PRF searches with for ``query`` (runs the first pass)."""
        query = check_query(query)
        with self._lock.read():
            compiled = self._compile_filter(filter)
            with self.base._lock.read():
                return self._refine([query], compiled)[0]

    def _refine(self, queries: list[str], filter: CompiledFilter | None) -> list[RefinedQuery]:
        """First pass and refinement; the caller holds the base's read lock."""
        first = (
            self.base.search_compiled(queries, self.fb_docs, filter)
            if self.fb_docs
            else [[] for _ in queries]
        )
        source = self._source
        if self._source_name is not None:
            with source._lock.read():
                return self._refine_with(source, queries, first)
        return self._refine_with(source, queries, first)

    def _refine_with(
        self, source: Retriever, queries: list[str], first: list[list[Hit]]
    ) -> list[RefinedQuery]:
        tokens = token_vectors(source) if self.method == "colbert-prf" else None
        if tokens is not None:
            return self._refine_tokens(tokens, queries, first)
        terms = term_vectors(source)
        if terms is not None:
            return [
                self._refine_terms(terms, q, hits) for q, hits in zip(queries, first, strict=True)
            ]
        vectors = cast(QueryVectors, query_vectors(source))
        encoded = vectors.encode_queries(queries)
        refined = []
        for query, q_vec, hits in zip(queries, encoded, first, strict=True):
            ids = [h.id for h in hits[: self.fb_docs]]
            docs = vectors.document_vectors(ids) if ids else np.zeros((0, len(q_vec)))
            vec = vector_rocchio(q_vec, docs, alpha=self.alpha, beta=self.beta)
            refined.append(
                RefinedQuery(
                    query=query,
                    method=self.method,
                    feedback=ids,
                    vector=[float(x) for x in vec],
                    member=self._source_name,
                )
            )
        return refined

    def _refine_tokens(
        self, source: TokenVectors, queries: list[str], first: list[list[Hit]]
    ) -> list[RefinedQuery]:
        refined = []
        for query, q_tokens, hits in zip(
            queries, source.encode_query_tokens(queries), first, strict=True
        ):
            ids = [h.id for h in hits[: self.fb_docs]]
            feedback = source.document_tokens(ids) if ids else []
            stacked = np.concatenate(feedback) if feedback else np.empty((0, q_tokens.shape[1]))
            vectors, weights = colbert_prf(
                stacked,
                source.token_idf,
                n_clusters=self.clusters,
                fb_embs=self.fb_terms,
                beta=self.beta,
            )
            expanded = np.concatenate([q_tokens, vectors * weights[:, None]]).astype(np.float32)
            refined.append(
                RefinedQuery(
                    query=query,
                    method=self.method,
                    feedback=ids,
                    tokens=expanded.tolist(),
                    expansion_weights=weights.tolist(),
                    member=self._source_name,
                )
            )
        return refined

    def _refine_terms(self, terms: TermVectors, query: str, hits: list[Hit]) -> RefinedQuery:
        original = terms.query_terms(query)
        hits = hits[: self.fb_docs]
        keep = feedback_term_filter(terms.document_fraction, self.max_df)
        docs = [{t: v for t, v in terms.document_terms(h.id).items() if keep(t)} for h in hits]
        if not hits:
            refined = dict(original)
        elif self.method == "rm3":
            refined = rm3(
                original,
                [(d, h.score) for d, h in zip(docs, hits, strict=True)],
                fb_terms=self.fb_terms,
                original_weight=self.original_weight,
            )
        else:
            refined = rocchio(
                original, docs, fb_terms=self.fb_terms, alpha=self.alpha, beta=self.beta
            )
        return RefinedQuery(
            query=query,
            method=self.method,
            feedback=[h.id for h in hits],
            terms=refined,
            member=self._source_name,
            original_terms=list(original),
        )

    def _search_refined(
        self, refined: list[RefinedQuery], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        """The second pass on the source retriever (its read lock is held by the caller)."""
        if self.method == "colbert-prf":
            late = cast(TokenVectors, token_vectors(self._source))
            queries = [np.asarray(r.tokens, dtype=np.float32) for r in refined]
            return late.search_tokens(queries, k, filter)
        terms = term_vectors(self._source)
        if terms is not None:
            return [terms.search_terms(r.terms or {}, k, filter) for r in refined]
        vectors = cast(QueryVectors, query_vectors(self._source))
        matrix = np.asarray([r.vector for r in refined], dtype=np.float32)
        return vectors.search_vectors(matrix, k, filter)

    # -- the adapter's methods -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.base)

    def _check_documents(self, documents: list[Document]) -> None:
        self.base._check_documents(documents)

    def _add(self, documents: list[Document]) -> None:
        self.base.add(documents, show_progress=False)

    def _delete(self, ids: list[str]) -> int:
        return self.base.delete(ids)

    def _metadata_fields(self) -> set[str] | None:
        return self.base._metadata_fields()

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        if self.fb_docs == 0:
            return member_search(self.base, queries, k, filter)
        with self.base._lock.read():
            refined = self._refine(queries, filter)
            if self._source_name is None:
                hits = self._search_refined(refined, k, filter)
                return [self._relabel(h) for h in hits]
            hybrid = cast(Hybrid, self.base)
            fetch = max(hybrid.depth, k)
            source = self._source

            def second_pass() -> list[list[Hit]]:
                with source._lock.read():
                    return self._search_refined(refined, fetch, filter)

            hits = hybrid.fused_search(queries, k, filter, replace={self._source_name: second_pass})
            return [self._relabel(h) for h in hits]

    def _relabel(self, hits: list[Hit]) -> list[Hit]:
        return [h.model_copy(update={"source": self.name}) for h in hits]

    # -- persistence ---------------------------------------------------------------------------

    def _write_data(self, folder: Path) -> None:
        self._snapshot()(folder)

    def _snapshot(self) -> Callable[[Path], None]:
        with self.base._lock.read():
            return self.base._snapshot()

    def _manifest_extra(self) -> dict[str, Any]:
        return {"base_extra": self.base._manifest_extra()}

    @classmethod
    def _read_data(cls, folder: Path, manifest: dict[str, Any]) -> Self:
        config = dict(manifest["config"])
        spec, extra = config.pop("base", None), manifest.get("base_extra", {})
        if not (isinstance(spec, dict) and isinstance(extra, dict)):
            raise CorruptCollectionError(f"{folder}: the manifest does not describe the base")
        try:
            base_cls = retriever_class(spec.get("retriever"))  # type: ignore[arg-type]
        except UnknownNameError as exc:
            raise ForeignCollectionError(f"{folder}: base {exc.name!r} is not registered") from None
        base_manifest = {
            **{key: value for key, value in manifest.items() if key not in ("base_extra",)},
            **extra,
            "retriever": base_cls.name,
            "config": spec.get("config") or {},
        }
        base = base_cls._read_data(folder, base_manifest)
        try:
            return cls(base, **config)
        except TypeError as exc:
            raise CorruptCollectionError(
                f"{folder}: manifest config does not fit PRF: {exc}"
            ) from None
