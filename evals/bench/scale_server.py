"""The Milvus server systems of ``rag-retrievers bench scale``, and the exact reference their
recall is measured against.

- ``milvus-server-dense``: the bench's 256-dimensional random-projection vectors in a
  ``FLAT`` field (exact) on a Milvus standalone server (``milvus-server``, PyPI ``milvus``)
  that the worker starts on 127.0.0.1 with a data folder of its own and stops by process group.
- ``milvus-server-hnsw``: the same with an ``HNSW`` index (``--hnsw``), searched at each
  ``ef`` of ``--hnsw-ef``.

Both write through our :class:`~rag_retrievers.engines.milvus.MilvusStore`, as ``Dense(...,
engine=MilvusOptions(uri, index=...))`` does. ``build s`` runs from the first write to a
collection that answers from its index: the vectors encoded and upserted, the collection flushed
(its segments sealed), every sealed row indexed (Milvus builds indexes in the background: a
search before that scans unindexed segments), then released and loaded so that the query node
serves the indexed segments.

recall@10 is measured against exact inner-product search over the same vectors, computed by
the worker in numpy while the corpus streams past (:class:`ExactTop`), so no system, the server's
FLAT included, is its own reference.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: system name -> index type
SERVER_SYSTEMS = {"milvus-server-dense": "FLAT", "milvus-server-hnsw": "HNSW"}
#: seconds between two readings of the server's memory
SAMPLE_EVERY_S = 0.5
#: seconds to wait for the server to index every sealed row
INDEX_TIMEOUT_S = 3 * 3600.0


class ExactTop:
    """The exact top ``k`` by inner product of each query over rows fed in batches.

    >>> top = ExactTop(np.eye(2, dtype=np.float32), k=1)
    >>> top.add(["a", "b"], np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32))
    >>> top.add(["c"], np.array([[1.0, 0.0]], dtype=np.float32))
    >>> [[doc for doc, _ in hits] for hits in top.result()]
    [['c'], ['b']]
    """

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = np.asarray(queries, dtype=np.float32)
        self.k = k
        self._scores = np.full((len(self.queries), 0), -np.inf, dtype=np.float32)
        self._ids: list[list[str]] = [[] for _ in range(len(self.queries))]

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        batch = self.queries @ np.asarray(vectors, dtype=np.float32).T  # queries x rows
        scores = np.concatenate([self._scores, batch], axis=1)
        keep = min(self.k, scores.shape[1])
        best = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        known = self._ids
        self._ids = [
            [known[q][j] if j < len(known[q]) else ids[j - len(known[q])] for j in row]
            for q, row in enumerate(best.tolist())
        ]
        self._scores = np.take_along_axis(scores, best, axis=1)

    def result(self) -> list[list[tuple[str, float]]]:
        """Per query, (id, score) best first."""
        out = []
        for ids, scores in zip(self._ids, self._scores.tolist(), strict=True):
            out.append(sorted(zip(ids, scores, strict=True), key=lambda hit: -hit[1]))
        return out


def recall_against(
    found: Sequence[Sequence[tuple[str, float]]], exact: Sequence[Sequence[tuple[str, float]]]
) -> tuple[float, float]:
    """Mean recall@k of ``found`` against ``exact``: by id, and counting any hit whose score
    reaches the exact ``k``-th score (relative tolerance 1e-5) as right (near-duplicate copies
    can tie at the cut, and which tied row an exact search keeps is arbitrary).

    >>> recall_against([[("a", 1.0), ("x", 0.5)]], [[("a", 1.0), ("b", 0.5)]])
    (0.5, 1.0)
    """
    by_id, tied = [], []
    for hits, reference in zip(found, exact, strict=True):
        if not reference:
            continue
        wanted = {doc for doc, _ in reference}
        bar = min(score for _, score in reference)
        by_id.append(len(wanted & {doc for doc, _ in hits}) / len(reference))
        reached = sum(1 for _, score in hits if score >= bar - 1e-5 * abs(bar))
        tied.append(min(reached, len(reference)) / len(reference))
    if not by_id:
        return float("nan"), float("nan")
    return statistics.fmean(by_id), statistics.fmean(tied)


class PeakSampler:
    """Reads ``measure()`` every :data:`SAMPLE_EVERY_S` seconds in a thread; ``peak`` is the
    largest reading."""

    def __init__(self, measure: Callable[[], float]) -> None:
        self.measure = measure
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())


@dataclass
class Built:
    """A system ready to time: ``search(query)`` gives (id, score) hits best first;
    ``searches`` names each search setting worth a row of its own (HNSW's ``ef``)."""

    search: Callable[[str], list[tuple[str, float]]]
    disk_mib: Callable[[], float]
    exact: list[list[tuple[str, float]]] | None = None
    searches: dict[str, Callable[[str], list[tuple[str, float]]]] = field(default_factory=dict)
    server_peak: Callable[[], float] | None = None
    close: Callable[[], None] = lambda: None


def write_dense(
    store: Any,
    batches: Iterable[list[tuple[str, str]]],
    encode: Callable[[list[str]], np.ndarray],
    queries: list[str],
    k: int,
) -> tuple[list[list[tuple[str, float]]], int]:
    """Upsert every batch's encoded vectors into ``store``'s field ``dense``; the exact top
    ``k`` of ``queries`` over them, and the number of rows written."""
    exact = ExactTop(encode(queries), k)
    rows = 0
    for batch in batches:
        vectors = encode([text for _, text in batch])
        ids = [doc for doc, _ in batch]
        exact.add(ids, vectors)
        store.upsert("dense", ids, [{}] * len(ids), vectors.tolist())
        rows += len(ids)
    return exact.result(), rows


def wait_until_indexed(client: Any, collection: str, field_name: str, rows: int) -> None:
    """Flush ``collection`` (seal its segments) and wait until the server has indexed every
    sealed row of ``field_name``, then release and load it so that searches use the index."""
    client.flush(collection)
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    while True:
        info = client.describe_index(collection, field_name)
        if int(info.get("pending_index_rows", 0)) == 0 and int(info.get("indexed_rows", 0)) >= rows:
            break
        if str(info.get("state", "")).lower() == "failed":
            raise RuntimeError(f"the server failed to index {collection}: {info}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{collection} not indexed after {INDEX_TIMEOUT_S:.0f} s: {info}")
        time.sleep(1.0)
    client.release_collection(collection)
    client.load_collection(collection)


def build_milvus_server(
    system: str,
    batches: Callable[[], Any],
    encode: Callable[[list[str]], np.ndarray],
    queries: list[str],
    folder: Path,
    *,
    dim: int,
    k: int,
    hnsw: dict[str, int],
    hnsw_efs: Sequence[int],
) -> Built:
    """Start a server under ``folder``, write every batch's vectors to it through
    :class:`MilvusStore` and wait until they are indexed; the exact top ``k`` of ``queries``
    is computed on the way."""
    from rag_retrievers.evals.bench.servers import MilvusStandalone

    from rag_retrievers.engines.milvus import MilvusStore, VectorField, close_stores
    from rag_retrievers.engines.milvus_index import MilvusIndex

    kind = SERVER_SYSTEMS[system]
    index = MilvusIndex.coerce({"type": kind, **hnsw} if kind == "HNSW" else kind)
    server = MilvusStandalone(folder / "milvus-server")
    server.start()
    sampler = PeakSampler(server.rss_mib).__enter__()

    def close() -> None:
        sampler.__exit__()
        close_stores(server.uri)
        server.remove()

    try:
        store = MilvusStore(server.uri, "bench")
        spec = VectorField("dense", dim=dim, identity={"bench": "random-projection"}, index=index)
        store.attach("dense", spec)
        exact, rows = write_dense(store, batches(), encode, queries, k)
        wait_until_indexed(store.client, store.collection, "dense", rows)
    except BaseException:
        close()
        raise
    query_vectors = dict(zip(queries, encode(queries).tolist(), strict=True))

    def searcher(at: MilvusIndex | None) -> Callable[[str], list[tuple[str, float]]]:
        def search(query: str) -> list[tuple[str, float]]:
            vector = query_vectors.get(query)
            if vector is None:
                vector = encode([query])[0].tolist()
            return store.search("dense", [vector], k, index=at)[0]

        return search

    searches = {}
    if index.type == "HNSW":
        for ef in hnsw_efs:
            at = MilvusIndex.coerce({"type": "HNSW", **index.params(), "ef": ef})
            searches[f"ef={ef}"] = searcher(at)
    return Built(
        search=searcher(None),
        disk_mib=server.disk_mib,
        exact=exact,
        searches=searches,
        server_peak=lambda: sampler.peak,
        close=close,
    )
