"""BM25 over the shared sparse index, with a Lucene-style analyzer; optionally searched in Milvus.

With ``engine=MilvusOptions(uri)`` the documents' BM25 vectors also go to a Milvus sparse field and
Milvus answers the searches (see :mod:`rag_retrievers.engines.milvus_search`). Term weights come
from our analyzer and BM25 here, so scores are ours, not Milvus's built-in BM25 function: a
document is stored as its length-normalised tf part ``tf / (tf + k1 (1 - b + b dl / avgdl))`` and a
query as ``count x idf``, their dot product being the BM25 score. idf lives on the query side,
computed from this process's live statistics at every search, so it is always exact. avgdl lives in
the stored vectors: they are rewritten, all of them, when the live mean length drifts more than
``reweight_tolerance`` (default 2%) from the one they were written with, so between rewrites a
score can differ from in-process BM25 by the length normalisation of that drift (at most about ``b
x 2%`` relative). ``reweight_tolerance=0`` keeps scores exact at the cost of a full rewrite on
every add or delete that changes avgdl."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.analysis import Analyzer
from rag_retrievers.engines.options import MilvusOptions, engine_from, milvus_field
from rag_retrievers.errors import InvalidInputError, is_finite_number
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.index.docstore import DocumentStore
from rag_retrievers.index.sparse import SparseIndex, snapshot_collection
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever
from rag_retrievers.scoring.bm25 import bm25_variant

if TYPE_CHECKING:
    from rag_retrievers.engines.milvus_search import MilvusField


@register_retriever("bm25")
class BM25(Retriever):
    """Lexical retrieval with BM25 (``variant="lucene"`` by default, or ``"okapi"``).

    Defaults ``k1=0.9, b=0.4`` are Anserini's and Pyserini's BEIR settings.

    >>> bm25 = BM25()
    >>> bm25.add([Document(id="a", text="sparse retrieval with BM25"),
    ...           Document(id="b", text="dense retrieval with embeddings")])
    >>> [hit.id for hit in bm25.search("bm25 ranking", k=5)]
    ['a']
    """

    config_keys = frozenset("k1 b variant epsilon analyzer dtype reweight_tolerance engine".split())
    engines = (MilvusOptions,)

    def __init__(
        self,
        *,
        k1: float = 0.9,
        b: float = 0.4,
        variant: str = "lucene",
        epsilon: float = 0.25,
        analyzer: Analyzer | dict[str, Any] | None = None,
        dtype: str = "float32",
        engine: MilvusOptions | Mapping[str, Any] | None = None,
        reweight_tolerance: float = 0.02,
    ) -> None:
        super().__init__()
        if not (is_finite_number(k1) and k1 >= 0):
            raise InvalidInputError(f"k1 must be a finite number >= 0, got {k1!r}")
        if not (is_finite_number(b) and 0 <= b <= 1):
            raise InvalidInputError(f"b must be a number in [0, 1], got {b!r}")
        if not (is_finite_number(epsilon) and epsilon >= 0):
            raise InvalidInputError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self._variant = bm25_variant(variant)  # resolved once, not per query
        self.variant = self._variant.name
        if isinstance(analyzer, dict):
            analyzer = Analyzer.from_config(analyzer)
        elif analyzer is None:
            analyzer = Analyzer()
        elif not isinstance(analyzer, Analyzer):
            raise InvalidInputError(
                f"analyzer must be an Analyzer or its config dict, got {type(analyzer).__name__}"
            )
        if not (is_finite_number(reweight_tolerance) and reweight_tolerance >= 0):
            raise InvalidInputError(
                f"reweight_tolerance must be a finite number >= 0, got {reweight_tolerance!r}"
            )
        self.analyzer = analyzer
        self.reweight_tolerance = float(reweight_tolerance)
        self._index = SparseIndex(self._weight_postings, dtype)
        self._docs = DocumentStore()
        self._idf: np.ndarray | None = None
        self.milvus: MilvusField | None = None
        self._milvus_avg: float | None = None  # the avgdl of the vectors Milvus holds
        self.engine = engine_from(engine, self.engines, "BM25")
        if self.engine is not None:
            from rag_retrievers.engines.milvus import VectorField

            identity = {key: v for key, v in self.config().items() if key != "dtype"}
            spec = VectorField("sparse", identity={"retriever": "bm25", **identity})
            self.milvus, self._engine_config = milvus_field(self.engine, "bm25", spec)

    def config(self) -> dict[str, Any]:
        return {
            "k1": self.k1,
            "b": self.b,
            "variant": self.variant,
            "epsilon": self.epsilon,
            "analyzer": self.analyzer.to_config(),
            "dtype": self._index.dtype.name,
            **(
                {"engine": self._engine_config, "reweight_tolerance": self.reweight_tolerance}
                if self.milvus is not None
                else {}
            ),
        }

    def _config_defaults(self) -> dict[str, Any]:
        return {"analyzer": Analyzer().to_config()}

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or ``None``."""
        return self._docs.get(doc_id)

    # -- scoring -------------------------------------------------------------------------------

    def _weight_postings(self, tf: np.ndarray, doc_len: np.ndarray, avg_len: float) -> np.ndarray:
        return self._variant.tf(tf, doc_len, avg_len, self.k1, self.b)

    def idf(self) -> np.ndarray:
        """idf per term id of the index, for the documents indexed now."""
        idf = self._idf
        if idf is None:
            idf = self._variant.idf(
                self._index.document_frequency, self._index.n_live, epsilon=self.epsilon
            )
            self._idf = idf
        return idf

    def query_weights(self, query: str) -> dict[str, float]:
        """The query as the sparse vector BM25 scores with: term -> count x idf."""
        return self._weights(self.analyzer.analyze(query))

    # -- term vectors, for pseudo-relevance feedback (adapters.prf_abilities.TermVectors) ------

    def query_terms(self, query: str) -> dict[str, float]:
        """The analysed query as term -> count (before idf)."""
        return {t: float(n) for t, n in Counter(self.analyzer.analyze(query)).items()}

    def document_terms(self, doc_id: str) -> dict[str, float]:
        """A stored document's term counts, as indexed ({} if absent)."""
        doc = self._docs.get(doc_id)
        if doc is None:
            return {}
        # the analyzer is deterministic: these are the counts the index holds for the document
        return {t: float(n) for t, n in Counter(self.analyzer.analyze(doc.text)).items()}

    def document_fraction(self, term: str) -> float:
        """The share of documents that contain ``term``."""
        tid, n = self._index.term_ids.get(term), self._index.n_live
        return float(self._index.document_frequency[tid]) / n if tid is not None and n else 0.0

    def search_terms(
        self, terms: Mapping[str, float], k: int, filter: CompiledFilter | None
    ) -> list[Hit]:
        """A weighted bag of terms, each scored boost x idf x BM25 tf (a Lucene BoostQuery)."""
        idf, ids = self.idf(), self._index.term_ids
        weights = {t: w * float(idf[ids[t]]) for t, w in terms.items() if t in ids}
        mask = self._docs.filter_mask(filter) if filter is not None else None
        rows, scores = self._index.search(weights, k, mask)
        return self._docs.hits(rows, scores, self.name)

    def _weights(self, terms: list[str]) -> dict[str, float]:
        idf, ids = self.idf(), self._index.term_ids
        return {t: n * float(idf[ids[t]]) for t, n in Counter(terms).items() if t in ids}

    # -- the adapter's methods -----------------------------------------------------------------

    def _add(self, documents: list[Document]) -> None:
        term_lists = self.analyzer.analyze_many([d.text for d in documents])
        replaced = [row for d in documents if (row := self._docs.remove(d.id)) is not None]
        self._index.delete_rows(replaced)
        self._index.add_term_counts(term_lists)
        self._docs.append(documents)
        self._idf = None
        if self.milvus is not None:
            self._mirror(self.milvus, documents)

    def _delete(self, ids: list[str]) -> int:
        present = [doc_id for doc_id in ids if doc_id in self._docs]
        if self.milvus is not None:
            self.milvus.delete(present)
        rows = [row for doc_id in present if (row := self._docs.remove(doc_id)) is not None]
        self._index.delete_rows(rows)
        self._idf = None
        if self.milvus is not None:
            self._mirror(self.milvus, [])
        return len(rows)

    def _mirror(self, milvus: MilvusField, documents: list[Document]) -> None:
        """Write ``documents``' vectors to Milvus; all live ones when avgdl drifted."""
        from rag_retrievers.engines.milvus_search import sparse_rows

        avg, stored = self._index.mean_length, self._milvus_avg
        if stored is None or abs(avg - stored) > self.reweight_tolerance * stored:
            documents, self._milvus_avg = list(self._docs.live_documents()), avg
        if documents:
            rows = [row for d in documents if (row := self._docs.row(d.id)) is not None]
            milvus.upsert(documents, sparse_rows(self._index, rows, self._milvus_avg))

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        if self.milvus is not None:
            return self._search_milvus(self.milvus, queries, k, filter)
        mask = self._docs.filter_mask(filter) if filter is not None else None
        results = []
        for terms in self.analyzer.analyze_many(queries):
            rows, scores = self._index.search(self._weights(terms), k, mask)
            results.append(self._docs.hits(rows, scores, self.name))
        return results

    def milvus_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """The queries as sparse vectors of the Milvus field (term id + 1 -> count x idf)."""
        from rag_retrievers.engines.milvus_search import sparse_query

        terms = self.analyzer.analyze_many(queries)
        return [sparse_query(self._index, self._weights(t)) for t in terms]

    def _search_milvus(
        self, milvus: MilvusField, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        if not len(self._docs):
            return [[] for _ in queries]
        found = milvus.search(self.milvus_queries(queries), k, filter, self._docs)
        return [self._docs.hits(rows, scores, self.name) for rows, scores in found]

    def _metadata_fields(self) -> set[str]:
        return self._docs.metadata_fields()

    # -- persistence ---------------------------------------------------------------------------

    def _write_data(self, folder: Path) -> None:
        self._snapshot()(folder)

    def _snapshot(self) -> Callable[[Path], None]:
        return snapshot_collection(self._docs, self._index)

    def _manifest_extra(self) -> dict[str, Any]:
        return {} if self.milvus is None else {"milvus": {"avgdl": self._milvus_avg}}

    @classmethod
    def _read_data(
        cls,
        folder: Path,
        manifest: dict[str, Any],
        *,
        engine: MilvusOptions | None = None,
    ) -> Self:
        config = dict(manifest["config"])
        if engine is None:
            config.pop("reweight_tolerance", None)
        retriever = cls(**config, engine=engine)
        retriever._docs = DocumentStore.read_jsonl(folder / "documents.jsonl")
        retriever._index = SparseIndex.read(
            folder,
            len(retriever._docs),
            doc_weighting=retriever._weight_postings,
            dtype=manifest["config"].get("dtype", "float32"),
        )
        if retriever.milvus is not None:
            from rag_retrievers.engines.milvus_search import sparse_rows

            # the vectors as they were saved (same avgdl), so scores equal the saved retriever's
            saved = (manifest.get("milvus") or {}).get("avgdl")
            avg = retriever._index.mean_length
            if isinstance(saved, int | float) and is_finite_number(saved):
                avg = float(saved)
            docs, rows = retriever._docs.live_rows()
            retriever.milvus.sync(docs, sparse_rows(retriever._index, rows, avg))
            retriever._milvus_avg = avg if docs else None
        return retriever
