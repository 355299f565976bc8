"""``rag-retrievers eval KIND``: only the module of the kind being run is imported."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from rag_retrievers.cli import add_lazy_commands
from rag_retrievers.cli.options import (
    progress_from_args,
    quiet_option,
    retriever_options,
    spec_from_args,
)
from rag_retrievers.errors import InvalidInputError

#: kind -> ("module:function" that adds its options and sets ``run``, help)
KINDS: dict[str, tuple[str, str]] = {
    "retrieval": (
        "rag_retrievers.cli.eval:add_retrieval_arguments",
        "retrieval metrics on a BEIR-layout dataset",
    ),
    "grid": (
        "rag_retrievers.cli.eval:add_grid",
        "a grid of retrievers on one dataset: one table, significance vs a baseline",
    ),
    "tune-fusion": (
        "rag_retrievers.cli.eval:add_tune_fusion",
        "tune a hybrid's RRF k and weights on one split, report on another",
    ),
    "faithfulness": (
        "rag_retrievers.cli.eval:add_faithfulness",
        "a faithfulness judge against human labels: AUROC, reliability",
    ),
    "suite": (
        "rag_retrievers.cli.eval:add_suite",
        "run an evaluation suite (TOML) end to end, resumable; write its report",
    ),
}


def add_arguments(parser: argparse.ArgumentParser, rest: Sequence[str]) -> None:
    add_lazy_commands(parser, KINDS, rest, dest="eval_command", metavar="KIND")


def add_retrieval_arguments(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    p.add_argument(
        "--dataset",
        required=True,
        type=Path,
        help="folder with corpus.jsonl, queries.jsonl, qrels/",
    )
    retriever_options(p, default=None)
    p.add_argument(
        "--prf", help="wrap the retriever in pseudo-relevance feedback: rm3, rocchio, colbert-prf"
    )
    p.add_argument("--split", default="test", help="qrels/<split>.tsv (default test)")
    p.add_argument("--depth", type=int, default=100, help="hits retrieved per query (default 100)")
    p.add_argument("--metrics", default="nDCG@10,Recall@100,MRR@10,MAP", help="comma-separated")
    p.add_argument(
        "--output",
        type=Path,
        help="folder for run.trec and metrics.json (default runs/<dataset>-<retriever>)",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    from rag_retrievers.evals.cache import add_cache_arguments

    add_cache_arguments(p)
    quiet_option(p)
    p.set_defaults(run=cmd_eval_retrieval)


def add_grid(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    from rag_retrievers.evals.grid import add_grid_arguments, main_grid

    add_grid_arguments(p)
    p.set_defaults(run=main_grid)


def add_tune_fusion(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    from rag_retrievers.evals.tuning import add_tuning_arguments, main_tuning

    add_tuning_arguments(p)
    p.set_defaults(run=main_tuning)


def add_faithfulness(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    from rag_retrievers.evals.faithfulness.command import add_faithfulness_arguments

    add_faithfulness_arguments(p)


def add_suite(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    from rag_retrievers.evals.suite import add_suite_arguments

    add_suite_arguments(p)


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from rag_retrievers.evals.beir import load_beir
    from rag_retrievers.evals.cache import indexed
    from rag_retrievers.evals.retrieval import evaluate_run, ir_measure, run_queries, write_trec_run

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for metric in metrics:
        ir_measure(metric)  # unknown names fail before any work
    if args.depth < 1:
        raise InvalidInputError(f"--depth must be >= 1, got {args.depth}")
    spec = spec_from_args(args, args.retriever)
    dataset = load_beir(args.dataset, args.split)

    began = time.perf_counter()
    retriever, cached = indexed(spec, dataset, args)
    index_s = time.perf_counter() - began
    run = run_queries(retriever, dataset.queries, k=args.depth, progress=progress_from_args(args))
    search_s = sum(run.latencies.values())
    results = evaluate_run(run.scores(), dataset.qrels, metrics)

    output = args.output or Path("runs") / f"{dataset.name}-{spec.label()}"
    write_trec_run(run.hits, output / "run.trec", tag=spec.label())
    report = {
        "dataset": str(args.dataset),
        "split": args.split,
        "queries": len(dataset.queries),
        "documents": len(dataset.corpus),
        "retriever": repr(retriever),
        "metrics": results,
        "index_seconds": round(index_s, 3),
        "index_from_cache": cached,
        "queries_per_second": round(len(dataset.queries) / search_s, 1) if search_s else None,
    }
    (output / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"dataset    {dataset.name} ({args.split}: {len(dataset.queries)} queries, "
        f"{len(dataset.corpus):,} documents)"
    )
    print(f"retriever  {retriever!r}")
    for name, value in results.items():
        print(f"{name} {value:.4f}")
    qps = report["queries_per_second"]
    if cached:
        print(f"index opened from the cache in {index_s:.1f}s (--no-cache to rebuild)")
    print(f"index {index_s:.1f}s, {qps} queries/s; run and metrics in {output}")
    return 0
