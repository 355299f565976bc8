"""The ``bench bm25`` command: its options, and one run over the chosen corpora."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_retrievers.evals.bench.report import format_corpus_report
from rag_retrievers.evals.bench.stats import correctness, ratios, system_stats
from rag_retrievers.evals.bench.systems import SYSTEMS, K, check_dependencies
from rag_retrievers.evals.bench.worker import spawn_worker
from rag_retrievers.evals.bench.workloads import CORPORA, load_workload, sample_ids
from rag_retrievers.evals.output import add_json_file_arguments, stderr_logger, write_json_report

from rag_retrievers.errors import InvalidInputError

DEFAULT_RANK_BM25_QUERIES = 100


def add_bm25_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bench bm25`` to ``parser``."""
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        default=Path("../shared/data"),
        help="folder holding scifact/ and vaswani_npl/ in the BEIR layout "
        "(relative to the current directory; default: %(default)s)",
    )
    parser.add_argument(
        "--docs",
        type=int,
        metavar="N",
        default=200_000,
        help="size of the large corpus, made by repeating vaswani_npl and "
        "scifact (default: %(default)s)",
    )
    parser.add_argument(
        "--queries",
        type=int,
        metavar="N",
        default=None,
        help="queries timed on the large corpus (default: all 393, the SciFact "
        "test queries plus the vaswani_npl queries)",
    )
    parser.add_argument(
        "--rank-bm25-queries",
        type=int,
        metavar="N",
        default=DEFAULT_RANK_BM25_QUERIES,
        help="queries given to rank-bm25 on the large corpus, a fixed random "
        "sample; it scores every document in Python per query term "
        "(default: %(default)s; on scifact it gets all queries)",
    )
    parser.add_argument(
        "--corpora",
        metavar="LIST",
        default=",".join(CORPORA),
        help=f"comma-separated, from: {', '.join(CORPORA)} (default: %(default)s)",
    )
    add_json_file_arguments(parser)


def main_bm25(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed options describe, print one table per corpus; exit code."""
    corpora = _check_options(args)
    check_dependencies()
    log = stderr_logger(args.quiet)
    began = time.perf_counter()
    report: dict[str, Any] = {"k": K, "python": sys.version.split()[0], "corpora": {}}
    for corpus in corpora:
        report["corpora"][corpus] = bench_corpus(corpus, args, log)
        print(format_corpus_report(corpus, report["corpora"][corpus]), flush=True)
    report["wall_s"] = time.perf_counter() - began
    print(f"total wall time: {report['wall_s']:.0f} s")
    if args.json_path is not None:
        write_json_report(args.json_path, report)
        log(f"results written to {args.json_path}")
    return 0


def _check_options(args: argparse.Namespace) -> list[str]:
    """The corpora to run; raises InvalidInputError naming a bad option."""
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown or not corpora:
        raise InvalidInputError(f"--corpora {args.corpora!r}: choose from {', '.join(CORPORA)}")
    for name in ("docs", "queries", "rank_bm25_queries"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not (args.data / "scifact").is_dir():
        raise InvalidInputError(f"--data {args.data}: no scifact/ folder there")
    return corpora


def bench_corpus(
    corpus: str, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run every system on ``corpus``; returns the per-system stats, ratios and correctness.

    SciFact is small: every system answers all its queries and the hits are checked. On the
    large corpus a sample of the queries is timed, and rank-bm25 answers a sample of those."""
    small = corpus == "scifact"
    workload = load_workload(corpus, args.data, args.docs, documents=False)
    all_ids = list(workload.queries)
    timed = all_ids if small else sample_ids(all_ids, args.queries)
    subset = timed if small else sample_ids(timed, args.rank_bm25_queries)
    queries = {s: subset if s == "rank-bm25" else timed for s in SYSTEMS}
    base = {
        "corpus": corpus,
        "data": str(args.data.resolve()),
        "docs": args.docs,
        "keep_hits": small,
    }
    raw = {}
    for system in SYSTEMS:
        batches = {"all": queries[system]}
        if system != "rank-bm25":
            batches["subset"] = subset
        log(f"{corpus}: {system}, {len(queries[system])} queries ...")
        began = time.perf_counter()
        raw[system] = spawn_worker(
            {**base, "system": system, "queries": queries[system], "batches": batches}
        )
        log(
            f"{corpus}: {system} done in {time.perf_counter() - began:.1f} s "
            f"({raw[system]['n_docs']:,} docs)"
        )
    result = {
        "n_docs": raw["ours"]["n_docs"],
        "n_queries": len(timed),
        "n_rank_bm25_queries": len(subset),
        "systems": {s: system_stats(raw[s], queries[s]) for s in SYSTEMS},
    }
    result["ratios"] = {
        "bm25s": ratios(result["systems"]["ours"], result["systems"]["bm25s"]),
        "rank-bm25": ratios(
            system_stats(raw["ours"], subset, batch="subset"), result["systems"]["rank-bm25"]
        ),
    }
    if small:
        result["correctness"] = correctness(raw, workload.qrels)
    return result
