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
  vectors (BM25 now, SPLADE once it exposes them, see :class:`TermVectors`).
- ``rocchio`` (Rocchio 1971, "Relevance feedback in information retrieval"): on term vectors as
  Anserini's ``RocchioReranker`` (``alpha`` x query + ``beta`` x mean feedback document, L2
  normalised), or on embeddings for bases that expose :class:`QueryVectors` (dense: vector PRF,
  Li et al. 2021, "Pseudo relevance feedback with deep language models and dense retrievers").

A :class:`~rag_retrievers.adapters.hybrid.Hybrid` base gives its fused ranking as feedback; the
refined query goes to its first member with the needed ability (term vectors for ``rm3``), the
other members search the original query again, and the results are fused as the Hybrid fuses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, Self, cast, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rag_retrievers.adapters.hybrid import Hybrid, build_retriever, member_search, retriever_spec

from rag_retrievers.base import ComparedByConfig, Retriever
from rag_retrievers.errors import (
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    UnknownNameError,
    check_query,
)
from rag_retrievers.filters import CompiledFilter, Filter
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever, retriever_class

Method = Literal["rm3", "rocchio"]
METHODS = ("rm3", "rocchio")


# -- abilities a base may expose ----------------------------------------------------------------


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


def term_vectors(retriever: Retriever) -> TermVectors | None:
    """The retriever's term vectors, if it has them."""
    if isinstance(retriever, TermVectors):
        return retriever
    return None


def query_vectors(retriever: Retriever) -> QueryVectors | None:
    return retriever if isinstance(retriever, QueryVectors) else None


# -- the maths: pure functions ------------------------------------------------------------------

TermVector = Mapping[str, float]
_TERM = re.compile(r"[^\W_]+")


def prune(vector: TermVector, size: int) -> dict[str, float]:
    """The ``size`` largest entries (ties by term), as Anserini's ``FeatureVector.pruneToSize``."""
    return dict(sorted(vector.items(), key=lambda item: (-item[1], item[0]))[:size])


def l1_normalised(vector: TermVector) -> dict[str, float]:
    total = math.fsum(abs(v) for v in vector.values())
    return {t: v / total for t, v in vector.items()} if total > 0 else dict(vector)


def l2_normalised(vector: TermVector) -> dict[str, float]:
    norm = math.sqrt(math.fsum(v * v for v in vector.values()))
    return {t: v / norm for t, v in vector.items()} if norm > 0 else dict(vector)


def feedback_term_filter(
    document_fraction: Callable[[str], float], max_df: float
) -> Callable[[str], bool]:
    """Anserini's feedback-term filter: 2-20 characters, letters and digits only, in at most
    ``max_df`` of the documents (Anserini uses 0.1 in place of a stopword list; its PR #289).
    Letters of any script count, where Anserini keeps ``[a-z0-9]`` only."""

    def keep(term: str) -> bool:
        return (
            2 <= len(term) <= 20
            and _TERM.fullmatch(term) is not None
            and document_fraction(term) <= max_df
        )

    return keep


def rm3(
    query: TermVector,
    feedback: Sequence[tuple[TermVector, float]],
    *,
    fb_terms: int = 10,
    original_weight: float = 0.5,
) -> dict[str, float]:
    """RM3: ``original_weight * P(t|Q) + (1 - original_weight) * P_RM1(t)``.

    ``query`` holds the query's term counts (``P(t|Q)`` is their L1 normalisation); ``feedback``
    holds ``(document term vector, retrieval score)`` pairs, best first, already filtered.
    As Anserini's ``Rm3Reranker``: each document vector is pruned to its ``fb_terms`` largest
    entries, ``P(t|D) = tf(t, D) / sum(pruned D)``, the relevance model is
    ``sum_D P(t|D) * score(D)``, pruned to ``fb_terms`` terms and L1-normalised (so scores act as
    weights normalised to sum 1). Non-positive scores (possible with dense or z-scored bases)
    fall back to equal document weights.

    >>> rm3({"onion": 1}, [({"onion": 2, "heat": 2}, 1.0), ({"heat": 4}, 1.0)], fb_terms=2)
    {'onion': 0.625, 'heat': 0.375}
    """
    scores = [s for _, s in feedback]
    if any(s <= 0 or not math.isfinite(s) for s in scores):
        scores = [1.0] * len(feedback)
    relevance: dict[str, float] = {}
    for (vector, _), score in zip(feedback, scores, strict=True):
        pruned = prune(vector, fb_terms)
        norm = math.fsum(pruned.values())
        if norm <= 0:
            continue
        for term, value in pruned.items():
            relevance[term] = relevance.get(term, 0.0) + value / norm * score
    relevance = l1_normalised(prune(relevance, fb_terms))
    q = l1_normalised(query)
    lam = original_weight
    return {
        t: lam * q.get(t, 0.0) + (1 - lam) * relevance.get(t, 0.0)
        for t in dict.fromkeys([*q, *relevance])
    }


def rocchio(
    query: TermVector,
    feedback: Sequence[TermVector],
    *,
    fb_terms: int = 10,
    alpha: float = 1.0,
    beta: float = 0.75,
) -> dict[str, float]:
    """Rocchio on sparse vectors: ``alpha * q + beta * mean(d)`` with ``q`` and every ``d``
    L2-normalised and the mean pruned to its ``fb_terms`` largest entries (as Anserini's
    ``RocchioReranker``, whose defaults are alpha 1, beta 0.75).

    >>> rocchio({"a": 1}, [{"a": 3, "b": 4}], fb_terms=1, alpha=1.0, beta=1.0)
    {'a': 1.0, 'b': 0.8}
    """
    mean: dict[str, float] = {}
    for vector in feedback:
        for term, value in l2_normalised(vector).items():
            mean[term] = mean.get(term, 0.0) + value / len(feedback)
    expansion = prune(mean, fb_terms)
    q = l2_normalised(query)
    return {
        t: alpha * q.get(t, 0.0) + beta * expansion.get(t, 0.0)
        for t in dict.fromkeys([*q, *expansion])
    }


def vector_rocchio(
    query: np.ndarray, feedback: np.ndarray, *, alpha: float = 1.0, beta: float = 0.75
) -> np.ndarray:
    """Vector PRF by Rocchio: ``alpha * q + beta * mean(feedback rows)`` (Li et al. 2021).

    >>> vector_rocchio(np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.0, 3.0]]), beta=0.5)
    array([1., 1.])
    """
    if not len(feedback):
        return alpha * query
    return alpha * query + beta * feedback.mean(axis=0)


# -- records ------------------------------------------------------------------------------------


class RefinedQuery(BaseModel):
    """What PRF searches with in its second pass.

    ``terms`` is the refined term-weight query (term vectors) and ``expansion`` its terms that
    the original query lacks; ``vector`` the refined embedding (vector Rocchio). ``feedback``
    lists the feedback documents' ids, ``member`` the Hybrid member that searched the refined
    query (``None`` for a plain base).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str
    method: str
    feedback: list[str] = Field(default_factory=list)
    terms: dict[str, float] | None = None
    vector: list[float] | None = None
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
    documents). ``fb_docs=0`` searches the base unchanged.
    """

    def __init__(
        self,
        base: Retriever | Mapping[str, Any] | str,
        method: Method = "rm3",
        *,
        fb_docs: int = 10,
        fb_terms: int = 10,
        original_weight: float = 0.5,
        alpha: float = 1.0,
        beta: float = 0.75,
        max_df: float = 0.1,
    ) -> None:
        super().__init__()
        self.base = build_retriever(base, "base")
        if method not in METHODS:
            raise UnknownNameError("PRF method", method, METHODS)
        self.method: Method = method
        for name, value in [("fb_docs", fb_docs), ("fb_terms", fb_terms)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an int >= 0, got {value!r}")
        self.fb_docs, self.fb_terms = fb_docs, fb_terms
        if not (_number(original_weight) and 0 <= original_weight <= 1):
            raise InvalidInputError(
                f"original_weight must be a number in [0, 1], got {original_weight!r}"
            )
        for name, number in [("alpha", alpha), ("beta", beta)]:
            if not _number(number):
                raise InvalidInputError(f"{name} must be a finite number, got {number!r}")
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
