"""The printed report: one Markdown table per corpus, its footnotes and the correctness lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag_retrievers.evals.bench.stats import RATIO_KEYS
from rag_retrievers.evals.bench.systems import K
from rag_retrievers.evals.bench.worker import MAX_PASSES, MIN_TIMING_S

_LABELS = {
    "ours": "rag_retrievers.BM25",
    "bm25s": "bm25s (numpy)",
    "rank-bm25": "rank_bm25.BM25Okapi",
}
_COLUMNS = (
    "system",
    "queries",
    "build s",
    "single q/s",
    "batch q/s",
    "p50 ms",
    "p99 ms",
    "peak Δ MiB",
)


def format_corpus_report(corpus: str, result: dict[str, Any]) -> str:
    """One Markdown table (absolute numbers, then ratio rows), footnotes and correctness."""
    rows = [
        [
            _LABELS[s],
            str(st["n_queries"]),
            f"{st['build_s']:.2f}",
            f"{st['single_qps']:,.1f}",
            f"{st['batch_qps']:,.1f}",
            f"{st['p50_ms']:.2f}",
            f"{st['p99_ms']:.2f}",
            f"{st['memory_mib']:,.0f}",
        ]
        for s, st in result["systems"].items()
    ]
    for other, r in result["ratios"].items():
        n = result["systems"][other]["n_queries"]
        rows.append([f"ours vs {other}", str(n)] + [_times(r[key]) for key in RATIO_KEYS])
    title = (
        f"### BM25 on {corpus}: {result['n_docs']:,} documents, k={K}, "
        f"{result['n_queries']} queries"
    )
    lines = ["", title, "", *markdown_table(_COLUMNS, rows), "", *_footnotes(result)]
    if "correctness" in result:
        lines += ["", *_correctness_lines(result["correctness"])]
    return "\n".join(lines) + "\n"


def _times(value: float) -> str:
    return "n/a" if value != value else f"{value:,.2f}x"


def markdown_table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


def _footnotes(result: dict[str, Any]) -> list[str]:
    peaks = ", ".join(f"{s} {st['peak_rss_mib']:,.0f}" for s, st in result["systems"].items())
    passes = ", ".join(f"{s} {st['passes']}" for s, st in result["systems"].items())
    n_sub = result["n_rank_bm25_queries"]
    notes = [
        "- build s: index the documents plus the first query (ours weights its matrix lazily on "
        "the first search); rank-bm25's time includes our Analyzer's analysis of the corpus.",
        f"- single q/s: one query per call, k={K}, query analysis included; p50/p99: latency of "
        "those calls. batch q/s: all queries in one call (ours `search_batch`, bm25s `retrieve`; "
        "rank-bm25 has no batch API, so a loop). One thread each. Passes are repeated for "
        f"{MIN_TIMING_S:g} s (at most {MAX_PASSES}); each query's latency and the batch time are "
        f"medians over the passes (passes: {passes}).",
        "- peak Δ MiB: each system runs in its own fresh process; peak RSS (ru_maxrss) of "
        "building + searching minus the RSS after loading the corpus and importing the libraries "
        f"(documents are part of that baseline). Peak RSS in MiB: {peaks}.",
        "- ratio rows: how many times better ours is (>1x: ours faster or smaller).",
    ]
    if n_sub < result["n_queries"]:
        notes.append(
            f"- rank-bm25 answers only a fixed random sample of {n_sub} of the "
            f"{result['n_queries']} queries (it scores every document in Python per query "
            "term); the ours-vs-rank-bm25 row compares ours on that same sample."
        )
    return notes


def _correctness_lines(check: dict[str, Any]) -> list[str]:
    lines = []
    for other, o in check["overlap"].items():
        lines.append(
            f"top-{K} overlap, ours vs {other}: {o['mean']:.1%} of hits shared, "
            f"{o['identical']:.1%} of {o['n_queries']} queries identical top-{K} sets"
        )
    lines.append(
        "nDCG@10 (ir-measures): "
        + ", ".join(f"{_LABELS[s]} {v:.4f}" for s, v in check["nDCG@10"].items())
    )
    return lines
