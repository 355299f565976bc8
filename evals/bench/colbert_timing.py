"""What both ColBERT benches share (``bench colbert`` on a dataset, and its ``--scale-docs``
collection): timing one query, percentiles, a BLAS thread limit, the pre-issue-21 reference
search, top-10 agreement and the latency table."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall-clock and CPU seconds (of this thread: with one BLAS thread, all the search's work)
    of ``run()``, and its result."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = run()
    return time.perf_counter() - wall, time.thread_time() - cpu, result


def percentiles_ms(samples: list[tuple[float, float]]) -> dict[str, float]:
    """p50, p95 and p99 of wall-clock seconds and p50, p99 of CPU seconds (``samples``: pairs
    of them), in milliseconds (NaN when empty)."""
    wall = np.asarray([w for w, _ in samples]) * 1000
    cpu = np.asarray([c for _, c in samples]) * 1000
    out = {}
    for name, values, qs in (("ms", wall, (50, 95, 99)), ("cpu_ms", cpu, (50, 99))):
        for q in qs:
            value = float(np.percentile(values, q)) if len(values) else float("nan")
            out[f"{name}_per_query_p{q}"] = value
    return out


@contextmanager
def blas_threads(threads: int) -> Iterator[str]:
    """Limit BLAS (and OpenMP) to ``threads`` inside the block, with threadpoolctl where it is
    installed (it comes with sentence-transformers' scikit-learn); yields what was done."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "not limited (threadpoolctl is not installed)"
        return
    with threadpool_limits(limits=threads):
        yield f"{threads} BLAS thread{'s' if threads > 1 else ''}"


def reference_searcher(colbert: Any) -> Callable[[np.ndarray, int], list[Any]]:
    """``search(query_vectors, k) -> hits`` by the pre-issue-21 candidate search on ``colbert``'s
    index (built, not written to afterwards), with the same :class:`Hit` records."""
    from rag_retrievers.evals.bench.colbert_reference import ReferenceSearch

    reference = ReferenceSearch(colbert.index)

    def search(vectors: np.ndarray, k: int) -> list[Any]:
        with colbert._lock.read():
            ((rows, scores),) = reference.search([vectors], k)
            return colbert._docs.hits(rows, scores, colbert.name)

    return search


def top10_recall(found: list[list[Any]], truth: list[list[Any]]) -> float:
    """The mean share of each query's ``truth`` top 10 that ``found``'s top 10 holds."""
    shares = [
        len({h.id for h in f[:10]} & {h.id for h in t[:10]}) / max(len(t[:10]), 1)
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(shares)) if shares else float("nan")


def identical_top10(a: list[list[Any]], b: list[list[Any]]) -> float:
    """The share of queries whose top 10 (ids in rank order) is the same in both runs."""
    same = [[h.id for h in x[:10]] == [h.id for h in y[:10]] for x, y in zip(a, b, strict=True)]
    return float(np.mean(same)) if same else float("nan")


def check_counts(args: argparse.Namespace) -> None:
    """Refuse latency-query and thread counts below 1 (exhaustive latency queries: below 0)."""
    from rag_retrievers.errors import InvalidInputError

    for name in ("latency_queries", "threads"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1")
    if args.exhaustive_latency_queries < 0:
        raise InvalidInputError("--exhaustive-latency-queries must be >= 0")


MODE_NAMES = {
    "exhaustive": "exhaustive",
    "candidates": "candidates",
    "reference": "candidates, before (reference)",
}


def print_latency_table(modes: dict[str, dict[str, Any]]) -> None:
    """ms per query by mode: wall-clock p50/p95/p99 and the search thread's CPU p50/p99."""
    print(
        f"\n{'mode':<32}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'CPU p50 ms':>12}"
        f"{'CPU p99 ms':>12}{'timed':>7}"
    )
    for mode, m in modes.items():
        print(
            f"{MODE_NAMES.get(mode, mode):<32}{m['ms_per_query_p50']:>9.1f}"
            f"{m['ms_per_query_p95']:>9.1f}{m['ms_per_query_p99']:>9.1f}"
            f"{m['cpu_ms_per_query_p50']:>12.1f}{m['cpu_ms_per_query_p99']:>12.1f}"
            f"{m['latency_queries']:>7}"
        )
