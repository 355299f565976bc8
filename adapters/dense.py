"""Dense retrieval: a sentence-transformers bi-encoder, vectors in Chroma.

Where things live
-----------------
- **Chroma** holds the vectors (ids + embeddings, HNSW index; cosine space, or inner product for
  dot-product models) and answers the nearest-neighbour queries of collections larger than
  ``exact_search_max`` (20,000 documents by default). Embedded by default
  (``chromadb.PersistentClient`` in a working directory), or a Chroma server
  (``engine=ChromaOptions(host, port)``, ``chromadb.HttpClient``) for scale-out:
  :class:`~rag_retrievers.engines.chroma.ChromaCollection`.
- **This process** holds the documents (ids, texts, metadata) and a float32 copy of the vectors in
  row order. The copy costs ``4 x dimension`` bytes a document (1.5 KiB for MiniLM) and buys four
  things: a collection of at most ``exact_search_max`` documents is searched exactly by one matrix
  product (5,000 x 384 takes about a millisecond, and HNSW's approximate graph, rebuilt on every
  open, would make results move between runs); Chroma's candidates are rescored exactly (``cosine
  = v . q``, identical before and after a save, ties broken by insertion order); a selective
  metadata filter is answered exactly by brute force over the matching rows; and a save writes
  the vectors without asking Chroma for them
  (:class:`~rag_retrievers.index.vector_rows.VectorRows`). ``exact_search_max=0`` sends every search
  to the engine.

Persistence, and why the collection directory holds no Chroma files
-------------------------------------------------------------------
Chroma writes its own files continuously (SQLite log, HNSW segments flushed every
``sync_threshold`` adds) and has no atomic snapshot. Copying its folder while a client has it open
can copy a half-flushed state, and letting Chroma open a saved generation in place would modify the
very files the manifest checksums. So the two are kept apart:

- the live Chroma data lives in a *working directory* (a fresh temporary directory, removed by
  :meth:`Dense.close` or when the retriever is garbage-collected; or
  ``ChromaOptions(workdir=...)``), or on the server;
- :meth:`save` writes a generation of plain files — ``documents.jsonl`` (ids, texts, metadata) and
  ``vectors.npy`` (float32, same row order) — through
  :func:`rag_retrievers.index.storage.save_collection` (temp folder, fsync, rename, then the
  manifest atomically). A crash at any point leaves the previous manifest pointing at the previous,
  complete generation, and nothing ever writes into a saved generation afterwards;
- :meth:`open` checks that the model loaded now is the one the manifest records (dimension and a
  sha256 of the weight files), then loads the snapshot into a fresh Chroma collection — embedded
  in a new working directory, or on the recorded server (that collection is rebuilt from the
  snapshot) — without re-encoding anything.

Filters
-------
Our filter dialect (:mod:`rag_retrievers.filters`) is evaluated here, not translated to Chroma
``where``: Chroma differs on list-valued fields, on ``$ne``/``$nin`` for documents that lack the
field, on int-vs-float equality and on string ranges, and it cannot reject unknown fields. The
matching rows are scored exactly when there are at most ``exact_search_max`` of them; otherwise
Chroma is asked for more neighbours than ``k`` (in proportion to how selective the filter is, then
four times more while too few match) and the non-matching ones are dropped. Results equal BM25's
filter semantics exactly.

Milvus instead of Chroma
------------------------
``engine=MilvusOptions(uri)`` (a local ``PATH.db`` for milvus-lite, or ``http://host:19530``)
puts the vectors in a
Milvus ``FLOAT_VECTOR`` field (:mod:`rag_retrievers.engines.milvus_search`; inner product for
normalised or dot-product models, cosine otherwise), indexed as ``MilvusOptions(index=...)``
says: exact ``FLAT`` by default, or approximate ``HNSW`` / ``IVF_FLAT`` for a server
(:class:`~rag_retrievers.engines.milvus_index.MilvusIndex`). Everything above holds,
except that a filter matching more than ``exact_search_max`` rows goes to Milvus as a boolean
expression (pre-filtered search) instead of over-fetching.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
from rag_retrievers.adapters.encoded import rebuild_with_model

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.dense import DenseEncoder
from rag_retrievers.encoders.identity import (
    DimensionMismatchError,
    ModelMismatchError,
    check_same_model,
)
from rag_retrievers.engines.chroma import ChromaCollection
from rag_retrievers.engines.options import (
    DEFAULT_COLLECTION,
    ChromaOptions,
    EngineOptions,
    MilvusOptions,
    engine_from,
    milvus_field,
)
from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.index.docstore import DocumentStore
from rag_retrievers.index.npy import load_npy
from rag_retrievers.index.vector_rows import VectorRows
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever

if TYPE_CHECKING:
    from rag_retrievers.engines.milvus_search import MilvusField

__all__ = [
    "DEFAULT_COLLECTION",
    "Dense",
    "DimensionMismatchError",
    "ModelMismatchError",
    "check_same_model",
]


@register_retriever("dense")
class Dense(Retriever):
    """Dense retrieval with a sentence-transformers bi-encoder; vectors in Chroma.

    ``model`` is a short name (``minilm``), a local folder or a Hugging Face id; or pass a ready
    ``encoder`` (:class:`~rag_retrievers.encoders.dense.DenseEncoder`). Scores are cosine
    similarities (dot products for dot-product models), best first.

    >>> dense = Dense("minilm")  # doctest: +SKIP
    >>> dense.add([Document(id="a", text="sparse retrieval with BM25"),
    ...            Document(id="b", text="a recipe for sourdough bread")])  # doctest: +SKIP
    >>> [hit.id for hit in dense.search("lexical ranking functions", k=1)]  # doctest: +SKIP
    ['a']

    Server mode: ``Dense(engine=ChromaOptions(host="127.0.0.1", collection="docs"))``. A new
    retriever refuses a server collection that already holds vectors (``overwrite=True`` replaces
    it); :meth:`open` rebuilds the recorded server collection from the saved snapshot.
    """

    #: documents per locked write: the progress bar moves and searches interleave every batch
    add_batch_size: ClassVar[int] = 1024
    config_keys = frozenset(
        "model batch_size normalize query_prompt document_prompt engine".split()
    )
    engines: ClassVar[tuple[type[EngineOptions], ...]] = (MilvusOptions, ChromaOptions)
    #: deleted rows kept before compaction (at least as many as live rows, too)
    compact_min_dead: ClassVar[int] = 1024
    #: scores held at once by an exact search (queries x rows): bounds its memory to ~64 MiB
    exact_block_scores: ClassVar[int] = 1 << 24

    def __init__(
        self,
        model: str | None = None,
        *,
        encoder: DenseEncoder | None = None,
        batch_size: int = 32,
        device: str | None = None,
        normalize: bool | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        engine: MilvusOptions | ChromaOptions | Mapping[str, Any] | None = None,
        exact_search_max: int = 20_000,
    ) -> None:
        super().__init__()
        if encoder is None:
            encoder = DenseEncoder(
                "minilm" if model is None else model,
                device=device,
                batch_size=batch_size,
                normalize=normalize,
                query_prompt=query_prompt,
                document_prompt=document_prompt,
            )
        elif not isinstance(encoder, DenseEncoder):
            raise InvalidInputError(f"encoder must be a DenseEncoder, got {encoder!r}")
        elif model is not None and model != encoder.name:
            raise InvalidInputError(
                f"model={model!r} and encoder={encoder!r} disagree; pass one of them"
            )
        self.engine = engine_from(engine, self.engines, "Dense")
        if isinstance(exact_search_max, bool) or not isinstance(exact_search_max, int):
            raise InvalidInputError(f"exact_search_max must be an int, got {exact_search_max!r}")
        self.encoder = encoder
        self.exact_search_max = exact_search_max
        self.dimension = encoder.dimension
        self._identity = encoder.identity()
        cosine = encoder.similarity == "cosine" and not encoder.normalize
        self._rows = VectorRows(self.dimension, cosine=cosine)
        self.milvus: MilvusField | None = None
        self._engine_config: dict[str, Any] | None = None
        if not isinstance(self.engine, MilvusOptions):  # else Milvus holds the vectors
            chroma = (self.engine or ChromaOptions()).resolved("dense")
            self._chroma = ChromaCollection(
                chroma.collection or DEFAULT_COLLECTION,
                identity=self._identity,
                space=self.space,
                host=chroma.host,
                port=chroma.port,
                workdir=chroma.workdir,
                overwrite=chroma.overwrite,
                adopt=chroma.adopt,
            )
            if chroma.server:
                self._engine_config = chroma.to_config()
        else:
            from rag_retrievers.engines.milvus import VectorField

            identity = {key: self._identity.get(key) for key in ("name", "similarity", "normalize")}
            identity["weights_sha256"] = (self._identity.get("weights") or {}).get("sha256")
            metric: Literal["IP", "COSINE"] = "IP"
            if self.space == "cosine" and not encoder.normalize:
                metric = "COSINE"
            spec = VectorField("dense", metric, self.dimension, {"retriever": "dense", **identity})
            self.milvus, self._engine_config = milvus_field(self.engine, "dense", spec)

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "model": self.encoder.name,
            "batch_size": self.encoder.batch_size,
            "normalize": self.encoder.normalize,
            "query_prompt": self.encoder.query_prompt,
            "document_prompt": self.encoder.document_prompt,
        }
        if self._engine_config is not None:
            config["engine"] = self._engine_config
        return config

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or ``None``."""
        return self._docs.get(doc_id)

    # -- where the vectors are ---------------------------------------------------------------

    @property
    def milvus_server(self) -> bool:
        """Whether the vectors are on a Milvus server (not milvus-lite, not Chroma)."""
        from rag_retrievers.engines.milvus import is_server_uri

        return isinstance(self.engine, MilvusOptions) and is_server_uri(self.engine.uri)

    @property
    def space(self) -> str:
        """Chroma's HNSW space: ``cosine``, or ``ip`` for dot-product models."""
        return "cosine" if self.encoder.similarity == "cosine" else "ip"

    def close(self) -> None:
        """Release the Chroma client and remove the temporary working directory, if any.

        The retriever cannot be used afterwards. Garbage collection does the same. (A Milvus
        store is shared by the retrievers of its collection: close it with
        :func:`rag_retrievers.engines.milvus.close_stores`.)
        """
        if self.milvus is None:
            self._chroma.close()

    def _engine_upsert(self, documents: list[Document], vectors: np.ndarray) -> None:
        if self.milvus is not None:
            self.milvus.upsert(documents, vectors.tolist())
        else:
            self._chroma.upsert(documents, vectors)

    def _engine_delete(self, ids: list[str]) -> None:
        if self.milvus is not None:
            self.milvus.delete(ids)
        else:
            self._chroma.delete(ids)

    # -- rows: the documents and a float32 copy of their vectors, in this process -------------

    @property
    def _docs(self) -> DocumentStore:
        """The documents by row (:class:`~rag_retrievers.index.vector_rows.VectorRows` holds
        both)."""
        return self._rows.docs

    def _row(self, doc_id: str) -> int | None:
        return self._rows.docs.row(doc_id)

    # -- the adapter's methods -----------------------------------------------------------------

    def _add(self, documents: list[Document]) -> None:
        vectors = np.empty((len(documents), self.dimension), dtype=np.float32)
        to_encode: dict[str, list[int]] = {}  # text -> positions in documents
        changed = []
        for i, doc in enumerate(documents):
            row = self._row(doc.id)
            old = None if row is None else self._docs.live_document(row)
            if row is not None and old is not None and old.text == doc.text:
                vectors[i] = self._rows.matrix[row]  # unchanged text: no encoding, no Chroma write
            else:
                to_encode.setdefault(doc.text, []).append(i)
                changed.append(i)
        if to_encode:
            encoded = self.encoder.encode_documents(list(to_encode), show_progress=False)
            for vector, positions in zip(encoded, to_encode.values(), strict=True):
                vectors[positions] = vector
            if self.milvus is None:
                self._engine_upsert([documents[i] for i in changed], vectors[changed])
        if self.milvus is not None:  # Milvus also holds the metadata its filters read
            self._engine_upsert(documents, vectors)
        # the engine holds the new vectors: now the rows (a replaced document gets a new row)
        self._rows.append(documents, vectors)
        self._rows.compact_if_sparse(self.compact_min_dead)

    def _delete(self, ids: list[str]) -> int:
        present = [doc_id for doc_id in ids if doc_id in self._docs]
        if present:
            self._engine_delete(present)
        for doc_id in present:
            self._docs.remove(doc_id)
        self._rows.compact_if_sparse(self.compact_min_dead)
        return len(present)

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        if len(self._docs) == 0:
            return [[] for _ in queries]
        return self.search_vectors(self.encoder.encode_queries(queries), k, filter)

    # -- query vectors, for vector pseudo-relevance feedback (adapters.prf_abilities.QueryVectors) -

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """The queries as this collection's encoder embeds them, one row each."""
        return self.encoder.encode_queries(queries)

    def milvus_queries(self, queries: list[str]) -> list[list[float]]:
        """The queries as vectors of the Milvus field (for fusion inside Milvus)."""
        return self.encoder.encode_queries(queries).tolist()

    def document_vectors(self, doc_ids: list[str]) -> np.ndarray:
        """The stored vectors of these documents, one row each (ids must be present)."""
        return self._rows.vectors(doc_ids)

    def search_vectors(
        self, vectors: np.ndarray, k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        """Ranked hits for each query vector (called under the read lock)."""
        q = np.asarray(vectors, dtype=np.float32)
        if len(self._docs) == 0:
            return [[] for _ in q]
        if filter is None:
            if len(self._docs) <= self.exact_search_max:
                return self._ranked_exactly(self._rows.live_rows(), q, k)
            candidates = self._chroma_candidates(q, min(k, len(self._docs)))
            return [self._ranked(rows, qv, k) for rows, qv in zip(candidates, q, strict=True)]
        mask = self._docs.filter_mask(filter)
        allowed = mask.nonzero()[0]
        if allowed.size == 0:
            return [[] for _ in q]
        if allowed.size <= self.exact_search_max:
            return self._ranked_exactly(allowed, q, k)
        if self.milvus is not None:  # Milvus filters with the expression, then we rescore
            found = self.milvus.search(q.tolist(), k, filter, self._docs)
            return [self._ranked(rows, qv, k) for (rows, _), qv in zip(found, q, strict=True)]
        return self._filtered_by_overfetch(q, k, mask, int(allowed.size))

    def _chroma_candidates(self, q: np.ndarray, n_results: int) -> list[np.ndarray]:
        """Rows of each query vector's approximate nearest neighbours, from the engine."""
        if self.milvus is not None:
            return [rows for rows, _ in self.milvus.search(q.tolist(), n_results, None, self._docs)]
        out = []
        for ids in self._chroma.nearest(q, n_results):
            rows = [row for doc_id in ids if (row := self._row(doc_id)) is not None]
            out.append(np.asarray(rows, dtype=np.int64))
        return out

    def _filtered_by_overfetch(
        self, q: np.ndarray, k: int, mask: np.ndarray, n_allowed: int
    ) -> list[list[Hit]]:
        n = len(self._docs)
        fetch = min(n, max(2 * k, math.ceil(2 * k * n / n_allowed)))
        results: list[list[Hit] | None] = [None] * len(q)
        pending = list(range(len(q)))
        while pending:
            candidates = self._chroma_candidates(q[pending], fetch)
            still = []
            for i, rows in zip(pending, candidates, strict=True):
                rows = rows[mask[rows]]
                if len(rows) >= k or fetch >= n:
                    results[i] = self._ranked(rows, q[i], k)
                else:
                    still.append(i)
            pending, fetch = still, min(n, 4 * fetch)
        return [r if r is not None else [] for r in results]

    def _ranked_exactly(self, rows: np.ndarray, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """The best ``k`` of ``rows`` for each query, all scored exactly."""
        found = self._rows.top_k(rows, queries, k, block_scores=self.exact_block_scores)
        return [self._docs.hits(best, scores, self.name) for best, scores in found]

    def _ranked(self, rows: np.ndarray, query: np.ndarray, k: int) -> list[Hit]:
        """Exact scores of ``rows`` for one query vector; the best ``k``, ties by row."""
        if rows.size == 0:
            return []
        return self._ranked_exactly(rows, query[None, :], k)[0]

    def _metadata_fields(self) -> set[str]:
        return self._docs.metadata_fields()

    # -- persistence ---------------------------------------------------------------------------

    def _manifest_extra(self) -> dict[str, Any]:
        chroma_server = isinstance(self.engine, ChromaOptions) and self.engine.server
        index: dict[str, Any] = {
            "engine": "milvus" if isinstance(self.engine, MilvusOptions) else "chroma",
            "mode": "server" if chroma_server or self.milvus_server else "embedded",
            "space": self.space,
        }
        return {"model": self._identity, "dimension": self.dimension, "index": index}

    def _write_data(self, folder: Path) -> None:
        self._docs.write_jsonl(folder / "documents.jsonl")
        with (folder / "vectors.npy").open("wb") as f:
            np.save(f, self._rows.live_matrix(), allow_pickle=False)

    @classmethod
    def _read_data(
        cls,
        folder: Path,
        manifest: dict[str, Any],
        *,
        model: str | None = None,
        device: str | None = None,
        engine: MilvusOptions | ChromaOptions | None = None,
    ) -> Self:
        # never code from the model's folder: a manifest cannot ask for trust_remote_code
        build = partial(DenseEncoder, device=device, trust_remote_code=False)
        encoder = rebuild_with_model(build, folder, manifest, model, check_same_model, lambda e: e)
        docs = DocumentStore.read_jsonl(folder / "documents.jsonl")
        vectors = load_npy(
            folder / "vectors.npy", dtypes=np.float32, shape=(len(docs), encoder.dimension)
        )
        if not np.isfinite(vectors).all():
            raise CorruptCollectionError(f"{folder}/vectors.npy holds values that are not finite")
        retriever = cls(encoder=encoder, engine=engine)
        live = list(docs.live_documents())
        if retriever.milvus is not None:
            retriever.milvus.sync(live, vectors.tolist())
        else:
            retriever._chroma.sync(live, vectors)
        retriever._rows.restore(docs, vectors)
        return retriever
