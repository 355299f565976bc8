"""Dense retrieval: a sentence-transformers bi-encoder, vectors in Chroma.

Where things live
-----------------
- **Chroma** holds the vectors (ids + embeddings, HNSW index; cosine space, or inner product for
  dot-product models) and answers the nearest-neighbour queries of collections larger than
  ``exact_search_max`` (20,000 documents by default). Embedded by default
  (``chromadb.PersistentClient`` in a working directory), or a Chroma server (``host``/``port``,
  ``chromadb.HttpClient``) for scale-out.
- **This process** holds the documents (ids, texts, metadata) and a float32 copy of the vectors in
  row order. The copy costs ``4 x dimension`` bytes a document (1.5 KiB for MiniLM) and buys four
  things: a collection of at most ``exact_search_max`` documents is searched exactly by one matrix
  product (5,000 x 384 takes about a millisecond, and HNSW's approximate graph, rebuilt on every
  open, would make results move between runs); Chroma's candidates are rescored exactly (``cosine
  = v . q``, identical before and after a save, ties broken by insertion order); a selective
  metadata filter is answered exactly by brute force over the matching rows; and a save writes
  the vectors without asking Chroma for them. ``exact_search_max=0`` sends every search to the
  engine.

Persistence, and why the collection directory holds no Chroma files
-------------------------------------------------------------------
Chroma writes its own files continuously (SQLite log, HNSW segments flushed every
``sync_threshold`` adds) and has no atomic snapshot. Copying its folder while a client has it open
can copy a half-flushed state, and letting Chroma open a saved generation in place would modify the
very files the manifest checksums. So the two are kept apart:

- the live Chroma data lives in a *working directory* (a fresh temporary directory, removed by
  :meth:`Dense.close` or when the retriever is garbage-collected; or ``workdir=``), or on the
  server;
- :meth:`save` writes a generation of plain files — ``documents.jsonl`` (ids, texts, metadata) and
  ``vectors.npy`` (float32, same row order) — through :func:`rag_retrievers.storage.save_collection`
  (temp folder, fsync, rename, then the manifest atomically). A crash at any point leaves the
  previous manifest pointing at the previous, complete generation, and nothing ever writes into a
  saved generation afterwards;
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
``uri=`` (a local ``PATH.db`` for milvus-lite, or ``http://host:19530``) puts the vectors in a
Milvus ``FLOAT_VECTOR`` field (:mod:`rag_retrievers.adapters.milvus`; exact ``FLAT`` index, inner
product for normalised or dot-product models, cosine otherwise). Everything above holds, except
that a filter matching more than ``exact_search_max`` rows goes to Milvus as a boolean
expression (pre-filtered search) instead of over-fetching.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np

from rag_retrievers.base import Retriever
from rag_retrievers.docstore import DocumentStore
from rag_retrievers.encoders.dense import DenseEncoder
from rag_retrievers.errors import (
    CollectionError,
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    MissingDependencyError,
)
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever

if TYPE_CHECKING:
    from rag_retrievers.adapters.milvus import MilvusField

DEFAULT_COLLECTION = "rag_retrievers"
#: our metadata keys on a Chroma collection: which model its vectors come from
_META_PREFIX = "rag_retrievers:"


class ModelMismatchError(ForeignCollectionError):
    """A collection's vectors come from another model than the one given."""


class DimensionMismatchError(ModelMismatchError, InvalidInputError):
    """A collection's vectors have another dimension than the model's."""


def _import_chromadb() -> Any:
    try:
        import chromadb
    except ImportError:
        raise MissingDependencyError("chromadb", "neural") from None
    return chromadb


def _release(client: Any, workdir: Path | None) -> None:
    """Close a Chroma client and remove its temporary working directory (best effort)."""
    if hasattr(client, "close"):
        with contextlib.suppress(Exception):  # best effort; the directory goes anyway
            client.close()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def check_same_model(saved: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Raise if ``current`` (an encoder identity) is not the model ``saved`` records."""
    if saved.get("dimension") != current["dimension"]:
        raise DimensionMismatchError(
            f"{where} holds {saved.get('dimension')}-dimensional vectors from model "
            f"{saved.get('name')!r}; model {current['name']!r} gives {current['dimension']} "
            "dimensions. Use the model the collection was built with, or build a new collection."
        )
    saved_sha = (saved.get("weights") or {}).get("sha256")
    current_sha = (current.get("weights") or {}).get("sha256")
    differences: list[str] = [
        key
        for key in ("similarity", "normalize", "query_prompt", "document_prompt")
        if key in saved and saved[key] != current[key]
    ]
    if saved_sha and current_sha and saved_sha != current_sha:
        differences.insert(0, f"weights (sha256 {saved_sha[:12]}... vs {current_sha[:12]}...)")
    elif not (saved_sha and current_sha) and saved.get("name") != current["name"]:
        differences.insert(0, "name")
    if differences:
        raise ModelMismatchError(
            f"{where} was built with model {saved.get('name')!r} "
            f"({saved.get('path')}); the model given now ({current['name']!r}, "
            f"{current.get('path')}) differs in {', '.join(differences)}. Vectors of different "
            "models are not comparable: use the original model or build a new collection."
        )


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

    Server mode: ``Dense("minilm", host="127.0.0.1", port=8000, collection="docs")``. A new
    retriever refuses a server collection that already holds vectors (``overwrite=True`` replaces
    it); :meth:`open` rebuilds the recorded server collection from the saved snapshot.
    """

    #: documents per locked write: the progress bar moves and searches interleave every batch
    add_batch_size: ClassVar[int] = 1024
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
        host: str | None = None,
        port: int = 8000,
        collection: str = DEFAULT_COLLECTION,
        workdir: str | None = None,
        overwrite: bool = False,
        exact_search_max: int = 20_000,
        uri: str | None = None,
        field: str = "dense",
        token: str | None = None,
        _adopt: bool = False,
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
        if host is not None and (not isinstance(host, str) or not host):
            raise InvalidInputError(f"host must be a non-empty str or None, got {host!r}")
        if host is not None and uri is not None:
            raise InvalidInputError("give host (a Chroma server) or uri (Milvus), not both")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidInputError(f"port must be an int in 1..65535, got {port!r}")
        if not isinstance(collection, str) or not collection:
            raise InvalidInputError(f"collection must be a non-empty str, got {collection!r}")
        if isinstance(exact_search_max, bool) or not isinstance(exact_search_max, int):
            raise InvalidInputError(f"exact_search_max must be an int, got {exact_search_max!r}")
        self.encoder = encoder
        self.host, self.port, self.collection_name = host, port, collection
        self.exact_search_max = exact_search_max
        self.dimension = encoder.dimension
        self._identity = encoder.identity()
        self._docs = DocumentStore()
        self._vectors = np.empty((0, self.dimension), dtype=np.float32)  # capacity >= n_rows
        self._workdir: Path | None = None
        self._client: Any = None
        self.uri, self.field = uri, field
        self.milvus: MilvusField | None = None
        if uri is None:
            self._collection = self._connect(workdir, overwrite, _adopt)
        else:
            from rag_retrievers.adapters.milvus import MilvusField

            from rag_retrievers.milvus import VectorField

            identity = {key: self._identity.get(key) for key in ("name", "similarity", "normalize")}
            identity["weights_sha256"] = (self._identity.get("weights") or {}).get("sha256")
            metric: Literal["IP", "COSINE"] = "IP"
            if self.space == "cosine" and not encoder.normalize:
                metric = "COSINE"
            spec = VectorField("dense", metric, self.dimension, {"retriever": "dense", **identity})
            self.milvus = MilvusField(
                uri, collection, field, spec, token=token, overwrite=overwrite, adopt=_adopt
            )

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "model": self.encoder.name,
            "batch_size": self.encoder.batch_size,
            "normalize": self.encoder.normalize,
            "query_prompt": self.encoder.query_prompt,
            "document_prompt": self.encoder.document_prompt,
        }
        if self.host is not None:
            config.update(host=self.host, port=self.port, collection=self.collection_name)
        if self.uri is not None:
            config.update(uri=self.uri, collection=self.collection_name, field=self.field)
        return config

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or ``None``."""
        return self._docs.get(doc_id)

    # -- Chroma --------------------------------------------------------------------------------

    @property
    def milvus_server(self) -> bool:
        """Whether the vectors are on a Milvus server (not milvus-lite, not Chroma)."""
        from rag_retrievers.milvus import is_server_uri

        return self.uri is not None and is_server_uri(self.uri)

    @property
    def space(self) -> str:
        """Chroma's HNSW space: ``cosine``, or ``ip`` for dot-product models."""
        return "cosine" if self.encoder.similarity == "cosine" else "ip"

    def _connect(self, workdir: str | None, overwrite: bool, adopt: bool) -> Any:
        chromadb = _import_chromadb()
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.host is None:
            if workdir is None:
                self._workdir = path = Path(tempfile.mkdtemp(prefix="rag-retrievers-chroma-"))
            else:
                path = Path(workdir)
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
            self._finalizer = weakref.finalize(self, _release, self._client, self._workdir)
            where = f"Chroma collection {self.collection_name!r} in {path}"
        else:
            try:  # chromadb >= 1 already raises in the constructor
                self._client = chromadb.HttpClient(
                    host=self.host, port=self.port, settings=settings
                )
                self._client.heartbeat()
            except Exception as exc:
                raise CollectionError(
                    f"cannot reach a Chroma server at http://{self.host}:{self.port} "
                    f"({type(exc).__name__}: {exc}); start one with `chroma run --host "
                    f"{self.host} --port {self.port} --path DIR`"
                ) from None
            self._finalizer = weakref.finalize(self, _release, self._client, None)
            where = f"Chroma collection {self.collection_name!r} on {self.host}:{self.port}"
        names = [getattr(c, "name", c) for c in self._client.list_collections()]
        if self.collection_name in names:
            if not overwrite:
                existing = self._client.get_collection(self.collection_name)
                self._check_chroma_collection(existing, where, adopt)
                return existing
            self._client.delete_collection(self.collection_name)
        return self._client.create_collection(
            self.collection_name,
            embedding_function=None,
            metadata={"hnsw:space": self.space, **self._chroma_metadata()},
        )

    def _chroma_metadata(self) -> dict[str, Any]:
        weights = self._identity.get("weights") or {}
        return {
            f"{_META_PREFIX}model": self._identity["name"],
            f"{_META_PREFIX}dimension": self.dimension,
            f"{_META_PREFIX}weights_sha256": weights.get("sha256") or "",
            f"{_META_PREFIX}similarity": self.encoder.similarity,
        }

    def _check_chroma_collection(self, collection: Any, where: str, adopt: bool) -> None:
        meta = dict(collection.metadata or {})
        if f"{_META_PREFIX}dimension" not in meta:
            raise ForeignCollectionError(
                f"{where} exists and was not made by rag-retrievers; choose another collection "
                "name or pass overwrite=True to replace it"
            )
        saved = {
            "name": meta.get(f"{_META_PREFIX}model"),
            "dimension": meta.get(f"{_META_PREFIX}dimension"),
            "similarity": meta.get(f"{_META_PREFIX}similarity"),
            "weights": {"sha256": meta.get(f"{_META_PREFIX}weights_sha256") or None},
        }
        check_same_model(saved, self._identity, where)
        count = collection.count()
        if count and not adopt:
            raise ForeignCollectionError(
                f"{where} already holds {count} vectors, but this new retriever has no documents "
                "for them: reopen the saved collection with Dense.open(PATH), choose another "
                "collection name, or pass overwrite=True to replace it"
            )

    def close(self) -> None:
        """Release the Chroma client and remove the temporary working directory, if any.

        The retriever cannot be used afterwards. Garbage collection does the same. (A Milvus
        store is shared by the retrievers of its collection: close it with
        :func:`rag_retrievers.milvus.close_stores`.)
        """
        if self.milvus is None:
            self._finalizer()

    def _chroma_upsert(self, documents: list[Document], vectors: np.ndarray) -> None:
        if self.milvus is not None:
            self.milvus.upsert(documents, vectors.tolist())
            return
        ids = [d.id for d in documents]
        size = self._client.get_max_batch_size()
        for part in _chunks(len(ids), size):
            self._collection.upsert(ids=ids[part], embeddings=vectors[part])

    def _chroma_ids(self) -> list[str]:
        if self.milvus is not None:
            return self.milvus.store.ids()
        size = self._client.get_max_batch_size()
        ids: list[str] = []
        while True:
            page = self._collection.get(include=[], limit=size, offset=len(ids))["ids"]
            ids.extend(page)
            if len(page) < size:
                return ids

    def _chroma_delete(self, ids: list[str]) -> None:
        if self.milvus is not None:
            self.milvus.delete(ids)
            return
        size = self._client.get_max_batch_size()
        for part in _chunks(len(ids), size):
            self._collection.delete(ids=ids[part])

    # -- rows ----------------------------------------------------------------------------------

    def _row(self, doc_id: str) -> int | None:
        return self._docs.row(doc_id)

    def _append_vectors(self, vectors: np.ndarray) -> None:
        n = self._docs.n_rows  # rows before the append
        need = n + len(vectors)
        if need > len(self._vectors):
            grown = np.empty((max(need, 2 * len(self._vectors), 64), self.dimension), np.float32)
            grown[:n] = self._vectors[:n]
            self._vectors = grown
        self._vectors[n:need] = vectors

    def _live_rows(self) -> np.ndarray:
        if len(self._docs) == self._docs.n_rows:  # nothing deleted since the last compaction
            return np.arange(self._docs.n_rows)
        return np.fromiter(
            (m is not None for m in self._docs.metadatas()), dtype=bool, count=self._docs.n_rows
        ).nonzero()[0]

    def _compact_if_sparse(self) -> None:
        """Drop deleted rows once they outnumber the live ones (keeps memory bounded)."""
        dead = self._docs.n_rows - len(self._docs)
        if dead <= max(self.compact_min_dead, len(self._docs)):
            return
        live = self._live_rows()
        store = DocumentStore()
        store.append(list(self._docs.live_documents()))
        self._vectors = np.ascontiguousarray(self._vectors[live])
        self._docs = store

    # -- the adapter's methods -----------------------------------------------------------------

    def _add(self, documents: list[Document]) -> None:
        vectors = np.empty((len(documents), self.dimension), dtype=np.float32)
        to_encode: dict[str, list[int]] = {}  # text -> positions in documents
        changed = []
        for i, doc in enumerate(documents):
            row = self._row(doc.id)
            old = None if row is None else self._docs.live_document(row)
            if row is not None and old is not None and old.text == doc.text:
                vectors[i] = self._vectors[row]  # unchanged text: no encoding, no Chroma write
            else:
                to_encode.setdefault(doc.text, []).append(i)
                changed.append(i)
        if to_encode:
            encoded = self.encoder.encode_documents(list(to_encode), show_progress=False)
            for vector, positions in zip(encoded, to_encode.values(), strict=True):
                vectors[positions] = vector
            if self.milvus is None:
                self._chroma_upsert([documents[i] for i in changed], vectors[changed])
        if self.milvus is not None:  # Milvus also holds the metadata its filters read
            self._chroma_upsert(documents, vectors)
        # Chroma holds the new vectors: now the rows (a replaced document gets a new row)
        for doc in documents:
            self._docs.remove(doc.id)
        self._append_vectors(vectors)
        self._docs.append(documents)
        self._compact_if_sparse()

    def _delete(self, ids: list[str]) -> int:
        present = [doc_id for doc_id in ids if doc_id in self._docs]
        if present:
            self._chroma_delete(present)
        for doc_id in present:
            self._docs.remove(doc_id)
        self._compact_if_sparse()
        return len(present)

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        if len(self._docs) == 0:
            return [[] for _ in queries]
        return self.search_vectors(self.encoder.encode_queries(queries), k, filter)

    # -- query vectors, for vector pseudo-relevance feedback (adapters.prf.QueryVectors) -------

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """The queries as this collection's encoder embeds them, one row each."""
        return self.encoder.encode_queries(queries)

    def milvus_queries(self, queries: list[str]) -> list[list[float]]:
        """The queries as vectors of the Milvus field (for fusion inside Milvus)."""
        return self.encoder.encode_queries(queries).tolist()

    def document_vectors(self, doc_ids: list[str]) -> np.ndarray:
        """The stored vectors of these documents, one row each (ids must be present)."""
        rows = [self._row(doc_id) for doc_id in doc_ids]
        if any(row is None for row in rows):
            missing = [d for d, r in zip(doc_ids, rows, strict=True) if r is None]
            raise InvalidInputError(f"no stored vector for {missing[0]!r}")
        return self._vectors[np.asarray(rows, dtype=np.int64)]

    def search_vectors(
        self, vectors: np.ndarray, k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        """Ranked hits for each query vector (called under the read lock)."""
        q = np.asarray(vectors, dtype=np.float32)
        if len(self._docs) == 0:
            return [[] for _ in q]
        if filter is None:
            if len(self._docs) <= self.exact_search_max:
                return self._ranked_exactly(self._live_rows(), q, k)
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
        if self.milvus is not None:
            return [rows for rows, _ in self.milvus.search(q.tolist(), n_results, None, self._docs)]
        result = self._collection.query(query_embeddings=q, n_results=n_results, include=[])
        out = []
        for ids in result["ids"]:
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
        """The best ``k`` of ``rows`` for each query, all scored: one matrix product per block."""
        vectors = self._vectors[rows]
        out: list[list[Hit]] = []
        block = max(1, self.exact_block_scores // max(1, rows.size))
        for start in range(0, len(queries), block):
            scores = self._scores(vectors, queries[start : start + block])
            out.extend(self._top(rows, row_scores, k) for row_scores in scores)
        return out

    def _ranked(self, rows: np.ndarray, query: np.ndarray, k: int) -> list[Hit]:
        """Exact scores of ``rows`` for one query vector; the best ``k``, ties by row."""
        if rows.size == 0:
            return []
        return self._ranked_exactly(rows, query[None, :], k)[0]

    def _scores(self, vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Similarities, one row per query (cosine for unnormalised cosine models)."""
        scores = queries @ vectors.T
        if self.encoder.similarity == "cosine" and not self.encoder.normalize:
            norms = np.outer(np.linalg.norm(queries, axis=1), np.linalg.norm(vectors, axis=1))
            scores = np.divide(scores, norms, out=np.zeros_like(scores), where=norms > 0)
        return scores

    def _top(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
        if rows.size > k:  # keep every row tied with the k-th score, then order exactly
            kth = np.partition(scores, rows.size - k)[rows.size - k]
            keep = scores >= kth
            rows, scores = rows[keep], scores[keep]
        order = np.lexsort((rows, -scores))[:k]
        return self._docs.hits(rows[order], scores[order], self.name)

    def _metadata_fields(self) -> set[str]:
        return self._docs.metadata_fields()

    # -- persistence ---------------------------------------------------------------------------

    def _manifest_extra(self) -> dict[str, Any]:
        index: dict[str, Any] = {
            "engine": "chroma" if self.uri is None else "milvus",
            "mode": "server" if self.host is not None or self.milvus_server else "embedded",
            "collection": self.collection_name,
            "space": self.space,
        }
        if self.host is not None:
            index.update(host=self.host, port=self.port)
        return {"model": self._identity, "dimension": self.dimension, "index": index}

    def _write_data(self, folder: Path) -> None:
        self._docs.write_jsonl(folder / "documents.jsonl")
        with (folder / "vectors.npy").open("wb") as f:
            np.save(f, np.ascontiguousarray(self._vectors[self._live_rows()]), allow_pickle=False)

    @classmethod
    def _read_data(cls, folder: Path, manifest: dict[str, Any]) -> Self:
        config = dict(manifest["config"])
        saved = manifest.get("model")
        if not isinstance(config.get("model"), str) or not isinstance(saved, dict):
            raise CorruptCollectionError(f"{folder}: the manifest records no dense model")
        keys = ("host", "port", "collection", "uri", "field")
        server = {key: config.pop(key) for key in keys if key in config}
        try:
            encoder = DenseEncoder(config.pop("model"), **config)
        except TypeError as exc:
            raise CorruptCollectionError(
                f"{folder}: manifest config does not fit Dense: {exc}"
            ) from None
        check_same_model(saved, encoder.identity(), f"the collection at {folder.parent}")
        docs = DocumentStore.read_jsonl(folder / "documents.jsonl")
        try:
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
        except ValueError as exc:
            raise CorruptCollectionError(f"{folder}/vectors.npy: {exc}") from None
        if vectors.dtype != np.float32 or vectors.shape != (len(docs), encoder.dimension):
            raise CorruptCollectionError(
                f"{folder}/vectors.npy holds {vectors.dtype} {vectors.shape}; expected float32 "
                f"({len(docs)}, {encoder.dimension})"
            )
        # an existing server collection is synchronised in place (not dropped and recreated):
        # other clients holding it keep a valid handle
        retriever = cls(encoder=encoder, _adopt=True, **server)
        ids = [doc.id for doc in docs.live_documents()]
        keep = set(ids)
        stale = [i for i in retriever._chroma_ids() if i not in keep]
        retriever._chroma_delete(stale)
        retriever._chroma_upsert(list(docs.live_documents()), vectors)
        retriever._docs, retriever._vectors = docs, np.ascontiguousarray(vectors)
        return retriever
