"""``rag-retrievers eval faithfulness``: a judge against human labels, two AUROC views,
balanced accuracy and a reliability table.

    rag-retrievers eval faithfulness --pairs PATH/pairs.jsonl [--judge offline] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag_retrievers.evals.faithfulness.base import (
    DEFAULT_JUDGE,
    FaithfulnessJudge,
    create_judge,
    judge_class,
    judge_names,
)
from rag_retrievers.evals.faithfulness.calibration import (
    VIEWS,
    LabelledPair,
    auroc,
    balanced_accuracy,
    best_threshold,
    expected_calibration_error,
    read_pairs,
    reliability_table,
    view_labels,
)
from rag_retrievers.evals.faithfulness.embeddings import DEFAULT_CACHE
from rag_retrievers.evals.faithfulness.pairsets import DEFAULT_DATA, PAIR_SETS, load_pair_set
from rag_retrievers.evals.faithfulness.train import TrainConfig, train_config
from rag_retrievers.evals.output import add_json_print_arguments, show_report

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.spec import parse_params


def add_faithfulness_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs",
        nargs="+",
        default=[],
        metavar="PAIRS",
        help="JSONL with context, response, label (1 faithful, 0 not, null not enough info), or "
        f"the name of a pair set in --data ({', '.join(PAIR_SETS)}); several only with "
        "--train-judge",
    )
    parser.add_argument(
        "--lodo",
        nargs="+",
        metavar="PAIRS",
        help="leave-one-dataset-out table over these pair sets (names, files, or 'all'): each "
        "set judged by baseline, the default fitted without it, the unfitted combinations "
        "(and, with --train-judge, a cross-encoder trained without it)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the shared data folder that pair-set names are read from (default %(default)s)",
    )
    parser.add_argument(
        "--save-default",
        type=Path,
        metavar="PATH",
        help="with --lodo: write the default chosen and fitted on all the sets here (the shipped "
        "one is evals/faithfulness/weights/offline-default.json)",
    )
    parser.add_argument(
        "--no-learned",
        action="store_true",
        help="with --lodo: skip the learned combinations' rows (they take minutes to fit)",
    )
    parser.add_argument(
        "--train-judge",
        type=Path,
        metavar="DIR",
        help="fine-tune MiniLM as a cross-encoder (context, answer) -> supported on --pairs and "
        "save it in DIR, for --judge nli --param model=DIR; with --lodo one per left-out set "
        "in DIR/without-<set> (kept and reused)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=TrainConfig.max_steps,
        help="with --train-judge: training steps (default %(default)s)",
    )
    parser.add_argument(
        "--train-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --train-judge: a training setting (batch_size, learning_rate, max_length, "
        "warmup, seed, model)",
    )
    parser.add_argument(
        "--judge",
        default=DEFAULT_JUDGE,
        help=f"judge name: {', '.join(judge_names())} (default %(default)s)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="judge option, VALUE as JSON or a plain string, e.g. --param model=PATH",
    )
    parser.add_argument(
        "--subset",
        metavar="NAME",
        help="only the pairs whose dataset field is NAME (e.g. scifact_dev)",
    )
    parser.add_argument("--limit", type=int, help="only the first N pairs (after --subset)")
    parser.add_argument("--bins", type=int, default=10, help="reliability bins (default 10)")
    parser.add_argument(
        "--cv",
        type=int,
        metavar="K",
        help="for judges with a learned combination (offline): K-fold cross-validation split by "
        "claim on these pairs; every pair is scored by weights fitted on the other folds",
    )
    parser.add_argument(
        "--pool",
        action="append",
        default=[],
        type=Path,
        metavar="PAIRS.jsonl",
        help="with --cv or --fit: labelled pairs from another file that join the training data "
        "(folds split by claim over all files); the report covers --pairs only",
    )
    parser.add_argument(
        "--fit",
        type=Path,
        metavar="WEIGHTS.json",
        help="for offline: fit the combination on these pairs and write it here (then no report)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="keep sentence vectors and LLM verdicts here, so re-runs cost nothing "
        "(default %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="compute everything afresh")
    parser.add_argument("--output", type=Path, help="also write per-pair results to this JSONL")
    add_json_print_arguments(parser, what="report")
    parser.set_defaults(run=main_faithfulness)


def build_judge(args: argparse.Namespace) -> FaithfulnessJudge:
    judge_class(args.judge)  # an unknown name fails before any work, listing the valid ones
    options = parse_params(args.param)
    options.setdefault("cache_dir", None if args.no_cache else args.cache)
    return create_judge(args.judge, **options)


def evaluate_scores(
    pairs: list[LabelledPair], scores: list[float], *, threshold: float, bins: int = 10
) -> dict[str, Any]:
    """The report's figures for scores already computed, one per pair."""
    labels = [p.label for p in pairs]
    report: dict[str, Any] = {
        "pairs": len(pairs),
        "supported": sum(1 for x in labels if x == 1),
        "contradicted": sum(1 for x in labels if x == 0),
        "not_enough_info": sum(1 for x in labels if x is None),
        "default_threshold": threshold,
        "views": {},
    }
    import numpy as np

    all_scores = np.asarray(scores, dtype=np.float64)
    for view in VIEWS:
        mask, y = view_labels(labels, view)
        s = all_scores[mask]
        if len(set(y.tolist())) < 2:
            report["views"][view] = None
            continue
        best_t, best_ba = best_threshold(y, s)
        table = reliability_table(y, s, bins=bins)
        report["views"][view] = {
            "pairs": int(mask.sum()),
            "AUROC": auroc(y, s),
            "balanced_accuracy_best": best_ba,
            "best_threshold": best_t,
            "balanced_accuracy_default": balanced_accuracy(y, s, threshold),
            "ECE": expected_calibration_error(table),
            "reliability": [vars(b) for b in table],
        }
    return report


def read_labelled(name: str, args: argparse.Namespace) -> list[LabelledPair]:
    """The pairs of a file (as written) or of a pair set named in :data:`PAIR_SETS`."""
    limit = None if args.subset else args.limit
    if name in PAIR_SETS and not Path(name).is_file():
        return load_pair_set(name, args.data)[1][:limit]
    return read_pairs(name, limit=limit)


def main_train_judge(args: argparse.Namespace) -> int:
    from rag_retrievers.evals.faithfulness.train import train_cross_encoder

    config = train_config(args.steps, args.train_param)
    pairs = [p for name in args.pairs for p in read_labelled(name, args)]
    record = train_cross_encoder(
        pairs, args.train_judge, config, progress=False if args.quiet else None, sources=args.pairs
    )
    show_report(
        record,
        as_json=args.json,
        table=lambda r: print(
            f"cross-encoder trained on {len(pairs)} pairs of {', '.join(args.pairs)} "
            f"({config.max_steps} steps of {config.batch_size}) in {r['seconds']}s, final loss "
            f"{r['final_loss']}: saved to {args.train_judge}; judge with --judge nli --param "
            f"model={args.train_judge}"
        ),
    )
    return 0


def main_faithfulness(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise InvalidInputError(f"--limit must be >= 1, got {args.limit}")
    if args.cv is not None and args.cv < 2:
        raise InvalidInputError(f"--cv must be >= 2, got {args.cv}")
    if args.bins < 1:
        raise InvalidInputError(f"--bins must be >= 1, got {args.bins}")
    if args.lodo:
        from rag_retrievers.evals.faithfulness.lodo_command import main_lodo

        return main_lodo(args)
    if args.train_judge is not None:
        if not args.pairs:
            raise InvalidInputError("--train-judge needs --pairs (or --lodo)")
        return main_train_judge(args)
    if len(args.pairs) != 1:
        raise InvalidInputError(
            f"--pairs takes one file or set here (several only with --train-judge), got "
            f"{len(args.pairs)}; --lodo compares several"
        )
    args.pairs = args.pairs[0]
    judge_class(args.judge)  # an unknown name fails before any work, listing the valid ones
    pairs = read_labelled(args.pairs, args)
    if args.subset is not None:
        names = sorted({p.dataset for p in pairs})
        pairs = [p for p in pairs if p.dataset == args.subset][: args.limit]
        if not pairs:
            raise InvalidInputError(
                f"--subset {args.subset!r} matches no pair; datasets in the file: "
                f"{', '.join(names)}"
            )
    if args.pool and args.fit is None and args.cv is None:
        raise InvalidInputError("--pool needs --cv or --fit")
    pooled = [replace(p, group=f"{path}:{p.group}") for path in args.pool for p in read_pairs(path)]
    judge = build_judge(args)  # after the pairs are read: a bad file fails before a model loads
    progress = False if args.quiet else None
    began = time.perf_counter()
    if args.fit is not None or args.cv is not None:
        from rag_retrievers.evals.faithfulness.learned import Learnable

        if not isinstance(judge, Learnable):
            raise InvalidInputError(
                f"--fit and --cv need a judge with a learned combination; {args.judge!r} has none"
            )
        if args.fit is not None:
            weights = judge.fit_pairs(pairs + pooled, progress=progress)
            source = " + ".join(
                [str(args.pairs) + (f" [{args.subset}]" if args.subset else "")]
                + [str(path) for path in args.pool]
            )
            weights.save(args.fit, source=source, pairs=len(pairs) + len(pooled))
            print(
                f"weights fitted on {len(pairs) + len(pooled)} pairs of {source} written to "
                f"{args.fit}"
            )
            return 0
        results = judge.cross_validate(
            [replace(p, group=f"{args.pairs}:{p.group}") for p in pairs] + pooled
            if pooled
            else pairs,
            folds=args.cv,
            progress=progress,
        )[: len(pairs)]
    else:
        results = judge.judge_batch([(p.context, p.response) for p in pairs], progress=progress)
    seconds = time.perf_counter() - began
    scores = [r.score for r in results]
    report = evaluate_scores(pairs, scores, threshold=judge.default_threshold, bins=args.bins)
    report |= {
        "file": str(args.pairs) + (f" [{args.subset}]" if args.subset else ""),
        "judge": judge.describe(),
        "cross_validation_folds": args.cv,
        "pooled_with": [str(path) for path in args.pool],
        "abstained": sum(1 for r in results if r.abstained),
        "seconds": round(seconds, 1),
    }
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("w", encoding="utf-8") as f:
            for pair, result in zip(pairs, results, strict=True):
                row = {"id": pair.id, "label": pair.label} | result.to_dict()
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    show_report(report, as_json=args.json, table=print_report)
    return 0


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def print_report(report: dict[str, Any]) -> None:
    print(
        f"pairs      {report['file']}: {report['pairs']} ({report['supported']} supported, "
        f"{report['contradicted']} contradicted, {report['not_enough_info']} not enough info)"
    )
    print(f"judge      {report['judge']}")
    if report.get("pooled_with"):
        print(f"pooled     training folds also hold {', '.join(report['pooled_with'])}")
    for view in VIEWS:
        figures = report["views"][view]
        print(f"AUROC ({view}) {_fmt(figures['AUROC']) if figures else 'n/a (one class only)'}")
    for view in VIEWS:
        figures = report["views"][view]
        if not figures:
            continue
        print(
            f"balanced accuracy ({view}) at the best threshold "
            f"{_fmt(figures['balanced_accuracy_best'])} (threshold "
            f"{figures['best_threshold']:.3f}, chosen on these pairs: an upper bound)"
        )
        print(
            f"balanced accuracy ({view}) at the default threshold "
            f"{_fmt(figures['balanced_accuracy_default'])} (threshold "
            f"{report['default_threshold']:.3f})"
        )
    print(f"abstained  {report['abstained']} of {report['pairs']}; {report['seconds']}s")
    for view in VIEWS:
        figures = report["views"][view]
        if not figures:
            continue
        print(f"reliability ({view}), ECE {_fmt(figures['ECE'])}")
        print(f"  {'scores':<11} {'pairs':>6} {'mean score':>11} {'supported':>10}")
        for b in figures["reliability"]:
            print(
                f"  {b['low']:.1f}-{b['high']:.1f}     {b['count']:>6} "
                f"{b['mean_score']:>11.3f} {b['fraction_positive']:>10.3f}"
            )
