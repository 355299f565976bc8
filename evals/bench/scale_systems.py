"""The systems of ``rag-retrievers bench scale``, each built from the corpus by its builder:
``BUILDERS[name](data, n_docs, folder, queries, **options)`` gives a
:class:`~rag_retrievers.evals.bench.scale_server.Built` to time (see
:mod:`~rag_retrievers.evals.bench.scale` for what each system is).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_retrievers.evals.bench.scale_corpus import corpus_batches
from rag_retrievers.evals.bench.scale_server import (
    SERVER_SYSTEMS,
    Built,
    build_milvus_server,
    write_dense,
)

K = 10
DIM = 256
HASH_BUCKETS = 1 << 16


def _disk_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _hits(results: Any) -> list[tuple[str, float]]:
    return [(r.id, float(r.score)) for r in results]


def build_bm25(data: Path, n_docs: int, folder: Path, queries: list[str], **_: Any) -> Built:
    from rag_retrievers.adapters.bm25 import BM25

    from rag_retrievers.records import Document

    bm25 = BM25()
    for batch in corpus_batches(data, n_docs):
        bm25.add([Document(id=i, text=t) for i, t in batch], show_progress=False)
    bm25.save(folder / "bm25")
    return Built(
        search=lambda q: _hits(bm25.search(q, k=K)), disk_mib=lambda: _disk_mib(folder / "bm25")
    )


def build_milvus_bm25(data: Path, n_docs: int, folder: Path, queries: list[str], **_: Any) -> Built:
    import numpy as np

    from rag_retrievers.encoders.analysis import Analyzer
    from rag_retrievers.engines.milvus import MilvusStore, VectorField, close_stores
    from rag_retrievers.scoring.bm25 import lucene_idf, lucene_tf

    analyzer, k1, b = Analyzer(), 0.9, 0.4
    term_ids: dict[str, int] = {}
    df: list[int] = []
    total_len = n = 0
    for batch in corpus_batches(data, n_docs):  # pass 1: statistics
        for terms in analyzer.analyze_many([t for _, t in batch]):
            total_len += len(terms)
            n += 1
            for term in set(terms):
                tid = term_ids.setdefault(term, len(term_ids))
                if tid == len(df):
                    df.append(0)
                df[tid] += 1
    avgdl = total_len / max(n, 1)
    idf = lucene_idf(np.asarray(df), n)
    store = MilvusStore(str(folder / "milvus.db"), "bench")
    store.attach("bm25", VectorField("sparse", identity={"bench": "bm25"}))
    for batch in corpus_batches(data, n_docs):  # pass 2: vectors
        vectors = []
        for terms in analyzer.analyze_many([t for _, t in batch]):
            counts: dict[int, int] = {}
            for term in terms:
                tid = term_ids[term]
                counts[tid] = counts.get(tid, 0) + 1
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            weights = lucene_tf(tf, np.full(len(tf), len(terms)), avgdl, k1, b)
            vectors.append(
                {t + 1: float(w) for t, w in zip(counts, weights, strict=True)} or {0: 1e-30}
            )
        store.upsert("bm25", [i for i, _ in batch], [{}] * len(batch), vectors)

    def search(query: str) -> list[tuple[str, float]]:
        counts: dict[int, float] = {}
        for term in analyzer.analyze(query):
            if term in term_ids:
                tid = term_ids[term]
                counts[tid + 1] = counts.get(tid + 1, 0.0) + float(idf[tid])
        return store.search("bm25", [counts], K)[0] if counts else []

    return Built(
        search=search, disk_mib=lambda: _disk_mib(folder / "milvus.db"), close=close_stores
    )


def projection_encoder() -> Callable[[list[str]], Any]:
    """The bench's dense vectors: texts -> L2-normalised :data:`DIM`-dimensional float32 rows
    (each analysed term hashed to one of :data:`HASH_BUCKETS` seeded random +-1 rows, summed)."""
    import numpy as np

    from rag_retrievers.encoders.analysis import Analyzer

    analyzer = Analyzer()
    matrix = np.random.default_rng(0).choice([-1.0, 1.0], size=(HASH_BUCKETS, DIM))
    matrix = matrix.astype(np.float32)

    def encode(texts: list[str]) -> Any:
        rows = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, terms in enumerate(analyzer.analyze_many(texts)):
            buckets = [
                int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest(), "little")
                % HASH_BUCKETS
                for t in terms
            ]
            if buckets:
                rows[i] = matrix[buckets].sum(axis=0)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)

    return encode


def build_milvus_dense(
    data: Path, n_docs: int, folder: Path, queries: list[str], **_: Any
) -> Built:
    from rag_retrievers.engines.milvus import MilvusStore, VectorField, close_stores

    encode = projection_encoder()
    store = MilvusStore(str(folder / "milvus.db"), "bench")
    store.attach("dense", VectorField("dense", dim=DIM, identity={"bench": "random-projection"}))
    exact, _ = write_dense(store, corpus_batches(data, n_docs), encode, queries, K)

    def search(query: str) -> list[tuple[str, float]]:
        return store.search("dense", encode([query]).tolist(), K)[0]

    return Built(
        search=search,
        disk_mib=lambda: _disk_mib(folder / "milvus.db"),
        exact=exact,
        close=close_stores,
    )


def _build_server(system: str) -> Callable[..., Built]:
    def build(data: Path, n_docs: int, folder: Path, queries: list[str], **options: Any) -> Built:
        return build_milvus_server(
            system,
            lambda: corpus_batches(data, n_docs),
            projection_encoder(),
            queries,
            folder,
            dim=DIM,
            k=K,
            hnsw=options.get("hnsw") or {},
            hnsw_efs=options.get("hnsw_efs") or (),
        )

    return build


#: the systems on milvus-lite (``--milvus-docs``, ``--milvus-queries``)
LITE_SYSTEMS = ("milvus-bm25", "milvus-dense")

BUILDERS: dict[str, Callable[..., Built]] = {
    "bm25": build_bm25,
    "milvus-bm25": build_milvus_bm25,
    "milvus-dense": build_milvus_dense,
    **{system: _build_server(system) for system in SERVER_SYSTEMS},
}
