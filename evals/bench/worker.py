"""The worker: one system over one corpus, timed in its own fresh process.

:func:`spawn_worker` (the parent's side) writes a JSON spec and starts
``python -m rag_retrievers.evals.bench --worker SPEC``; :func:`worker_main` (the child's side) runs
:func:`run_worker` and writes its result as JSON next to the spec.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag_retrievers.evals.bench.systems import ENGINES, Engine, K, import_engine
from rag_retrievers.evals.bench.workloads import load_workload

# a timed pass is repeated until this many seconds have gone (at most MAX_PASSES passes); each
# query's latency is its median over the passes, which steadies sub-millisecond timings
MIN_TIMING_S = 3.0
MAX_PASSES = 5


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Build one system over one corpus and time it; runs in a fresh process.

    ``spec``: system, corpus, data, docs, queries (ids timed one per call), batches (name ->
    ids timed through the batch API), keep_hits (return the top-k ids of the timed queries).
    """
    import_engine(spec["system"])
    workload = load_workload(spec["corpus"], Path(spec["data"]), spec["docs"])
    texts = workload.queries
    gc.collect()
    baseline = current_rss_mib()

    began = time.perf_counter()
    engine = ENGINES[spec["system"]](workload.documents)
    engine.search(texts[spec["queries"][0]], K)  # first query: ours weights its matrix lazily
    build_s = time.perf_counter() - began

    timed = [(qid, texts[qid]) for qid in spec["queries"]]
    latencies, hits, passes = time_single_queries(engine, timed)
    batch_s = {
        name: time_batch(engine, [texts[q] for q in ids]) for name, ids in spec["batches"].items()
    }
    return {
        "system": spec["system"],
        "n_docs": len(workload.documents),
        "build_s": build_s,
        "latencies_s": latencies,
        "batch_s": batch_s,
        "passes": passes,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
        "hits": hits if spec.get("keep_hits") else None,
    }


def _passes() -> Iterator[None]:
    """One step per timed pass: one pass, then more until :data:`MIN_TIMING_S` seconds have
    gone, at most :data:`MAX_PASSES`."""
    began = time.perf_counter()
    for done in range(MAX_PASSES):
        if done and time.perf_counter() - began >= MIN_TIMING_S:
            return
        yield


def time_single_queries(
    engine: Engine, queries: list[tuple[str, str]]
) -> tuple[dict[str, float], dict[str, list[str]], int]:
    """One ``search`` call per query, in passes (see :data:`MIN_TIMING_S`): each query's median
    latency (s), its hits from the first pass, and the number of passes."""
    hits: dict[str, list[str]] = {}
    timings: dict[str, list[float]] = {qid: [] for qid, _ in queries}
    passes = 0
    for _ in _passes():
        for qid, text in queries:
            start = time.perf_counter()
            result = engine.search(text, K)
            timings[qid].append(time.perf_counter() - start)
            hits.setdefault(qid, result)
        passes += 1
    return {q: statistics.median(t) for q, t in timings.items()}, hits, passes


def time_batch(engine: Engine, texts: list[str]) -> float:
    """Median seconds of one ``search_batch`` call over all ``texts``, in passes."""
    runs: list[float] = []
    for _ in _passes():
        start = time.perf_counter()
        engine.search_batch(texts, K)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def current_rss_mib() -> float:
    """Resident memory now (Linux ``/proc``); elsewhere the peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def spawn_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`run_worker` in a new interpreter; its stderr passes through."""
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        spec_path, result_path = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_path.write_text(json.dumps({**spec, "result": str(result_path)}), encoding="utf-8")
        command = [sys.executable, "-m", "rag_retrievers.evals.bench", "--worker", str(spec_path)]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"benchmark worker for {spec['system']} on {spec['corpus']} "
                f"failed with exit code {done.returncode}"
            )
        return json.loads(result_path.read_text(encoding="utf-8"))


def worker_main(spec_path: str) -> int:
    """``python -m rag_retrievers.evals.bench --worker SPEC``: run the spec, write its result."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result = run_worker(spec)
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0
