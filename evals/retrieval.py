"""Run a retriever over a query set, score the run with ir-measures, write TREC run files.

Metrics are named as in the literature (``nDCG@10``, ``Recall@100``, ``MRR@10``, ``MAP``) and
computed by ir-measures (pytrec_eval, trec_eval semantics); nothing is counted by hand here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag_retrievers.base import Retriever
from rag_retrievers.errors import InvalidInputError, UnknownNameError
from rag_retrievers.progress import progress_bar
from rag_retrievers.records import Hit

if TYPE_CHECKING:
    from ir_measures import Measure

DEFAULT_METRICS = ("nDCG@10", "Recall@100", "MRR@10", "MAP")

# printed name -> ir-measures name; "@k" patterns take any cut-off
_METRICS = {
    r"nDCG@(\d+)": "nDCG@{}",
    r"Recall@(\d+)": "R@{}",
    r"P@(\d+)": "P@{}",
    r"MRR@(\d+)": "RR@{}",
    r"MRR": "RR",
    r"MAP": "AP",
    r"MAP@(\d+)": "AP@{}",
    r"nDCG": "nDCG",
}


def ir_measure(name: str) -> Measure:
    """The ir-measures measure for a printed metric name such as ``nDCG@10``."""
    import ir_measures

    for pattern, template in _METRICS.items():
        match = re.fullmatch(pattern, name)
        if match:
            return ir_measures.parse_measure(template.format(*match.groups()))
    raise UnknownNameError("metric", name, [p.replace(r"(\d+)", "k") for p in _METRICS])


@dataclass
class RetrievalRun:
    """Ranked hits per query id, and how long each query took (seconds)."""

    hits: dict[str, list[Hit]]
    latencies: dict[str, float]

    def scores(self) -> dict[str, dict[str, float]]:
        return {qid: {h.id: h.score for h in hits} for qid, hits in self.hits.items()}


def run_queries(
    retriever: Retriever,
    queries: Mapping[str, str],
    *,
    k: int = 100,
    batch_size: int = 32,
    progress: bool | None = None,
) -> RetrievalRun:
    """Search every query (in batches) and record per-query latency (batch time / batch size)."""
    ids = list(queries)
    bar = progress_bar(len(ids), "searching", "query", progress)
    hits: dict[str, list[Hit]] = {}
    latencies: dict[str, float] = {}
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        began = time.perf_counter()
        results = retriever.search_batch([queries[q] for q in batch], k=k)
        per_query = (time.perf_counter() - began) / len(batch)
        for qid, result in zip(batch, results, strict=True):
            hits[qid], latencies[qid] = result, per_query
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return RetrievalRun(hits, latencies)


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the judged queries (a query with no hits scores 0)."""
    return {
        name: float(np.mean(list(v.values()))) if v else 0.0
        for name, v in per_query_metrics(run, qrels, metrics).items()
    }


def per_query_metrics(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, dict[str, float]]:
    """metric name -> query id -> value, for every judged query (0 where the run has none)."""
    measures = {name: ir_measure(name) for name in metrics}
    by_measure = {m: name for name, m in measures.items()}
    values: dict[str, dict[str, float]] = {name: dict.fromkeys(qrels, 0.0) for name in metrics}
    qrels = {q: dict(d) for q, d in qrels.items()}
    run = {q: dict(d) for q, d in run.items() if q in qrels and d}
    import ir_measures

    for metric in ir_measures.iter_calc(list(measures.values()), qrels, run):
        values[by_measure[metric.measure]][metric.query_id] = float(metric.value)
    return values


def write_trec_run(
    run: Mapping[str, Sequence[Hit]], path: str | os.PathLike[str], tag: str = "rag-retrievers"
) -> Path:
    """Write ``qid Q0 docid rank score tag`` lines, the format trec_eval and ir-measures read."""
    for value, what in [(tag, "tag"), *((q, "query id") for q in run)]:
        if not value or any(c.isspace() for c in value):
            raise InvalidInputError(
                f"a TREC run {what} must be non-empty without spaces: {value!r}"
            )
    bad = next(
        (h.id for hits in run.values() for h in hits if any(c.isspace() for c in h.id)), None
    )
    if bad is not None:
        raise InvalidInputError(f"a TREC run document id must not contain spaces: {bad!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for qid, hits in run.items():
            for hit in hits:
                # full precision: rounded scores would tie, and trec_eval re-sorts ties by id
                f.write(f"{qid} Q0 {hit.id} {hit.rank} {hit.score!r} {tag}\n")
    return path


def read_trec_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5:
                run.setdefault(parts[0], {})[parts[2]] = float(parts[4])
    return run
