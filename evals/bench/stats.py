"""From the workers' raw timings to numbers: throughput, latency, memory, ratios, correctness."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from rag_retrievers.evals.bench.systems import SYSTEMS, K

# higher is better for these; lower for the others
_HIGHER_IS_BETTER = {"single_qps", "batch_qps"}
RATIO_KEYS = ("build_s", "single_qps", "batch_qps", "p50_ms", "p99_ms", "memory_mib")


def system_stats(raw: dict[str, Any], qids: Sequence[str], batch: str = "all") -> dict[str, Any]:
    """Build time, throughputs, latency percentiles and memory from one worker's result."""
    lat = [raw["latencies_s"][q] for q in qids]
    return {
        "build_s": raw["build_s"],
        "single_qps": len(lat) / sum(lat),
        "batch_qps": len(qids) / raw["batch_s"][batch],
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * percentile(lat, 99),
        "peak_rss_mib": raw["peak_rss_mib"],
        "memory_mib": raw["peak_rss_mib"] - raw["baseline_rss_mib"],
        "n_queries": len(qids),
        "passes": raw["passes"],
    }


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile, linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratios(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    """How many times better ours is per measure (> 1: ours faster or smaller)."""
    out = {}
    for key in RATIO_KEYS:
        a, b = ours[key], other[key]
        if a <= 0 or b <= 0:
            out[key] = float("nan")
        else:
            out[key] = a / b if key in _HIGHER_IS_BETTER else b / a
    return out


def correctness(raw: dict[str, Any], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Top-k overlap of ours with bm25s and rank-bm25, and nDCG@10 of each system."""
    from rag_retrievers.evals.retrieval import evaluate_run

    hits = {s: raw[s]["hits"] for s in SYSTEMS}
    out: dict[str, Any] = {"overlap": {}, "nDCG@10": {}}
    for other in ("bm25s", "rank-bm25"):
        out["overlap"][other] = overlap(hits["ours"], hits[other])
    for system in SYSTEMS:
        run = {q: {d: float(K - r) for r, d in enumerate(ids)} for q, ids in hits[system].items()}
        out["nDCG@10"][system] = evaluate_run(run, qrels, ["nDCG@10"])["nDCG@10"]
    return out


def overlap(ours: dict[str, list[str]], other: dict[str, list[str]]) -> dict[str, float]:
    """Mean |ours ∩ other| / |larger list| over the shared queries, and the share identical."""
    qids = [q for q in ours if q in other]
    fractions = [
        len(set(ours[q]) & set(other[q])) / max(len(ours[q]), len(other[q]), 1) for q in qids
    ]
    return {
        "mean": statistics.fmean(fractions),
        "identical": sum(f == 1 for f in fractions) / len(fractions),
        "n_queries": len(qids),
    }
