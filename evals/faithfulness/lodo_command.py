"""``rag-retrievers eval faithfulness --lodo SETS...``: the leave-one-dataset-out table, and
``--save-default PATH`` to write the default chosen by it.

    rag-retrievers eval faithfulness --lodo all [--train-judge DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rag_retrievers.evals.faithfulness.calibration import VIEWS
from rag_retrievers.evals.faithfulness.lodo import (
    FAMILY,
    LabelledSet,
    lodo_report,
    prepare_sets,
)
from rag_retrievers.evals.faithfulness.pairsets import PAIR_SETS, load_pair_set
from rag_retrievers.evals.faithfulness.train import TrainConfig, train_config
from rag_retrievers.evals.output import show_report

from rag_retrievers.errors import InvalidInputError


def set_names(values: Sequence[str]) -> list[str]:
    """``all`` expands to every set of :data:`PAIR_SETS`; repeats are refused."""
    names = [n for v in values for n in (PAIR_SETS if v == "all" else [v])]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"--lodo names a set twice: {names}")
    return names


def cross_encoder_runner(
    folder: Path, config: TrainConfig, *, progress: bool | None, log: Any
) -> Any:
    """Trains (or reuses, when ``training.json`` matches) one cross-encoder per left-out set in
    ``folder/without-<set>`` and scores the left-out set with the ``nli`` judge."""
    from rag_retrievers.evals.faithfulness.nli import NLIJudge
    from rag_retrievers.evals.faithfulness.train import train_cross_encoder

    def run(train: Sequence[LabelledSet], test: LabelledSet) -> tuple[np.ndarray, float]:
        out = folder / f"without-{test.name.replace('/', '_')}"
        sources = sorted(s.name for s in train)
        record_path = out / "training.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() else None
        wanted = TrainConfig(**record["config"]) if record else None
        if record is None or wanted != config or record.get("sources") != sources:
            log(f"training a cross-encoder without {test.name} ({config.max_steps} steps)")
            pairs = [p for s in train for p in s.pairs]
            record = train_cross_encoder(pairs, out, config, progress=progress, sources=sources)
        else:
            log(f"reusing the cross-encoder in {out} (trained in {record['seconds']}s)")
        judge = NLIJudge(out)
        results = judge.judge_batch(
            [(p.context, p.response) for p in test.pairs], progress=progress
        )
        return np.array([r.score for r in results]), float(record["seconds"])

    return run


def main_lodo(args: argparse.Namespace) -> int:
    names = set_names(args.lodo)
    if len(names) < 2:
        raise InvalidInputError("--lodo needs at least two pair sets (or 'all')")
    named = []
    for name in names:
        label, pairs = load_pair_set(name, args.data)
        named.append((label, pairs[: args.limit]))
    progress = False if args.quiet else None

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    cache = None if args.no_cache else args.cache
    sets = prepare_sets(named, cache_dir=cache, progress=progress)
    runner = None
    if args.train_judge is not None:
        runner = cross_encoder_runner(
            args.train_judge, train_config(args.steps, args.train_param), progress=progress, log=log
        )
    report = lodo_report(sets, cross_encoder=runner, learned=not args.no_learned, log=log)
    if args.save_default is not None:
        from rag_retrievers.evals.faithfulness.lodo import fit_shipped

        combination = fit_shipped(sets, report["shipped"]["chosen"])
        combination.save(args.save_default)
        report["saved_default"] = str(args.save_default)
    show_report(report, as_json=args.json, table=print_lodo)
    return 0


def _cell(figures: dict[str, float], views: Sequence[str]) -> str:
    return " / ".join("n/a" if math.isnan(figures[v]) else f"{figures[v]:.3f}" for v in views)


def print_lodo(report: dict[str, Any]) -> None:
    sets = report["sets"]
    names = list(sets)
    print(
        f"leave-one-dataset-out AUROC, {VIEWS[0]} (/ {VIEWS[1]} where a set has 'not enough "
        "info' labels); every fitted judge fitted without the set it is scored on"
    )
    header = ["judge", *(f"{n} ({sets[n]['pairs']})" for n in names), "worst gain"]
    lines = [header]
    for row, cells in report["rows"].items():
        gain = report["worst_gain"][row]
        worst = "" if row == "baseline" else f"{gain:+.3f}"
        lines.append([row, *(_cell(cells[n], sets[n]["views"]) for n in names), worst])
    for key, label in (
        ("default", "default, chosen without the set"),
        ("shipped", "default as shipped"),
    ):
        per_set = report[key]
        lines.append([f"{label}: ECE", *(f"{per_set[n]['ECE']:.3f}" for n in names), ""])
        lines.append(
            [
                f"{label}: balanced accuracy (threshold)",
                *(
                    f"{per_set[n]['balanced_accuracy']:.3f} ({per_set[n]['threshold']:.3f})"
                    for n in names
                ),
                "",
            ]
        )
    if report.get("cross_encoder"):
        ce = report["cross_encoder"]
        lines.append(["cross-encoder: ECE", *(f"{ce[n]['ECE']:.3f}" for n in names), ""])
        lines.append(
            [
                "cross-encoder: training seconds",
                *(f"{ce[n]['training_seconds']:.0f}" for n in names),
                "",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    chosen = report["default"]
    print(
        "default chosen without each set: "
        + "; ".join(f"{n}: {chosen[n]['chosen']}" for n in names)
    )
    shipped = report["shipped"]
    print(
        f"default as shipped: {shipped['chosen']} ({', '.join(FAMILY[shipped['chosen']])}), the "
        "family member with the best worst-case gain over baseline on these sets"
    )
    if report.get("saved_default"):
        print(f"wrote the default fitted on all these sets to {report['saved_default']}")
    print(f"{report['seconds']}s")
