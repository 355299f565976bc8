"""Benchmark the ColBERT index: ``rag-retrievers bench colbert --dataset DIR``.

One index, built once, answers every query in each mode in one run: with candidate generation
(the default search), exhaustively (exact MaxSim over every document, the reference) and, with
``--compare-reference``, with the candidate search as it was before issue 21
(:mod:`~rag_retrievers.evals.bench.colbert_reference`: same algorithm, every token decoded).
Printed: nDCG@10 of each (ir-measures), the candidates' recall of exhaustive MaxSim's top 10,
ms/query (p50, p95 and p99, one query per call, on ``--threads`` BLAS threads, 1 by default;
the modes alternate query by query, so load on a shared machine falls on each alike), the
speedups, and bytes stored per token. With ``--model minilm`` (the default here, as no ColBERT
weights exist offline) every line is labelled a stand-in.

``--scale-docs N`` benchmarks a larger synthetic collection instead
(:mod:`~rag_retrievers.evals.bench.colbert_scale`).

Encoding a corpus takes minutes on a CPU, so token vectors are cached on disk (``--cache``,
default ``runs/colbert-tokens``), keyed by the model's weights and settings and the corpus file;
a rerun only builds the index.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rag_retrievers.evals.bench.colbert_timing import (
    MODE_NAMES,
    blas_threads,
    check_counts,
    identical_top10,
    percentiles_ms,
    print_latency_table,
    reference_searcher,
    timed,
    top10_recall,
)
from rag_retrievers.evals.bench.colbert_tokens import (
    DEFAULT_CACHE,
    CachedEncoder,
    cached_tokens,
    corpus_tokens,
)
from rag_retrievers.evals.output import add_json_print_arguments, show_report

from rag_retrievers.spec import parse_params

__all__ = ["CachedEncoder", "cached_tokens", "corpus_tokens", "main_colbert", "run_bench"]


def add_colbert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, help="BEIR-layout folder (corpus, queries, qrels)")
    parser.add_argument("--split", default="test", help="qrels/<split>.tsv (default test)")
    parser.add_argument(
        "--model", default="minilm", help="ColBERT model name or path (default minilm: stand-in)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='ColBERT index option (VALUE as JSON), e.g. --param compression="fp16"',
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="folder for cached token vectors (default %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="encode the corpus again")
    parser.add_argument(
        "--latency-queries",
        type=int,
        default=100,
        help="queries timed one per call in each mode (default 100; all are scored)",
    )
    parser.add_argument(
        "--exhaustive-latency-queries",
        type=int,
        default=20,
        help="of those, timed exhaustively too (default 20; an exhaustive query scans everything)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads while searching (default 1; needs threadpoolctl, else not limited)",
    )
    parser.add_argument(
        "--compare-reference",
        action="store_true",
        help="also run the candidate search as it was before issue 21 (the before/after table)",
    )
    from rag_retrievers.evals.bench.colbert_scale import add_scale_arguments

    add_scale_arguments(parser)
    add_json_print_arguments(parser)


def searchers(colbert: Any, compare_reference: bool) -> dict[str, Callable[[np.ndarray, int], Any]]:
    """mode -> ``search(query_vectors, k) -> hits``, one query per call."""

    def mode_search(mode: str) -> Callable[[np.ndarray, int], Any]:
        return lambda vectors, k: colbert.search_vectors([vectors], k, mode=mode)[0]

    modes = {m: mode_search(m) for m in ("exhaustive", "candidates")}
    if compare_reference:
        modes["reference"] = reference_searcher(colbert)
    return modes


def run_modes(
    colbert: Any,
    query_vectors: list[np.ndarray],
    *,
    k: int,
    compare_reference: bool,
    latency_queries: int,
    exhaustive_latency_queries: int,
    progress: bool | None,
) -> tuple[dict[str, list[list[Any]]], dict[str, list[tuple[float, float]]]]:
    """Every query's ``k`` hits in each mode (exhaustive in batches of 32 queries: a scan
    decodes once per batch), and the per-query latencies of the first ``latency_queries`` (of
    ``exhaustive_latency_queries`` exhaustively), the modes alternating query by query."""
    from tqdm.auto import tqdm

    hits: dict[str, list[list[Any]]] = {"exhaustive": []}
    for start in range(0, len(query_vectors), 32):
        hits["exhaustive"] += colbert.search_vectors(
            query_vectors[start : start + 32], k, mode="exhaustive"
        )
    search = searchers(colbert, compare_reference)
    for mode in [m for m in search if m != "exhaustive"]:
        bar = tqdm(query_vectors, desc=f"{mode} search", disable=progress is False, leave=False)
        hits[mode] = [search[mode](v, k) for v in bar]
    latencies: dict[str, list[tuple[float, float]]] = {mode: [] for mode in search}
    measured = query_vectors[:latency_queries]
    for i, vectors in enumerate(tqdm(measured, desc="timing", disable=progress is False)):
        for mode, run in search.items():
            if mode == "exhaustive" and i >= exhaustive_latency_queries:
                continue
            wall, cpu, _ = timed(lambda run=run, vectors=vectors: run(vectors, 10))
            latencies[mode].append((wall, cpu))
    return hits, latencies


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Build the index once, search every query in each mode; the figures as a dict."""
    from rag_retrievers.adapters.colbert import ColBERT
    from rag_retrievers.evals.beir import load_beir
    from rag_retrievers.evals.retrieval import evaluate_run

    from rag_retrievers.encoders.colbert import STAND_IN_NOTE, ColBERTEncoder
    from rag_retrievers.errors import InvalidInputError

    check_counts(args)
    if args.dataset is None:
        raise InvalidInputError("bench colbert needs --dataset DIR (or --scale-docs N)")
    progress = False if args.quiet else None
    params = parse_params(args.param)
    dataset = load_beir(args.dataset, args.split)
    encoder = ColBERTEncoder(args.model)
    texts = [d.text for d in dataset.corpus]
    began = time.perf_counter()
    cache = None if args.no_cache else args.cache
    tokens = corpus_tokens(encoder, texts, args.dataset / "corpus.jsonl", cache, progress)
    encode_s = time.perf_counter() - began
    colbert = ColBERT(encoder=CachedEncoder(encoder, tokens), **params)  # type: ignore[arg-type]
    began = time.perf_counter()
    colbert.add(dataset.corpus, show_progress=progress)
    index_s = time.perf_counter() - began

    ids = list(dataset.queries)
    began = time.perf_counter()
    query_vectors = encoder.encode_queries([dataset.queries[q] for q in ids])
    query_encode_ms = (time.perf_counter() - began) * 1000 / max(len(ids), 1)
    load_before = os.getloadavg()[0]
    with blas_threads(args.threads) as threads:
        hits, latencies = run_modes(
            colbert,
            query_vectors,
            k=100,
            compare_reference=args.compare_reference,
            latency_queries=args.latency_queries,
            exhaustive_latency_queries=args.exhaustive_latency_queries,
            progress=progress,
        )
    load_after = os.getloadavg()[0]
    modes: dict[str, Any] = {}
    for mode, found in hits.items():
        run = {q: {h.id: h.score for h in result} for q, result in zip(ids, found, strict=True)}
        metrics = evaluate_run(run, dataset.qrels, ["nDCG@10", "Recall@100", "MRR@10", "MAP"])
        modes[mode] = {
            **metrics,
            **percentiles_ms(latencies[mode]),
            "latency_queries": len(latencies[mode]),
            "top10_recall": top10_recall(found, hits["exhaustive"]),
        }
    index = colbert.index
    encoded_tokens = int(sum(len(tokens[t]) for t in dict.fromkeys(texts)))
    exhaustive, candidates = modes["exhaustive"], modes["candidates"]
    report = {
        "dataset": str(args.dataset),
        "split": args.split,
        "queries": len(ids),
        "documents": len(dataset.corpus),
        "retriever": repr(colbert),
        "label": colbert.label,
        "stand_in": colbert.stand_in,
        "note": STAND_IN_NOTE if colbert.stand_in else None,
        "threads": threads,
        "load_average": [load_before, load_after],
        "cpus": os.cpu_count(),
        "modes": modes,
        "ndcg10_ratio": candidates["nDCG@10"] / exhaustive["nDCG@10"],
        # the share of exhaustive MaxSim's top 10 that candidate generation found (ranked
        # exactly, a top-10 document among the candidates is in their top 10)
        "top10_recall": candidates["top10_recall"],
        "candidates_from": "milvus (MUVERA encodings)" if colbert.milvus else "centroids (PLAID)",
        "speedup_p50": exhaustive["ms_per_query_p50"] / candidates["ms_per_query_p50"],
        "tokens_encoded": encoded_tokens,
        "tokens_stored": index.live_tokens,
        "bytes_per_token": index.bytes_per_token(),
        "bytes_per_encoded_token": index.bytes_per_token() * index.live_tokens / encoded_tokens,
        "centroids": 0 if index.centroids is None else len(index.centroids),
        "encode_seconds": round(encode_s, 1),
        "index_seconds": round(index_s, 1),
        "query_encode_ms": round(query_encode_ms, 2),
        "latency_queries": min(args.latency_queries, len(ids)),
    }
    if "reference" in modes:
        report["reference_speedup_p50"] = (
            modes["reference"]["ms_per_query_p50"] / candidates["ms_per_query_p50"]
        )
        report["identical_top10_vs_reference"] = identical_top10(
            hits["candidates"], hits["reference"]
        )
    return report


def print_report(r: dict[str, Any]) -> None:
    name = Path(r["dataset"]).name
    print(
        f"dataset     {name} ({r['split']}: {r['queries']} queries, {r['documents']:,} documents)"
    )
    print(f"retriever   {r['retriever']}")
    if r["stand_in"]:
        print(f"NOTE        {r['label']}; the figures are not those of a ColBERT model")
    print(
        f"index       {r['tokens_stored']:,} tokens stored ({r['tokens_encoded']:,} encoded), "
        f"{r['centroids']:,} centroids, built in {r['index_seconds']}s "
        f"(encoding {r['encode_seconds']}s, cached after the first run)"
    )
    print(
        f"\n{'mode':<32}{'nDCG@10':>9}{'Recall@100':>12}{'MRR@10':>8}{'MAP':>8}"
        f"{'top-10 recall':>15}"
    )
    for mode, m in r["modes"].items():
        print(
            f"{MODE_NAMES.get(mode, mode):<32}{m['nDCG@10']:>9.4f}{m['Recall@100']:>12.4f}"
            f"{m['MRR@10']:>8.4f}{m['MAP']:>8.4f}{m['top10_recall']:>15.4f}"
        )
    print_latency_table(r["modes"])
    print(
        f"\nlatency: {r['latency_queries']} queries, one per call, k=10, {r['threads']}, the "
        f"modes alternating; query encoding excluded (it adds {r['query_encode_ms']} ms/query); "
        f"load average {r['load_average'][0]:.1f} before timing, {r['load_average'][1]:.1f} "
        f"after, on {r['cpus']} CPUs"
    )
    print(f"candidates from {r['candidates_from']}")
    print(f"nDCG@10 ratio {r['ndcg10_ratio']:.4f}")
    print(f"top-10 recall {r['top10_recall']:.4f} (of exhaustive MaxSim's top 10)")
    print(f"speedup p50 {r['speedup_p50']:.1f}")
    if "reference_speedup_p50" in r:
        print(f"speedup p50 vs before {r['reference_speedup_p50']:.1f}")
        print(
            f"identical top-10 vs before {r['identical_top10_vs_reference']:.4f} "
            "(share of queries with the same ids in the same order)"
        )
    print(f"bytes/token {r['bytes_per_token']:.1f}")
    print(f"bytes/encoded token {r['bytes_per_encoded_token']:.1f}")


def main_colbert(args: argparse.Namespace) -> int:
    """``rag-retrievers bench colbert``: candidate generation vs exhaustive MaxSim."""
    if args.scale_docs is not None:
        from rag_retrievers.evals.bench.colbert_scale import main_scale

        return main_scale(args)
    show_report(run_bench(args), as_json=args.json, table=print_report)
    return 0
