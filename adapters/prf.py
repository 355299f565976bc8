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

This module holds the :class:`PRF` wrapper; the abilities a base needs for each method
(:class:`TermVectors`, :class:`QueryVectors`, :class:`TokenVectors`) are in
:mod:`rag_retrievers.adapters.prf_abilities`, each method's two passes and their
:class:`RefinedQuery` in :mod:`rag_retrievers.adapters.prf_passes`, and the feedback maths (RM3,
Rocchio, ColBERT-PRF's expansion embeddings) in :mod:`rag_retrievers.scoring.feedback`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self, cast

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
from rag_retrievers.adapters.prf_passes import METHODS, FeedbackSettings, RefinedQuery, passes_for

from rag_retrievers.base import ComparedByConfig, Retriever
from rag_retrievers.errors import (
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    UnknownNameError,
    check_query,
    is_finite_number,
)
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


# -- the wrapper --------------------------------------------------------------------------------


@register_retriever("prf")
class PRF(ComparedByConfig, Retriever):
    """Pseudo-relevance feedback around any retriever (see the module docstring).

    Defaults are Anserini's: ``fb_docs=10, fb_terms=10, original_weight=0.5`` (RM3's lambda),
    ``alpha=1.0, beta=0.75`` (Rocchio), ``max_df=0.1`` (feedback terms in at most 10% of the
    documents); ColBERT-PRF's are the paper's: ``fb_docs=3``, ``fb_terms=10`` expansion
    embeddings from ``clusters=24`` k-means centroids, ``beta=1.0``. ``fb_docs=0`` searches the
    base unchanged.
    """

    config_keys = frozenset(
        ("base method fb_docs fb_terms original_weight alpha beta max_df clusters").split()
    )

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
        METHODS.get(method)  # an unknown name is refused, listing the valid ones
        self.method: Method = method
        late = method == "colbert-prf"
        fb_docs = (3 if late else 10) if fb_docs is None else fb_docs
        beta = (1.0 if late else 0.75) if beta is None else beta
        for name, value in [("fb_docs", fb_docs), ("fb_terms", fb_terms), ("clusters", clusters)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an int >= 0, got {value!r}")
        self.fb_docs, self.fb_terms, self.clusters = fb_docs, fb_terms, clusters
        if not (is_finite_number(original_weight) and 0 <= original_weight <= 1):
            raise InvalidInputError(
                f"original_weight must be a number in [0, 1], got {original_weight!r}"
            )
        for name, number in [("alpha", alpha), ("beta", beta)]:
            if not is_finite_number(number):
                raise InvalidInputError(f"{name} must be a finite number, got {number!r}")
        if late and beta < 0:  # each weight is folded into its vector: MaxSim scales by w >= 0 only
            raise InvalidInputError(f"colbert-prf needs beta >= 0, got {beta!r}")
        if not (is_finite_number(max_df) and 0 < max_df <= 1):
            raise InvalidInputError(f"max_df must be a number in (0, 1], got {max_df!r}")
        self.original_weight, self.alpha, self.beta = original_weight, alpha, beta
        self.max_df = max_df
        settings = FeedbackSettings(
            method, fb_docs, fb_terms, original_weight, alpha, beta, max_df, clusters
        )
        # the retriever that searches the refined query: the base, or a Hybrid's member
        candidates: list[tuple[str | None, Retriever]] = [(None, self.base)]
        if isinstance(self.base, Hybrid):
            candidates = list(zip(self.base.names, self.base.retrievers, strict=True))
        self._source_name, self._source, self._passes = passes_for(settings, candidates)

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
        config = self._changed_config()
        config.pop("base", None)
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
        if self._source_name is not None:
            with self._source._lock.read():
                return self._passes.refine(queries, first)
        return self._passes.refine(queries, first)

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
                hits = self._passes.search(refined, k, filter)
                return [self._relabel(h) for h in hits]
            hybrid = cast(Hybrid, self.base)
            fetch = max(hybrid.depth, k)
            source = self._source

            def second_pass() -> list[list[Hit]]:
                with source._lock.read():
                    return self._passes.search(refined, fetch, filter)

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
        base = base_cls._restore(folder, base_manifest, folder.parent)
        try:
            return cls(base, **config)
        except TypeError as exc:
            raise CorruptCollectionError(
                f"{folder}: manifest config does not fit PRF: {exc}"
            ) from None
