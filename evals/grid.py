"""An experiment table: a grid of retrievers on one dataset, with significance against a baseline.

``rag-retrievers eval grid --dataset DIR --grid "bm25, bm25/rm3, hybrid:bm25+dense~rrf"
--baseline bm25`` runs each grid entry over the dataset's queries and prints one table: a row per
entry; a column per metric, the mean latency per query and, for the first (primary) metric, the
difference from the baseline with paired two-sided p-values (t-test and/or randomisation test,
:mod:`~rag_retrievers.evals.significance`) and their Holm-adjusted values over the grid's
comparisons; ``*`` marks an adjusted p below ``--alpha``. Each run's TREC file and a JSON report
with every number (per-query values included) go to ``--output``.

A grid entry is a compact :class:`~rag_retrievers.spec.RetrieverSpec` (``bm25``, ``bm25/rm3``,
``hybrid:bm25+dense~combsum:z-score``; see :mod:`~rag_retrievers.evals.grid_entries`).

Each distinct leaf retriever (name and model) is indexed once, through the same cache as
``eval retrieval``, and shared by every entry that uses it: ``bm25``, ``bm25/rm3`` and
``hybrid:bm25+dense`` search one BM25 index.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_retrievers.evals.cache import add_cache_arguments
from rag_retrievers.evals.grid_entries import (
    ENTRY_FORMS,
    GridEntryError,
    entry_name,
    parse_entry,
    parse_grid,
)
from rag_retrievers.evals.significance import (
    PairedTest,
    TestName,
    holm,
    paired_randomization_test,
    paired_t_test,
)

from rag_retrievers.errors import InvalidInputError, UnknownNameError
from rag_retrievers.spec import RetrieverSpec

if TYPE_CHECKING:
    from rag_retrievers.base import Retriever

__all__ = [
    "Comparison",
    "EntryResult",
    "GridEntryError",
    "add_grid_arguments",
    "compare_to_baseline",
    "entry_name",
    "format_table",
    "main_grid",
    "parse_entry",
    "parse_grid",
]

DEFAULT_METRICS = ("nDCG@10", "Recall@100", "MRR@10")
#: --test choice -> the tests it runs
TESTS: dict[str, tuple[TestName, ...]] = {
    "t": ("t",),
    "randomization": ("randomization",),
    "both": ("t", "randomization"),
}
_SHORT = {"t": "t", "randomization": "rand"}


# -- results and comparisons -------------------------------------------------------------------


@dataclass(frozen=True)
class EntryResult:
    """One grid entry's run: mean and per-query metric values, latency, where its run went.

    ``index_seconds`` is the time to get the entry's indexes; ``index_reused`` says none had to
    be built for it (opened from the cache, or shared with an earlier entry).
    """

    entry: str
    label: str
    retriever: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    latency_ms: float
    index_seconds: float
    index_reused: bool
    run_file: str


@dataclass(frozen=True)
class AdjustedTest:
    """A paired test against the baseline, with its Holm-adjusted p-value over the grid."""

    result: PairedTest
    p_holm: float
    significant: bool


@dataclass(frozen=True)
class Comparison:
    """An entry against the baseline on one metric: mean difference and the tests run."""

    metric: str
    difference: float
    tests: dict[str, AdjustedTest]


def compare_to_baseline(
    per_query: Mapping[str, Mapping[str, float]],
    baseline: str,
    *,
    metric: str,
    tests: Sequence[TestName] = ("t", "randomization"),
    trials: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Comparison]:
    """Each entry but ``baseline`` against it: entry -> :class:`Comparison`.

    ``per_query`` maps entry -> query id -> value of ``metric``. Each test's p-values are
    Holm-adjusted over the family of the grid's comparisons (one per non-baseline entry);
    ``significant`` is adjusted p < ``alpha``. Every randomisation test starts from ``seed``, so
    an entry's p-value does not depend on its place in the grid.
    """
    if baseline not in per_query:
        raise InvalidInputError(f"baseline {baseline!r} is not among {sorted(per_query)}")
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be in (0, 1), got {alpha!r}")
    others = [name for name in per_query if name != baseline]
    base = per_query[baseline]
    raw: dict[str, list[PairedTest]] = {}
    for test in tests:
        if test == "t":
            raw[test] = [paired_t_test(per_query[name], base) for name in others]
        elif test == "randomization":
            raw[test] = [
                paired_randomization_test(per_query[name], base, trials=trials, seed=seed)
                for name in others
            ]
        else:
            raise UnknownNameError("significance test", test, _SHORT)
    adjusted = {test: holm([r.p_value for r in results]) for test, results in raw.items()}
    comparisons = {}
    for i, name in enumerate(others):
        first = next(iter(raw.values()), None)
        difference = first[i].mean_difference if first else _mean_difference(per_query[name], base)
        comparisons[name] = Comparison(
            metric,
            difference,
            {
                test: AdjustedTest(raw[test][i], adjusted[test][i], adjusted[test][i] < alpha)
                for test in raw
            },
        )
    return comparisons


def _mean_difference(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    ids = set(a) | set(b)
    return sum(a.get(q, 0.0) - b.get(q, 0.0) for q in ids) / len(ids) if ids else 0.0


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 0.001 else f"{value:.1e}"


def format_table(
    results: Sequence[EntryResult],
    comparisons: Mapping[str, Comparison],
    *,
    metrics: Sequence[str],
    baseline: str,
    tests: Sequence[TestName],
) -> str:
    """One Markdown table, columns aligned: a row per entry, the baseline's saying so; ``*``
    follows a Holm-adjusted p-value that is significant (see :func:`compare_to_baseline`)."""
    primary = metrics[0]
    header = ["retriever", *metrics, "ms/query", f"Δ {primary}"]
    for test in tests:
        header += [f"p ({_SHORT[test]})", f"p Holm ({_SHORT[test]})"]
    rows = []
    for r in results:
        row = [r.entry, *(f"{r.metrics[m]:.4f}" for m in metrics), f"{r.latency_ms:.2f}"]
        comparison = comparisons.get(r.entry)
        if r.entry == baseline or comparison is None:
            row += ["baseline", *([""] * (2 * len(tests)))]
        else:
            row.append(f"{comparison.difference:+.4f}")
            for test in tests:
                outcome = comparison.tests[test]
                mark = "*" if outcome.significant else " "
                row += [_p(outcome.result.p_value), _p(outcome.p_holm) + mark]
        rows.append(row)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


# -- running a grid ----------------------------------------------------------------------------


class _Indexes:
    """Leaf retrievers indexed on the dataset, shared by the grid's entries.

    A Hybrid cannot hold the same object twice, so ``hybrid:bm25+bm25`` asks for copy 0 and copy
    1 of the BM25 index; a further copy is opened from the cache (or indexed again without one).
    """

    def __init__(self, dataset: Any, args: argparse.Namespace) -> None:
        self.dataset, self.args = dataset, args
        self.copies: dict[str, list[Retriever]] = {}

    def get(self, leaf: RetrieverSpec, copy: int) -> tuple[Retriever, bool]:
        from rag_retrievers.evals.cache import indexed

        copies = self.copies.setdefault(leaf.fingerprint(), [])
        if copy < len(copies):
            return copies[copy], True
        if copy != len(copies):
            raise InvalidInputError(f"copy {copy} of {leaf.label()} asked before copy {copy - 1}")
        retriever, cached = indexed(leaf, self.dataset, self.args)
        copies.append(retriever)
        return retriever, cached


def _assemble(
    spec: RetrieverSpec, leaf: Callable[[RetrieverSpec, int], tuple[Any, bool]]
) -> tuple[Retriever, bool]:
    """The retriever ``spec`` describes, built around indexed leaves; whether none of them had
    to be indexed (all opened from the cache or shared with an earlier entry)."""
    copies: Counter[str] = Counter()
    opened = []
    for leaf_spec in spec.leaves():
        opened.append(leaf(leaf_spec, copies[leaf_spec.fingerprint()]))
        copies[leaf_spec.fingerprint()] += 1
    return spec.assemble([r for r, _ in opened]), all(reused for _, reused in opened)


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eval grid`` to ``parser``."""
    parser.add_argument(
        "--dataset",
        required=True,
        type=Path,
        help="folder with corpus.jsonl, queries.jsonl, qrels/",
    )
    parser.add_argument(
        "--grid",
        required=True,
        help=f"comma-separated entries, each {ENTRY_FORMS}; "
        "e.g. 'bm25, bm25/rm3, hybrid:bm25+dense'",
    )
    parser.add_argument(
        "--baseline",
        help="the entry the others are tested against (default: the first); "
        "added as the first row if the grid lacks it",
    )
    parser.add_argument(
        "--model",
        help="model for the retrievers that take one: one name, or MEMBER=NAME,... "
        "(e.g. dense=minilm,splade=splade-tiny)",
    )
    parser.add_argument("--split", default="test", help="qrels/<split>.tsv (default test)")
    parser.add_argument("--depth", type=int, default=100, help="hits per query (default 100)")
    parser.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help="comma-separated; the first is tested against the baseline (default %(default)s)",
    )
    parser.add_argument(
        "--test", choices=list(TESTS), default="both", help="paired test(s) (default both)"
    )
    parser.add_argument(
        "--trials", type=int, default=10_000, help="randomisation test trials (default 10000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="randomisation test seed (default 0)")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level after Holm (default 0.05)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="folder for the TREC runs and grid.json (default runs/<dataset>-grid)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_cache_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress")


def main_grid(args: argparse.Namespace) -> int:
    """Run the grid the parsed options describe, print the table (or JSON); exit code."""
    from rag_retrievers.evals.beir import load_beir
    from rag_retrievers.evals.retrieval import (
        ir_measure,
        per_query_metrics,
        run_queries,
        write_trec_run,
    )

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not metrics:
        raise InvalidInputError("--metrics needs at least one metric")
    for metric in metrics:
        ir_measure(metric)  # unknown names fail before any work
    for name, value in [("--depth", args.depth), ("--trials", args.trials)]:
        if value < 1:
            raise InvalidInputError(f"{name} must be >= 1, got {value}")
    if not 0 < args.alpha < 1:
        raise InvalidInputError(f"--alpha must be in (0, 1), got {args.alpha}")
    specs = parse_grid(args.grid, model=args.model)
    names = [entry_name(s) for s in specs]
    baseline_spec = (
        specs[0] if args.baseline is None else parse_entry(args.baseline, model=args.model)
    )
    baseline = entry_name(baseline_spec)
    if baseline not in names:
        specs, names = [baseline_spec, *specs], [baseline, *names]
    tests = TESTS[args.test]
    dataset = load_beir(args.dataset, args.split)
    output = args.output or Path("runs") / f"{dataset.name}-grid"
    progress = False if args.quiet else None

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    indexes = _Indexes(dataset, args)
    results = []
    for i, (spec, name) in enumerate(zip(specs, names, strict=True), 1):
        log(f"[{i}/{len(specs)}] {name}")
        began = time.perf_counter()
        retriever, reused = _assemble(spec, indexes.get)
        index_s = time.perf_counter() - began
        run = run_queries(retriever, dataset.queries, k=args.depth, progress=progress)
        values = per_query_metrics(run.scores(), dataset.qrels, metrics)
        latencies = list(run.latencies.values())
        run_file = write_trec_run(run.hits, output / f"{spec.label()}.trec", tag=spec.label())
        results.append(
            EntryResult(
                entry=name,
                label=spec.label(),
                retriever=repr(retriever),
                metrics={m: sum(v.values()) / len(v) if v else 0.0 for m, v in values.items()},
                per_query=values,
                latency_ms=1000 * sum(latencies) / len(latencies) if latencies else 0.0,
                index_seconds=round(index_s, 3),
                index_reused=reused,
                run_file=str(run_file),
            )
        )
    primary = metrics[0]
    comparisons = compare_to_baseline(
        {r.entry: r.per_query[primary] for r in results},
        baseline,
        metric=primary,
        tests=tests,
        trials=args.trials,
        seed=args.seed,
        alpha=args.alpha,
    )
    report = {
        "dataset": str(args.dataset),
        "split": args.split,
        "queries": len(dataset.queries),
        "documents": len(dataset.corpus),
        "metrics": metrics,
        "primary_metric": primary,
        "baseline": baseline,
        "tests": list(tests),
        "trials": args.trials,
        "seed": args.seed,
        "alpha": args.alpha,
        "depth": args.depth,
        "entries": [
            {
                **asdict(r),
                "baseline": r.entry == baseline,
                "comparison": asdict(comparisons[r.entry]) if r.entry in comparisons else None,
            }
            for r in results
        ],
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "grid.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"dataset  {dataset.name} ({args.split}: {len(dataset.queries)} queries, "
        f"{len(dataset.corpus):,} documents); depth {args.depth}"
    )
    print()
    print(
        format_table(
            results,
            comparisons,
            metrics=metrics,
            baseline=baseline,
            tests=tests,
        )
    )
    print()
    described = {
        "t": "paired t-test",
        "randomization": f"paired randomisation test ({args.trials} trials, seed {args.seed})",
    }
    print(
        f"Δ {primary} and two-sided p-values against {baseline} over "
        f"{len(next(iter(results)).per_query[primary])} queries: "
        + "; ".join(f"{_SHORT[t]} = {described[t]}" for t in tests)
        + f". Holm-adjusted over {len(comparisons)} comparison(s); * adjusted p < {args.alpha}."
    )
    print(f"runs and grid.json in {output}")
    return 0
