"""``rag-retrievers bench contention``: BM25 search latency with and without a busy writer.

One BM25 over ``--docs`` synthetic documents (words drawn from a Zipf-like vocabulary, so posting
lists have realistic lengths) answers the same seeded queries in one run: alone, then, cycling
through them, while one thread adds ``--batch`` documents every ``--interval-ms`` milliseconds
until it has added ``--adds`` times. The table gives
p50/p95/p99/max per search and the ratio of each to the idle run, so what a writer costs a reader
(the readers-writer lock, plus the work the adds themselves take from the CPU) is measured side
by side. Latencies depend on the machine; the ratios are the figure.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from rag_retrievers.evals.output import report_json

from rag_retrievers.errors import InvalidInputError


def synthetic_documents(n: int, *, start: int = 0, seed: int = 0) -> list[dict[str, str]]:
    """``n`` documents of 20-60 words drawn Zipf-like from a 20,000-word vocabulary."""
    rng = np.random.default_rng(seed + start)
    ranks = np.arange(1, 20_001)
    p = 1.0 / ranks
    p /= p.sum()
    lengths = rng.integers(20, 61, size=n)
    words = rng.choice(ranks, size=int(lengths.sum()), p=p)
    out, at = [], 0
    for i, length in enumerate(lengths.tolist()):
        text = " ".join(f"w{w}" for w in words[at : at + length].tolist())
        out.append({"id": f"d{start + i}", "text": text})
        at += length
    return out


def _latencies(bm25: Any, queries: list[str]) -> np.ndarray:
    times = np.empty(len(queries))
    for i, query in enumerate(queries):
        began = time.perf_counter()
        bm25.search(query, k=10)
        times[i] = time.perf_counter() - began
    return times * 1000.0


def run_contention(
    docs: int, queries: int, batch: int, interval_ms: float, adds: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Latencies (ms) of the same searches, idle and under a writer; see the module doc."""
    from rag_retrievers import BM25

    bm25 = BM25()
    bm25.add(synthetic_documents(docs, seed=seed))
    rng = random.Random(seed)
    texts = [f"w{rng.randint(1, 2000)} w{rng.randint(1, 5000)} w{rng.randint(1, 20000)}"]
    texts += [
        " ".join(f"w{rng.randint(1, 20000)}" for _ in range(rng.randint(2, 6)))
        for _ in range(queries - 1)
    ]
    _latencies(bm25, texts[: min(50, queries)])  # warm caches (idf, analyzer)
    idle = _latencies(bm25, texts)

    stop, added = threading.Event(), [0]

    def writer() -> None:
        start = docs
        for _ in range(adds):
            if stop.is_set():
                break
            bm25.add(synthetic_documents(batch, start=start, seed=seed))
            start += batch
            added[0] += batch
            stop.wait(interval_ms / 1000.0)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    runs = []
    try:
        while thread.is_alive():  # the same queries again until the writer is done
            runs.append(_latencies(bm25, texts))
    finally:
        stop.set()
        thread.join()
    busy = np.concatenate(runs) if runs else _latencies(bm25, texts)
    return {
        "docs": docs,
        "queries": queries,
        "batch": batch,
        "interval_ms": interval_ms,
        "added_during_run": added[0],
        "searches_during_writes": len(busy),
        "idle": _summary(idle),
        "writer": _summary(busy),
    }


def _summary(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def format_contention(report: dict[str, Any]) -> str:
    idle, busy = report["idle"], report["writer"]
    lines = [
        f"BM25 search latency (ms) on {report['docs']:,} documents, {report['queries']} queries, "
        f"k=10; writer: {report['batch']} documents every {report['interval_ms']:g} ms "
        f"({report['added_during_run']:,} added while {report['searches_during_writes']:,} "
        "searches ran)",
        f"{'':<16}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]
    for name, row in (("idle", idle), ("with the writer", busy)):
        lines.append(f"{name:<16}" + "".join(f"{row[key]:>9.2f}" for key in idle))
    ratio = "".join(f"{busy[key] / idle[key]:>8.1f}x" for key in idle)
    lines.append(f"{'writer / idle':<16}{ratio}")
    return "\n".join(lines)


def add_contention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--docs", type=int, default=100_000, help="documents (default 100,000)")
    parser.add_argument("--queries", type=int, default=2000, help="searches timed (default 2000)")
    parser.add_argument("--batch", type=int, default=100, help="documents per add (default 100)")
    parser.add_argument("--adds", type=int, default=200, help="adds by the writer (default 200)")
    parser.add_argument(
        "--interval-ms", type=float, default=20.0, help="pause between adds (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def main_contention(args: argparse.Namespace) -> int:
    for name in ("docs", "queries", "batch", "adds"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not args.interval_ms >= 0:
        raise InvalidInputError(f"--interval-ms must be >= 0, got {args.interval_ms}")
    report = run_contention(
        args.docs, args.queries, args.batch, args.interval_ms, args.adds, args.seed
    )
    print(report_json(report) if args.json else format_contention(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - python -m entry
    parser = argparse.ArgumentParser(prog="rag-retrievers bench contention")
    add_contention_arguments(parser)
    return main_contention(parser.parse_args(argv))
