"""What the dense, BM25, SPLADE and ColBERT adapters share when their vectors live in Milvus.

An adapter given ``uri=`` keeps its documents (and, for the sparse ones, the index statistics
and term vectors PRF reads) in this process as before, and hands its vectors to a
:class:`MilvusField`: one vector field of a :class:`~rag_retrievers.engines.milvus.MilvusStore`
collection. Milvus answers the nearest-neighbour searches, with our metadata filters translated
to its boolean expressions; hits are checked against the filter here when the translation is
not exact, and ids this process does not hold (another client's rows, placeholders of a shared
collection) are dropped. ColBERT stores one MUVERA encoding per document
(:class:`FDECandidates`) and reranks Milvus's candidates by exact MaxSim here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from rag_retrievers.engines.milvus import MilvusStore, VectorField, filter_expression, milvus_store
from rag_retrievers.engines.milvus_connection import HYBRID_SEARCH
from rag_retrievers.engines.milvus_index import MilvusIndex
from rag_retrievers.errors import ForeignCollectionError, InvalidInputError
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.index.docstore import DocumentStore
from rag_retrievers.index.sparse import SparseIndex
from rag_retrievers.records import Document
from rag_retrievers.scoring.muvera import FDESettings, document_fdes, fde_projections, query_fdes

DEFAULT_COLLECTION = "rag_retrievers"


def milvus_options(uri: str | None, collection: str, field: str) -> dict[str, Any]:
    """The constructor options an adapter's ``config()`` records for its Milvus field (never
    the token: manifests hold no secrets)."""
    return {} if uri is None else {"uri": uri, "collection": collection, "field": field}


class MilvusField:
    """One retriever's vector field in a Milvus collection.

    ``adopt``: the retriever is being reopened from a snapshot and will :meth:`sync` the
    collection; otherwise a collection that already holds rows is refused (this new retriever
    has no documents for them) unless ``overwrite`` drops it.

    ``index`` (dense fields): :class:`~rag_retrievers.engines.milvus_index.MilvusIndex`, a type
    name (``"FLAT"``, ``"HNSW"``, ``"IVF_FLAT"``) or a mapping such as ``{"type": "HNSW", "M":
    16, "efConstruction": 200, "ef": 64}``; ``None`` keeps ``spec``'s (``FLAT``: exact). It is
    recorded with the field; an existing field built another way is refused.
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        field: str,
        spec: VectorField,
        *,
        token: str | None = None,
        overwrite: bool = False,
        adopt: bool = False,
        index: MilvusIndex | str | Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(collection, str) or not collection:
            raise InvalidInputError(f"collection must be a non-empty str, got {collection!r}")
        if index is not None:
            spec = replace(spec, index=MilvusIndex.coerce(index))  # checked before connecting
        self.spec = spec
        self.store: MilvusStore = milvus_store(uri, collection, token=token)
        self.name = field
        self.store.attach(field, spec, overwrite=overwrite)
        if not adopt and not overwrite and self.store.count():
            raise ForeignCollectionError(
                f"Milvus collection {collection!r} at {uri} already holds "
                f"{self.store.count()} rows, but this new retriever has no documents for them: "
                "reopen the saved collection (Retriever.open(PATH)), choose another collection, "
                "or pass overwrite=True to replace it"
            )

    @property
    def index(self) -> MilvusIndex | None:
        """The field's index (``None`` for sparse fields, which are always searched exactly)."""
        return self.spec.index

    @property
    def exact(self) -> bool:
        """Whether Milvus scores every vector of this field (``FLAT``, or a sparse field)."""
        return self.spec.index is None or self.spec.index.exact

    def upsert(self, documents: Sequence[Document], vectors: Sequence[Any]) -> None:
        self.store.upsert(
            self.name, [d.id for d in documents], [d.metadata for d in documents], vectors
        )

    def delete(self, ids: Sequence[str]) -> None:
        self.store.delete(ids)

    def sync(self, documents: Sequence[Document], vectors: Sequence[Any]) -> None:
        """Make the collection hold exactly ``documents`` (a reopened snapshot)."""
        keep = {d.id for d in documents}
        self.store.delete([i for i in self.store.ids() if i not in keep])
        self.upsert(documents, vectors)

    def expression(
        self, filter: CompiledFilter | None, docs: DocumentStore
    ) -> tuple[str | None, bool]:
        if filter is None:
            return None, True
        return filter_expression(filter, list_fields(docs, filter))

    def search(
        self,
        vectors: Sequence[Any],
        k: int,
        filter: CompiledFilter | None,
        docs: DocumentStore,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query vector: (rows, scores) of the ``k`` best live documents that match
        ``filter``, best first, ties by row."""
        expression, exact = self.expression(filter, docs)
        n = len(docs)
        fetch = min(k, max(n, 1))
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(vectors)
        # a query sharing no term with the index is an empty sparse vector: no hits
        pending = [i for i, v in enumerate(vectors) if not (isinstance(v, dict) and not v)]
        while pending:
            found = self.store.search(
                self.name, [vectors[i] for i in pending], fetch, expression, index=self.spec.index
            )
            still = []
            for i, hits in zip(pending, found, strict=True):
                rows, scores = _known(hits, docs, None if exact else filter)
                if len(rows) >= k or len(hits) < fetch or fetch >= n:
                    results[i] = _ordered(rows, scores, k)
                else:  # rows this process does not hold, or not matching: ask for more
                    still.append(i)
            pending, fetch = still, min(max(n, 1), 4 * fetch)
        return [r if r is not None else _ordered(np.zeros(0), np.zeros(0), k) for r in results]


def list_fields(docs: DocumentStore, filter: CompiledFilter) -> set[str]:
    """The fields of ``filter`` that some live document holds as a list."""
    names = filter.fields
    return {
        key
        for doc in docs.live_documents()
        for key, value in doc.metadata.items()
        if key in names and isinstance(value, list)
    }


def _known(
    hits: list[tuple[str, float]], docs: DocumentStore, filter: CompiledFilter | None
) -> tuple[np.ndarray, np.ndarray]:
    rows, scores = [], []
    for doc_id, score in hits:
        row = docs.row(doc_id)
        if row is None:
            continue
        if filter is not None and not filter.matches(docs.live_document(row).metadata):
            continue
        rows.append(row)
        scores.append(score)
    return np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def _ordered(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((rows, -scores))[:k]
    return rows[order].astype(np.int64), scores[order]


# -- sparse vectors ----------------------------------------------------------------------------


def sparse_query(index: SparseIndex, weights: Mapping[str, float]) -> dict[int, float]:
    """A term -> weight query as a Milvus sparse vector over the index's term ids (+1: id 0 is
    the placeholder dimension)."""
    term_ids, values = index.query_vector(dict(weights))
    return {int(t) + 1: float(v) for t, v in zip(term_ids.tolist(), values.tolist(), strict=True)}


def sparse_rows(
    index: SparseIndex, rows: Sequence[int], avg_len: float | None = None
) -> list[dict[int, float]]:
    """The scored vector of each row as Milvus sparse vectors: raw values through the index's
    ``doc_weighting`` with mean document length ``avg_len`` (BM25), or raw values."""
    lengths = index.row_lengths()
    out = []
    for row, (ids, values) in zip(rows, index.raw_rows(rows), strict=True):
        if index.doc_weighting is not None:
            doc_len = np.full(len(values), lengths[row])
            values = index.doc_weighting(values, doc_len, float(avg_len or 0.0))
        values = values.astype(index.dtype)
        # Milvus refuses an empty sparse vector: an empty document gets a placeholder
        out.append(dict(zip((ids + 1).tolist(), values.tolist(), strict=True)) or {0: 1e-30})
    return out


# -- fusion inside Milvus ----------------------------------------------------------------------


def milvus_fusion(
    members: Sequence[Any],
    queries: list[str],
    k: int,
    depth: int,
    rrf_k: float,
    filter: CompiledFilter | None,
) -> list[list[tuple[Document, float]]] | None:
    """RRF of ``members`` computed by Milvus ``hybrid_search``, or ``None`` when it cannot be:
    members not all in one collection (distinct fields of one store), a filter Milvus cannot
    state exactly, or a query a member cannot express (no known term).

    Each member needs ``milvus`` (a :class:`MilvusField`), ``milvus_queries(queries)`` and
    ``get(doc_id)``. Returns per query the best ``k`` (document, fused score), ties by id as in
    :func:`rag_retrievers.scoring.fusion.reciprocal_rank_fusion`.
    """
    fields: list[MilvusField] = []
    for member in members:
        field = getattr(member, "milvus", None)
        if not isinstance(field, MilvusField) or not hasattr(member, "milvus_queries"):
            return None
        fields.append(field)
    if not fields:
        return None
    store = fields[0].store
    if any(f.store is not store for f in fields) or len({f.name for f in fields}) != len(fields):
        return None
    if not store.supports(HYBRID_SEARCH):
        return None
    expression, exact = fields[0].expression(filter, members[0]._docs)
    if not exact:
        return None
    with contextlib.ExitStack() as locks:
        for member in members:
            locks.enter_context(member._lock.read())
        requests = []
        for field, member in zip(fields, members, strict=True):
            vectors = member.milvus_queries(queries)
            if any(isinstance(v, dict) and not v for v in vectors):
                return None
            requests.append((field.name, vectors, depth))
        fused = store.hybrid_search(requests, depth, rrf_k=rrf_k, expression=expression)
        out = []
        for hits in fused:
            found = [(doc, score) for doc_id, score in hits if (doc := members[0].get(doc_id))]
            # Milvus orders ties arbitrarily, ours go by id: sort the depth it gave, then cut
            found.sort(key=lambda ds: (-round(ds[1], 9), ds[0].id))
            out.append(found[:k])
    return out


# -- multi-vector documents as fixed-dimensional encodings -------------------------------------


class FDECandidates:
    """ColBERT's candidate generation in Milvus: each document's token vectors as one MUVERA
    encoding (:mod:`rag_retrievers.scoring.muvera`) in a ``FLOAT_VECTOR`` field searched by inner
    product; a query's encoding finds the candidates that exact MaxSim then ranks.

    milvus-lite (3.2.2, with pymilvus 3.0.2) has no embedding-list fields (an ARRAY of STRUCT
    with a FLOAT_VECTOR and the MAX_SIM metrics, Milvus 2.6+ servers): it drops such a field
    from the schema. The encodings work on every Milvus, embedded or server.

    ``index``: as :class:`MilvusField`'s (``FLAT`` by default; ``HNSW`` or ``IVF_FLAT`` make the
    candidates approximate twice over: the encodings approximate MaxSim, the index the
    encodings' inner products).
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        field: str,
        settings: FDESettings,
        token_dim: int,
        identity: Mapping[str, Any],
        *,
        token: str | None = None,
        overwrite: bool = False,
        adopt: bool = False,
        index: MilvusIndex | str | Mapping[str, Any] | None = None,
    ) -> None:
        self.projections = fde_projections(settings, token_dim)
        spec = VectorField(
            "dense",
            "IP",
            self.projections.dimension,
            {"retriever": "colbert", **identity, "fde": asdict(settings)},
        )
        self.field = MilvusField(
            uri,
            collection,
            field,
            spec,
            token=token,
            overwrite=overwrite,
            adopt=adopt,
            index=index,
        )

    @property
    def store(self) -> MilvusStore:
        return self.field.store

    def upsert(self, documents: Sequence[Document], tokens: Sequence[np.ndarray]) -> None:
        """Write the encodings of ``documents`` (``tokens``: each one's stored vectors)."""
        self.field.upsert(documents, document_fdes(list(tokens), self.projections).tolist())

    def delete(self, ids: Sequence[str]) -> None:
        self.field.delete(ids)

    def sync(self, documents: Sequence[Document], tokens: Sequence[np.ndarray]) -> None:
        """Make the collection hold exactly ``documents`` (a reopened snapshot)."""
        self.field.sync(documents, document_fdes(list(tokens), self.projections).tolist())

    def candidates(
        self,
        queries: Sequence[np.ndarray],
        n: int,
        filter: CompiledFilter | None,
        docs: DocumentStore,
    ) -> list[np.ndarray]:
        """Per query (token vectors): the rows of the ``n`` live documents matching ``filter``
        whose encodings score best."""
        vectors = query_fdes(list(queries), self.projections).tolist()
        return [rows for rows, _ in self.field.search(vectors, n, filter, docs)]
