"""Tune a hybrid's fusion on one split, report it on another.

``rag-retrievers eval tune-fusion --dataset DIR --members bm25,dense`` runs each member once per
split (indexes come from the evaluation cache), then fuses those runs offline for every setting of
the RRF constant ``k`` and the member weights (``--fusion combsum --normalization z-score``: the
weights of a score fusion): fusion is a pure function of the runs, so hundreds of settings cost
seconds, not re-retrieval. The best setting is chosen on ``--tune-split`` only and then measured
on ``--report-split`` beside the shipped defaults (k=60, equal weights), with a paired test.
Tuning on the queries you report would overstate the gain.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_retrievers.evals.cache import add_cache_arguments
from rag_retrievers.evals.grid_entries import parse_entry
from rag_retrievers.evals.significance import paired_randomization_test, paired_t_test

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.scoring.fusion import fuse_runs
from rag_retrievers.scoring.fusion import normalization as registered_normalization

Run = dict[str, dict[str, float]]

DEFAULT_K = 60.0


@dataclass(frozen=True)
class FusionSetting:
    """One fusion setting: RRF's constant ``k`` (``None`` for a score fusion, which has none)
    and a weight per member (in member order)."""

    k: float | None
    weights: tuple[float, ...]

    def describe(self, members: Sequence[str]) -> str:
        weights = ", ".join(f"{m} {w:g}" for m, w in zip(members, self.weights, strict=True))
        return f"weights {weights}" if self.k is None else f"k={self.k:g}; weights {weights}"


@dataclass(frozen=True)
class Trial:
    setting: FusionSetting
    mean: float


def fusion_settings(
    k_values: Sequence[float] | None, weight_values: Sequence[float], n_members: int
) -> list[FusionSetting]:
    """Every ``k`` with every weight vector (``k_values=None``: weights only, for a score
    fusion); the first member's weight stays 1, since scaling all weights by one factor scales
    every fused score and leaves the ranking unchanged."""
    if n_members < 2:
        raise InvalidInputError(f"fusion needs two or more members, got {n_members}")
    if k_values is not None and (not k_values or any(k < 0 for k in k_values)):
        raise InvalidInputError(f"k values must be >= 0, got {list(k_values)}")
    if not weight_values or any(w <= 0 for w in weight_values):
        raise InvalidInputError(f"weights must be > 0, got {list(weight_values)}")
    rest = itertools.product(sorted(set(weight_values)), repeat=n_members - 1)
    vectors = [(1.0, *combo) for combo in rest]
    ks = [None] if k_values is None else [float(k) for k in sorted(set(k_values))]
    return [FusionSetting(k, v) for k in ks for v in vectors]


def fused_metric(
    runs: Mapping[str, Run],
    setting: FusionSetting,
    qrels: Mapping[str, Mapping[str, int]],
    metric: str,
    depth: int,
    normalization: str = "min-max",
) -> dict[str, float]:
    """Query id -> ``metric`` of the runs fused with ``setting`` (runs in member order): RRF
    when the setting has a ``k``, else CombSUM of ``normalization``-normalised scores."""
    from rag_retrievers.evals.retrieval import per_query_metrics

    weights = dict(zip(runs, setting.weights, strict=True))
    if setting.k is None:
        fused = fuse_runs(
            runs, "combsum", weights=weights, depth=depth, normalization=normalization
        )
    else:
        fused = fuse_runs(runs, "rrf", weights=weights, depth=depth, k=setting.k)
    return per_query_metrics(fused, qrels, [metric])[metric]


def tune(
    runs: Mapping[str, Run],
    qrels: Mapping[str, Mapping[str, int]],
    settings: Sequence[FusionSetting],
    *,
    metric: str,
    depth: int,
    prefer: FusionSetting | None = None,
    normalization: str = "min-max",
) -> list[Trial]:
    """Every setting's mean ``metric`` over the judged queries, best first; among equals
    ``prefer`` (the defaults: change nothing unless it helps) comes first, then the order of
    ``settings``."""
    trials = []
    for setting in settings:
        values = fused_metric(runs, setting, qrels, metric, depth, normalization)
        trials.append(Trial(setting, sum(values.values()) / len(values) if values else 0.0))
    return sorted(trials, key=lambda t: (-t.mean, t.setting != prefer))


# -- the command -------------------------------------------------------------------------------


def _numbers(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"{option} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise InvalidInputError(f"{option} needs at least one number")
    return values


def add_tuning_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``eval tune-fusion`` to ``parser``."""
    parser.add_argument("--dataset", required=True, type=Path, help="a BEIR-layout folder")
    parser.add_argument(
        "--members",
        required=True,
        help="comma-separated retrievers to fuse, e.g. bm25,dense or bm25,bm25/rm3,splade",
    )
    parser.add_argument(
        "--model", help="one name, or MEMBER=NAME,... (e.g. dense=minilm,splade=splade-tiny)"
    )
    parser.add_argument(
        "--tune-split", default="train", help="qrels the setting is chosen on (default train)"
    )
    parser.add_argument(
        "--report-split", default="test", help="qrels the chosen setting is reported on"
    )
    parser.add_argument(
        "--fusion",
        choices=["rrf", "combsum"],
        default="rrf",
        help="rrf (tunes k and weights) or combsum of normalised scores (tunes the weights)",
    )
    parser.add_argument(
        "--normalization",
        default="min-max",
        help="combsum's score normalisation: min-max, z-score or none (default %(default)s)",
    )
    parser.add_argument(
        "--k-values", default="5,10,20,40,60,100", help="RRF constants tried (default %(default)s)"
    )
    parser.add_argument(
        "--weights",
        default="0.5,0.75,1,1.5,2",
        help="weights tried for each member after the first, whose weight is 1 "
        "(default %(default)s)",
    )
    parser.add_argument("--metric", default="nDCG@10", help="what is tuned (default nDCG@10)")
    parser.add_argument("--depth", type=int, default=100, help="hits per member (default 100)")
    parser.add_argument("--top", type=int, default=5, help="settings listed (default 5)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_cache_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress")


def main_tuning(args: argparse.Namespace) -> int:
    """Run the tuning the parsed options describe and print the report; exit code."""
    from rag_retrievers.evals.beir import load_beir
    from rag_retrievers.evals.cache import indexed
    from rag_retrievers.evals.retrieval import ir_measure, run_queries

    members = [m.strip() for m in args.members.split(",") if m.strip()]
    if len(members) < 2 or len(set(members)) != len(members):
        raise InvalidInputError(f"--members needs two or more different names, got {members}")
    rrf = args.fusion == "rrf"
    if not rrf:
        registered_normalization(args.normalization)  # an unknown name lists the valid ones
    settings = fusion_settings(
        _numbers(args.k_values, "--k-values") if rrf else None,
        _numbers(args.weights, "--weights"),
        len(members),
    )
    ir_measure(args.metric)
    if args.depth < 1 or args.top < 1:
        raise InvalidInputError("--depth and --top must be >= 1")
    if args.tune_split == args.report_split:
        raise InvalidInputError(
            "--tune-split and --report-split must differ: tune on one, report on the other"
        )
    specs = [parse_entry(m, model=args.model) for m in members]  # e.g. bm25, dense, bm25/rm3
    tune_set = load_beir(args.dataset, args.tune_split)
    report_set = load_beir(args.dataset, args.report_split)
    log = (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    progress = False if args.quiet else None
    runs: dict[str, dict[str, Run]] = {"tune": {}, "report": {}}
    for member, spec in zip(members, specs, strict=True):
        log(f"{member}: index, then run the {args.tune_split} and {args.report_split} queries")
        retriever, _ = indexed(spec, tune_set, args)
        for split, queries in (("tune", tune_set.queries), ("report", report_set.queries)):
            run = run_queries(retriever, queries, k=args.depth, progress=progress)
            runs[split][member] = run.scores()
    log(f"fusing {len(settings)} settings on {args.tune_split}")
    default = FusionSetting(DEFAULT_K if rrf else None, (1.0,) * len(members))
    trials = tune(
        runs["tune"],
        tune_set.qrels,
        settings,
        metric=args.metric,
        depth=args.depth,
        prefer=default,
        normalization=args.normalization,
    )
    by_setting = {t.setting: t.mean for t in trials}

    def reported(run: Mapping[str, Run], setting: FusionSetting) -> dict[str, float]:
        return fused_metric(
            run, setting, report_set.qrels, args.metric, args.depth, args.normalization
        )

    tuned = trials[0]
    default_report = reported(runs["report"], default)
    tuned_report = reported(runs["report"], tuned.setting)
    alone = FusionSetting(DEFAULT_K, (1.0,))
    result = {
        "dataset": tune_set.name,
        "members": members,
        "fusion": "RRF" if rrf else f"CombSUM of {args.normalization} scores",
        "options": []
        if rrf
        else ["--fusion combsum", f"--param normalization={args.normalization}"],
        "model": args.model,
        "metric": args.metric,
        "tune_split": args.tune_split,
        "tune_queries": len(tune_set.queries),
        "report_split": args.report_split,
        "report_queries": len(report_set.queries),
        "settings_tried": len(trials),
        "top": [_setting_row(t.setting, members, t.mean) for t in trials[: args.top]],
        "default": {
            **_setting_row(default, members, by_setting.get(default)),
            "report": _mean(default_report),
        },
        "tuned": {
            **_setting_row(tuned.setting, members, tuned.mean),
            "report": _mean(tuned_report),
        },
        "members_report": {m: _mean(reported({m: runs["report"][m]}, alone)) for m in members},
        "tuned_vs_default": {
            "t": paired_t_test(tuned_report, default_report).p_value,
            "randomization": paired_randomization_test(
                tuned_report, default_report, trials=10_000, seed=0
            ).p_value,
        },
    }
    print(json.dumps(result, indent=2) if args.json else format_tuning(result))
    return 0


def _setting_row(
    setting: FusionSetting, members: Sequence[str], tune: float | None
) -> dict[str, Any]:
    return {
        "setting": setting.describe(members),
        "k": setting.k,
        "weights": list(setting.weights),
        "tune": tune,
    }


def _mean(values: Mapping[str, float]) -> float:
    return sum(values.values()) / len(values) if values else 0.0


def format_tuning(r: dict[str, Any]) -> str:
    """The printed report: the best settings on the tuning split, then default vs tuned."""
    metric = r["metric"]
    lines = [
        f"dataset  {r['dataset']}; {r['fusion']} of {' + '.join(r['members'])}; {metric}; "
        f"{r['settings_tried']} settings tuned on {r['tune_split']} ({r['tune_queries']} queries), "
        f"reported on {r['report_split']} ({r['report_queries']} queries)",
        "",
        f"best settings on {r['tune_split']}:",
    ]
    lines += [f"  {t['tune']:.4f}  {t['setting']}" for t in r["top"]]
    p = r["tuned_vs_default"]
    lines += [
        "",
        f"| fusion setting | {metric} {r['tune_split']} | {metric} {r['report_split']} |",
        "|---|---:|---:|",
    ]
    for name in ("default", "tuned"):
        row = r[name]
        tune_cell = "" if row["tune"] is None else f"{row['tune']:.4f}"
        lines.append(f"| {name}: {row['setting']} | {tune_cell} | {row['report']:.4f} |")
    for member, value in r["members_report"].items():
        lines.append(f"| {member} alone |  | {value:.4f} |")
    lines += [
        "",
        f"tuned vs default on {r['report_split']}: p = {p['t']:.4f} (paired t), "
        f"{p['randomization']:.4f} (paired randomisation, 10000 trials, seed 0)",
        "use it: "
        + " ".join(
            [
                *r["options"],
                *([] if r["tuned"]["k"] is None else [f"--param k_rrf={r['tuned']['k']:g}"]),
                f"--param weights={json.dumps(r['tuned']['weights'], separators=(',', ':'))}",
            ]
        ),
    ]
    return "\n".join(lines)
