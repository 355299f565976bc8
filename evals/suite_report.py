"""The report folder of a suite run: ``results.json`` (every per-query figure), ``summary.md``
(a Markdown table per system) and ``report.html`` (the tables and SVG plots, self-contained).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from rag_retrievers.evals.suite_config import JUDGE_PREFIX, SuiteConfig
from rag_retrievers.evals.suite_runner import JUDGE_PAIRS, SuiteResults
from rag_retrievers.evals.svg_plots import histogram_svg, reliability_svg, scatter_svg

#: preferred binary outcomes for the judge reliability diagram, first present wins
RELIABILITY_LABELS = ("decision_accuracy", "containment", "exact_match", "token_f1")


def summarise(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean over the values that apply (not ``None``) and how many applied.

    >>> summarise([1.0, None, 0.0, 0.5])
    {'mean': 0.5, 'n': 3}
    """
    kept = [v for v in values if v is not None]
    return {"mean": sum(kept) / len(kept) if kept else None, "n": len(kept)}


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve (the Mann–Whitney U statistic, ties counting one half, as the
    faithfulness calibration computes it); ``None`` unless both labels occur.

    >>> auroc([0.9, 0.8, 0.3, 0.8], [1, 1, 0, 0])
    0.875
    """
    from rag_retrievers.evals.faithfulness.calibration import auroc_mann_whitney

    if len(set(labels)) < 2:
        return None
    return auroc_mann_whitney(labels, scores)


def system_summaries(results: SuiteResults) -> dict[str, dict[str, dict[str, Any]]]:
    """system -> metric -> {mean, n}, plus the abstention rate and seconds per item."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    metrics = results.config.all_metrics()
    for system in results.systems:
        records = list(results.records[system].values())
        table = {m: summarise([r["metrics"].get(m) for r in records]) for m in metrics}
        if results.config.is_rag:
            table["abstained"] = summarise([float(r["abstained"]) for r in records])
        table["seconds/item"] = summarise([r.get("seconds") for r in records])
        out[system] = table
    return out


@dataclass(frozen=True)
class ReliabilityView:
    """One reliability diagram: its title, what the labels are, judge -> [(score, label)]."""

    title: str
    labels: str
    series: dict[str, list[tuple[float, int]]]


def reliability_views(results: SuiteResults) -> list[ReliabilityView]:
    """What the reliability diagrams show:
    the judges' scores on the generated answers, labelled with the suite's outcome (the answer
    counts as right when ``reliability_label`` >= 0.5: a proxy, not a human label); and, when
    the dataset has wrong answers, on its gold answer (1) and wrong answer (0) given the gold
    passages: known labels."""
    config = results.config
    views: list[ReliabilityView] = []
    target = reliability_label(config)
    if config.judges and target is not None:
        series: dict[str, list[tuple[float, int]]] = {j: [] for j in config.judges}
        for system in results.systems:
            for record in results.records[system].values():
                outcome = record["metrics"].get(target)
                for judge in config.judges:
                    score = record["metrics"].get(JUDGE_PREFIX + judge)
                    if score is not None and outcome is not None:
                        series[judge].append((score, int(outcome >= 0.5)))
        note = f"generated answers, labelled 1 when {target} >= 0.5 (a proxy, not a human label)"
        views.append(ReliabilityView("on the generated answers", note, series))
    if results.judge_pairs:
        pairs: dict[str, list[tuple[float, int]]] = {j: [] for j in config.judges}
        for record in results.judge_pairs.values():
            for judge, verdict in record["judges"].items():
                for key, label in (("gold", 1), ("wrong", 0)):
                    if verdict.get(key) is not None and judge in pairs:
                        pairs[judge].append((verdict[key], label))
        note = "the dataset's gold answer = 1 and wrong answer = 0, on the gold passages"
        views.append(ReliabilityView("on the dataset's gold and wrong answers", note, pairs))
    return views


def reliability_label(config: SuiteConfig) -> str | None:
    declared = config.report.get("reliability_label")
    if declared:
        return str(declared)
    return next((m for m in RELIABILITY_LABELS if m in config.metrics), None)


def results_json(results: SuiteResults) -> dict[str, Any]:
    config = results.config
    return {
        "suite": config.name,
        "file": str(config.file),
        "dataset": str(config.dataset.path),
        "split": config.dataset.split,
        "questions": len(next(iter(results.records.values()), {})),
        "generator": config.generator,
        "judges": list(config.judges),
        "metrics": list(config.all_metrics()),
        "summary": system_summaries(results),
        "systems": {
            s: {
                "retriever": results.descriptions.get(s),
                "items": list(results.records[s].values()),
            }
            for s in results.systems
        },
        JUDGE_PAIRS: list(results.judge_pairs.values()),
        "judge_reliability": [
            {
                "view": view.title,
                "labels": view.labels,
                "auroc": {
                    j: auroc([s for s, _ in p], [y for _, y in p]) for j, p in view.series.items()
                },
                "n": {j: len(p) for j, p in view.series.items()},
            }
            for view in reliability_views(results)
        ],
    }


def _fmt(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4f}"


def summary_markdown(results: SuiteResults) -> str:
    config = results.config
    summaries = system_summaries(results)
    lines = [f"# Suite {config.name}", ""]
    if config.description:
        lines += [config.description, ""]
    n = len(next(iter(results.records.values()), {}))
    lines += [
        f"Dataset `{config.dataset.path.name}` ({config.dataset.split}), {n} questions; "
        f"generator `{config.generator or 'none (retrieval only)'}`; "
        f"judges {', '.join(config.judges) or 'none'}.",
        "",
        "Mean over the items a metric applies to (n of them); `–`: applies to none.",
        "",
    ]
    for system in results.systems:
        lines += [f"## {system}", ""]
        if results.descriptions.get(system):
            lines += [f"`{results.descriptions[system]}`", ""]
        lines += ["| metric | mean | n |", "|---|--:|--:|"]
        for metric, figure in summaries[system].items():
            lines.append(f"| {metric} | {_fmt(figure['mean'])} | {figure['n']} |")
        lines.append("")
    for view in reliability_views(results):
        lines += [f"## Judge reliability {view.title}", "", f"Labels: {view.labels}.", ""]
        lines += ["| judge | AUROC | n |", "|---|--:|--:|"]
        for judge, points in view.series.items():
            value = auroc([s for s, _ in points], [y for _, y in points])
            lines.append(f"| {judge} | {_fmt(value)} | {len(points)} |")
        lines.append("")
    return "\n".join(lines)


def _html_table(results: SuiteResults) -> str:
    """A row per metric, a column per system (suites have more metrics than systems)."""
    summaries = system_summaries(results)
    metrics = list(next(iter(summaries.values())).keys()) if summaries else []
    head = "".join(f"<th>{escape(system)}</th>" for system in summaries)
    rows = []
    for metric in metrics:
        cells = "".join(
            f"<td title='n={table[metric]['n']}'>{_fmt(table[metric]['mean'])}</td>"
            for table in summaries.values()
        )
        rows.append(f"<tr><th>{escape(metric)}</th>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def scatter_pair(results: SuiteResults) -> tuple[str, str] | None:
    declared = results.config.report.get("scatter")
    if declared:
        a, b = declared
        from rag_retrievers.evals.grid_entries import entry_name, parse_entry

        model = results.config.model
        return entry_name(parse_entry(a, model=model)), entry_name(parse_entry(b, model=model))
    return (results.systems[0], results.systems[1]) if len(results.systems) >= 2 else None


def report_html(results: SuiteResults) -> str:
    config = results.config
    metrics = config.all_metrics()
    sections = [f"<h2>Summary</h2>{_html_table(results)}", "<h2>Metric distributions</h2>"]
    for metric in metrics:
        plots = []
        for n, system in enumerate(results.systems):
            values = [
                v
                for r in results.records[system].values()
                if (v := r["metrics"].get(metric)) is not None
            ]
            plots.append(histogram_svg(values, title=f"{system}: {metric}", colour=_colour(n)))
        sections.append(f"<div class='row'>{''.join(plots)}</div>")
    pair = scatter_pair(results)
    sections.append("<h2>Per-query scatter</h2>")
    if pair is None:
        sections.append("<p>One system only: nothing to compare.</p>")
    else:
        metric = str(config.report.get("scatter_metric") or metrics[0])
        a, b = (results.records[s] for s in pair)
        both = [(q, a[q]["metrics"].get(metric), b[q]["metrics"].get(metric)) for q in a if q in b]
        kept = [(q, x, y) for q, x, y in both if x is not None and y is not None]
        sections.append(
            scatter_svg(
                [(x, y) for _, x, y in kept],
                title=f"{metric} per query",
                x_label=pair[0],
                y_label=pair[1],
                names=[q for q, _, _ in kept],
            )
        )
    sections.append("<h2>Judge reliability</h2>")
    if not config.judges:
        sections.append("<p>No judges in this suite.</p>")
    for view in reliability_views(results):
        sections.append(f"<p>Labels: {escape(view.labels)}.</p>")
        sections.append(reliability_svg(view.series, title=f"judges {view.title}"))
    title = escape(f"Suite {config.name}")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>"
        "body{font-family:sans-serif;margin:1.5em;max-width:1150px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}.row{display:flex;flex-wrap:wrap;gap:8px}"
        f"</style></head><body><h1>{title}</h1>"
        f"<p>Dataset {escape(str(config.dataset.path))} ({escape(config.dataset.split)}); "
        f"generator {escape(config.generator or 'none (retrieval only)')}.</p>"
        + "".join(sections)
        + "</body></html>"
    )


def _colour(n: int) -> str:
    from rag_retrievers.evals.svg_plots import COLOURS

    return COLOURS[n % len(COLOURS)]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(results: SuiteResults, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write results.json, summary.md and report.html into ``out``; their paths by kind."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": folder / "results.json",
        "markdown": folder / "summary.md",
        "html": folder / "report.html",
    }
    _atomic_write(paths["json"], json.dumps(results_json(results), indent=2, ensure_ascii=False))
    _atomic_write(paths["markdown"], summary_markdown(results))
    _atomic_write(paths["html"], report_html(results))
    return paths
