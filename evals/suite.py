"""``rag-retrievers eval suite FILE``: run an evaluation suite end to end and write its report.

The suite file format is in :mod:`rag_retrievers.evals.suite_config`; the run is resumable
(:mod:`rag_retrievers.evals.suite_runner`): stop it at any point and run the same command again,
and only the unfinished items are computed. The report folder (``--out``, default
``runs/suites/<suite name>``) gets ``items.jsonl`` (the per-item cache), ``results.json``,
``summary.md`` and ``report.html``.

From Python::

    config = load_suite("evals/suites/qa_pubmedqa_rag.toml", limit=20)
    results = run_suite(config, "runs/suites/qa_pubmedqa-rag")
    write_report(results, "runs/suites/qa_pubmedqa-rag")
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rag_retrievers.evals.cache import add_cache_arguments
from rag_retrievers.evals.suite_config import DATA_ENV, SuiteConfig, load_suite
from rag_retrievers.evals.suite_report import system_summaries, write_report
from rag_retrievers.evals.suite_runner import SuiteResults, run_suite

__all__ = [
    "SuiteConfig",
    "SuiteResults",
    "add_suite_arguments",
    "load_suite",
    "main_suite",
    "run_suite",
    "write_report",
]


def add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the suite's TOML file, e.g. evals/suites/*.toml")
    parser.add_argument(
        "--out", type=Path, help="report folder (default runs/suites/<suite name>); reruns resume"
    )
    parser.add_argument(
        "--limit", type=int, help="run the first N questions only (replaces the suite's limit)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help=f"folder relative dataset paths point into (replaces the suite's data_root and "
        f"${DATA_ENV})",
    )
    add_cache_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=main_suite)


def main_suite(args: argparse.Namespace) -> int:
    config = load_suite(args.file, data=args.data, limit=args.limit)
    out = args.out or Path("runs") / "suites" / config.name
    results = run_suite(
        config,
        out,
        cache=None if args.no_cache else args.cache,
        progress=False if args.quiet else None,
    )
    paths = write_report(results, out)
    for system, table in system_summaries(results).items():
        for metric, figure in table.items():
            mean = "–" if figure["mean"] is None else f"{figure['mean']:.4f}"
            print(f"{system}  {metric} {mean} (n={figure['n']})")
    print(
        f"{results.computed} items computed, {results.reused} reused; "
        f"report: {paths['html']}, {paths['markdown'].name}, {paths['json'].name}"
    )
    return 0
