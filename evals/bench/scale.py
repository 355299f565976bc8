"""``rag-retrievers bench scale``: a million documents, in-process BM25 against milvus-lite.

The corpus: every document of scifact, vaswani_npl, cranfield and adi (18,094, read from
``--data``, never copied) repeated until ``--docs``; copy ``c`` > 0 of a document has the id
``{dataset}/{id}#{c}`` and its text with each word dropped with probability 0.1 (a seeded,
per-copy random draw), so copies are near-duplicates, not identical rows. Queries: a fixed
sample of the test queries of scifact, vaswani_npl and cranfield.

Systems, each built and timed in its own fresh process:

- ``bm25``: our in-process :class:`~rag_retrievers.adapters.bm25.BM25` (sparse matrix index).
- ``milvus-bm25``: the same BM25 (our analyzer, Lucene idf and tf, k1 0.9, b 0.4) as sparse
  vectors in milvus-lite: document vectors hold the length-normalised tf part with the final
  avgdl (a first pass over the corpus counts lengths and document frequencies), queries hold
  count x idf. This process keeps only the statistics, not an index.
- ``milvus-dense``: 256-dimensional random-projection vectors (hashed bag of words times a seeded
  random +-1 matrix, L2-normalised) in a milvus-lite ``FLAT`` field. Not a semantic model:
  encoding a million documents with MiniLM on 2 CPU cores would take hours, so this measures
  the engine with vectors of the real dimension class only.

Figures: build s (indexing and a first query: our sparse index weights its postings, and
milvus-lite flushes and builds its index, on the first search; for milvus-bm25 also the
statistics pass), peak RSS MiB of the worker process above its RSS before building, on-disk
MiB (the saved collection; the milvus-lite data folder), and per-query latency p50/p99 with 1
and 2 client threads (k=10; analysis and result records included).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SOURCES = ("scifact", "vaswani_npl", "cranfield", "adi")
QUERY_SOURCES = ("scifact", "vaswani_npl", "cranfield")
SYSTEMS = ("bm25", "milvus-bm25", "milvus-dense")
DROP = 0.1
BATCH = 20_000
K = 10
DIM = 256
HASH_BUCKETS = 1 << 16


# -- the corpus --------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def base_documents(data: Path) -> list[tuple[str, str]]:
    """(id, text) of every source document, title prepended as BEIR baselines index it."""
    out = []
    for name in SOURCES:
        for obj in _read_jsonl(data / name / "corpus.jsonl"):
            text = " ".join(t for t in (obj.get("title"), obj.get("text")) if t)
            out.append((f"{name}/{obj.get('_id', obj.get('id'))}", text))
    return out


def corpus_batches(data: Path, n_docs: int, size: int = BATCH) -> Iterator[list[tuple[str, str]]]:
    """The documents in batches of ``size``: the sources, then perturbed copies."""
    base = base_documents(data)
    batch: list[tuple[str, str]] = []
    produced, copy = 0, 0
    while produced < n_docs:
        rng = random.Random(copy)
        for doc_id, text in base:
            if produced >= n_docs:
                break
            if copy:
                words = text.split()
                kept = [w for w in words if rng.random() >= DROP] or words[:1]
                doc_id, text = f"{doc_id}#{copy}", " ".join(kept)
            batch.append((doc_id, text))
            produced += 1
            if len(batch) == size:
                yield batch
                batch = []
        copy += 1
    if batch:
        yield batch


def benchmark_queries(data: Path, n: int) -> list[str]:
    """A fixed random sample of ``n`` test queries of :data:`QUERY_SOURCES`."""
    queries = []
    for name in QUERY_SOURCES:
        folder = data / name
        qrels = folder / "qrels" / "test.tsv"
        judged = {line.split("\t")[0] for line in qrels.read_text(encoding="utf-8").splitlines()}
        queries += [
            q["text"] for q in _read_jsonl(folder / "queries.jsonl") if str(q["_id"]) in judged
        ]
    return random.Random(0).sample(queries, min(n, len(queries)))


# -- measuring ---------------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _disk_mib(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _latencies(search: Callable[[str], object], queries: list[str], threads: int) -> list[float]:
    def timed(query: str) -> float:
        start = time.perf_counter()
        search(query)
        return (time.perf_counter() - start) * 1000

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(timed, queries))


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# -- the systems -------------------------------------------------------------------------------


def build_bm25(data: Path, n_docs: int, folder: Path) -> tuple[Callable[[str], object], Path]:
    from rag_retrievers.adapters.bm25 import BM25

    from rag_retrievers.records import Document

    bm25 = BM25()
    for batch in corpus_batches(data, n_docs):
        bm25.add([Document(id=i, text=t) for i, t in batch], show_progress=False)
    bm25.save(folder / "bm25")
    return (lambda q: bm25.search(q, k=K)), folder / "bm25"


def build_milvus_bm25(
    data: Path, n_docs: int, folder: Path
) -> tuple[Callable[[str], object], Path]:
    import numpy as np

    from rag_retrievers.encoders.analysis import Analyzer
    from rag_retrievers.engines.milvus import MilvusStore, VectorField
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

    def search(query: str) -> object:
        counts: dict[int, float] = {}
        for term in analyzer.analyze(query):
            if term in term_ids:
                tid = term_ids[term]
                counts[tid + 1] = counts.get(tid + 1, 0.0) + float(idf[tid])
        return store.search("bm25", [counts], K) if counts else [[]]

    return search, folder / "milvus.db"


def _projection(texts: list[str], analyzer: Any, matrix: Any) -> Any:
    import numpy as np

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


def build_milvus_dense(
    data: Path, n_docs: int, folder: Path
) -> tuple[Callable[[str], object], Path]:
    import numpy as np

    from rag_retrievers.encoders.analysis import Analyzer
    from rag_retrievers.engines.milvus import MilvusStore, VectorField

    analyzer = Analyzer()
    matrix = np.random.default_rng(0).choice([-1.0, 1.0], size=(HASH_BUCKETS, DIM))
    matrix = matrix.astype(np.float32)
    store = MilvusStore(str(folder / "milvus.db"), "bench")
    store.attach("dense", VectorField("dense", dim=DIM, identity={"bench": "random-projection"}))
    for batch in corpus_batches(data, n_docs):
        vectors = _projection([t for _, t in batch], analyzer, matrix)
        store.upsert("dense", [i for i, _ in batch], [{}] * len(batch), vectors.tolist())

    def search(query: str) -> object:
        return store.search("dense", _projection([query], analyzer, matrix).tolist(), K)

    return search, folder / "milvus.db"


BUILDERS = {
    "bm25": build_bm25,
    "milvus-bm25": build_milvus_bm25,
    "milvus-dense": build_milvus_dense,
}


def run_system(system: str, data: Path, n_docs: int, queries: list[str]) -> dict[str, Any]:
    """Build ``system`` over ``n_docs`` documents and time ``queries`` (in this process)."""
    with tempfile.TemporaryDirectory(prefix="rag-retrievers-scale-") as tmp:
        before = _rss_mib()
        start = time.perf_counter()
        search, stored = BUILDERS[system](data, n_docs, Path(tmp))
        search("warm up the index")  # milvus-lite flushes and builds its index on first search
        build_s = time.perf_counter() - start
        result: dict[str, Any] = {
            "system": system,
            "docs": n_docs,
            "queries": len(queries),
            "build_s": build_s,
            "disk_mib": _disk_mib(stored),
        }
        for threads in (1, 2):
            latencies = _latencies(search, queries, threads)
            result[f"p50_ms_{threads}t"] = _percentile(latencies, 50)
            result[f"p99_ms_{threads}t"] = _percentile(latencies, 99)
        result["peak_mib"] = _peak_mib() - before
        if system.startswith("milvus"):
            from rag_retrievers.engines.milvus import close_stores

            close_stores()
    return result


# -- the command -------------------------------------------------------------------------------


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        metavar="DIR",
        help="folder holding scifact/, vaswani_npl/, cranfield/ and adi/ (default: %(default)s)",
    )
    parser.add_argument(
        "--docs",
        type=int,
        default=1_000_000,
        metavar="N",
        help="corpus size (default: %(default)s)",
    )
    parser.add_argument(
        "--milvus-docs",
        type=int,
        default=None,
        metavar="N",
        help="corpus size for the milvus-lite systems (default: --docs)",
    )
    parser.add_argument(
        "--queries", type=int, default=200, metavar="N", help="queries timed (default: %(default)s)"
    )
    parser.add_argument(
        "--milvus-queries",
        type=int,
        default=None,
        metavar="N",
        help="queries timed on the milvus-lite systems (default: --queries)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        metavar="LIST",
        help=f"comma-separated, of {', '.join(SYSTEMS)} (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def format_table(results: list[dict[str, Any]]) -> str:
    header = (
        "| system | docs | queries | build s | peak Δ MiB | on disk MiB | p50 ms 1t | p99 ms 1t "
        "| p50 ms 2t | p99 ms 2t |"
    )
    lines = [header, "|" + "---|" * 10]
    for r in results:
        lines.append(
            f"| {r['system']} | {r['docs']:,} | {r['queries']} | {r['build_s']:,.1f} | "
            f"{r['peak_mib']:,.0f} | {r['disk_mib']:,.0f} | {r['p50_ms_1t']:,.2f} | "
            f"{r['p99_ms_1t']:,.2f} | {r['p50_ms_2t']:,.2f} | {r['p99_ms_2t']:,.2f} |"
        )
    return "\n".join(lines)


def main_scale(args: argparse.Namespace) -> int:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in BUILDERS]
    if unknown:
        print(f"unknown system {unknown[0]!r}; valid: {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    for name in SOURCES:
        if not (args.data / name / "corpus.jsonl").is_file():
            print(f"{args.data / name}/corpus.jsonl not found: pass --data DIR", file=sys.stderr)
            return 2
    results = []
    for system in systems:
        milvus = system.startswith("milvus")
        n_docs = (args.milvus_docs or args.docs) if milvus else args.docs
        n_queries = (args.milvus_queries or args.queries) if milvus else args.queries
        spec = {"system": system, "data": str(args.data), "docs": n_docs, "queries": n_queries}
        # a fresh process per system: peak memory and imports are its own
        done = subprocess.run(
            [sys.executable, "-m", "rag_retrievers.evals.bench.scale", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            print(f"{system} failed:\n{done.stderr[-4000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{system}: done", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def _worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    data = Path(spec["data"])
    queries = benchmark_queries(data, spec["queries"])
    print(json.dumps(run_system(spec["system"], data, spec["docs"], queries)))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _worker(sys.argv[1])
