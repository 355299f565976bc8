"""Run an evaluation suite item by item, keeping every finished item on disk so an interrupted run
resumes where it stopped.

Each finished (system, query) pair is one JSON line appended to ``items.jsonl`` in the report
folder and flushed to disk before the next item starts. A line carries a fingerprint of
everything that decides its figures (retriever spec, generator, RAG options, judges, metrics,
dataset); a rerun with the same suite reuses the lines whose fingerprint matches and computes only
the rest, so changing a judge or a metric recomputes that system's items.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_retrievers.evals.beir import BeirDataset
from rag_retrievers.evals.suite_config import SuiteConfig
from rag_retrievers.evals.suite_items import (
    Components,
    SuiteItem,
    judge_pair,
    load_items,
    pipeline,
    rag_item,
    retrieval_item,
)

from rag_retrievers.progress import progress_bar

if TYPE_CHECKING:
    from rag_retrievers.generators import Generator
    from rag_retrievers.spec import RetrieverSpec

ITEMS_FILE = "items.jsonl"
#: the pseudo-system under which judge verdicts on gold and wrong answers are kept
JUDGE_PAIRS = "judge-pairs"


@dataclass
class SuiteResults:
    """Every per-item record of a run, by system label then query id, in suite order."""

    config: SuiteConfig
    systems: list[str]
    descriptions: dict[str, str]
    records: dict[str, dict[str, dict[str, Any]]]
    judge_pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    computed: int = 0
    reused: int = 0


class ItemStore:
    """The append-only JSONL file of finished items. A line cut short by a crash is ignored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[tuple[str, str, str], dict[str, Any]] = {}
        if path.is_file():
            _drop_torn_tail(path)
            with path.open("rb") as f:
                for raw in f:
                    try:
                        record = json.loads(raw)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        continue
                    if isinstance(record, dict) and {"system", "fingerprint", "qid"} <= set(record):
                        key = (record["system"], record["fingerprint"], record["qid"])
                        self.done[key] = record

    def get(self, system: str, fingerprint: str, qid: str) -> dict[str, Any] | None:
        return self.done.get((system, fingerprint, qid))

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.done[(record["system"], record["fingerprint"], record["qid"])] = record


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line a crash left without its newline, so the next append starts a line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def fingerprint(config: SuiteConfig, spec: RetrieverSpec) -> str:
    """A digest of everything that decides one system's per-item figures."""
    what = {
        "retriever": spec.fingerprint(),
        "generator": config.generator,
        "rag": config.rag,
        "judges": config.judges,
        "metrics": config.metrics,
        "depth": config.depth,
        "relevance_model": config.relevance_model if "answer_relevance" in config.metrics else None,
        "dataset": [str(config.dataset.path), config.dataset.split],
    }
    blob = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_suite(
    config: SuiteConfig,
    out: str | os.PathLike[str],
    *,
    generator: Generator | None = None,
    cache: Path | None = Path("runs") / "index-cache",
    progress: bool | None = None,
    log: Callable[[str], None] = _stderr,
) -> SuiteResults:
    """Run ``config``'s systems over its questions, reusing the items already in ``out``.

    ``generator`` replaces the suite's (tests pass a counting one); ``cache`` is the index cache
    of ``eval retrieval`` (``None``: always index).
    """
    from rag_retrievers.evals.cache import indexed_retriever
    from rag_retrievers.evals.grid_entries import entry_name, parse_entry

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ItemStore(out_dir / ITEMS_FILE)
    dataset, items = load_items(config)
    parts = Components(config, generator)
    specs = [parse_entry(r, model=config.model) for r in config.retrievers]
    labels = [entry_name(s) for s in specs]
    prints = {label: fingerprint(config, s) for label, s in zip(labels, specs, strict=True)}
    pending = {
        label: [i for i in items if store.get(label, prints[label], i.qid) is None]
        for label in labels
    }
    todo = sum(len(p) for p in pending.values())
    log(
        f"suite {config.name}: {len(items)} questions x {len(labels)} systems; "
        f"{len(items) * len(labels) - todo} items already done, {todo} to run"
    )
    results = SuiteResults(config, labels, {}, {}, reused=len(items) * len(labels) - todo)
    # a RAG item takes seconds, so a terminal gets a bar however few items there are; elsewhere
    # (CI logs) a line every tenth of the run, unless progress=False
    bar = progress_bar(
        todo, config.name, "item", sys.stderr.isatty() if progress is None else progress
    )
    every = max(1, todo // 10) if bar is None and progress is None else 0
    try:
        for label, spec in zip(labels, specs, strict=True):
            if pending[label]:
                # the index cache keys on corpus.jsonl's bytes; an RGB corpus is built in memory
                own_cache = cache if config.dataset.format == "beir" else None
                retriever, cached = indexed_retriever(
                    spec, dataset, config.dataset.path, own_cache, progress=progress
                )
                results.descriptions[label] = repr(retriever)
                log(f"{label}: index {'from the cache' if cached else 'built'}")
                run_one = rag_item if config.is_rag else retrieval_item
                rag = pipeline(config, retriever, parts) if config.is_rag else None
                for item in pending[label]:
                    began = time.perf_counter()
                    record = run_one(config, retriever, rag, item, parts)
                    record.update(
                        system=label,
                        fingerprint=prints[label],
                        qid=item.qid,
                        seconds=round(time.perf_counter() - began, 3),
                    )
                    store.append(record)
                    results.computed += 1
                    if bar is not None:
                        bar.update(1)
                    elif every and results.computed % every == 0:
                        log(f"{results.computed}/{todo} items")
            results.records[label] = {
                i.qid: store.done[(label, prints[label], i.qid)] for i in items
            }
    finally:
        if bar is not None:
            bar.close()
    if config.judges and config.dataset.hallucinated_field:
        results.judge_pairs = _judge_pairs(config, dataset, items, store, parts, log)
    return results


def _judge_pairs(
    config: SuiteConfig,
    dataset: BeirDataset,
    items: list[SuiteItem],
    store: ItemStore,
    parts: Components,
    log: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Each judge on the gold passages with the gold answer (label 1) and with the dataset's
    wrong answer (label 0): the judge reliability with known labels."""
    texts = {d.id: d.text for d in dataset.corpus}
    digest = hashlib.sha256(json.dumps([config.judges, str(config.dataset.path)]).encode())
    mark = digest.hexdigest()[:16]
    # an item whose gold passages are not in the corpus has no context to judge against
    usable = [i for i in items if i.hallucinated and i.golds and i.relevant & texts.keys()]
    todo = [i for i in usable if store.get(JUDGE_PAIRS, mark, i.qid) is None]
    if todo:
        log(f"{JUDGE_PAIRS}: judging gold and wrong answers of {len(todo)} questions")
    for item in todo:
        context = "\n".join(texts[d] for d in sorted(item.relevant) if d in texts)
        verdicts = judge_pair(item, context, parts)
        store.append(
            {"system": JUDGE_PAIRS, "fingerprint": mark, "qid": item.qid, "judges": verdicts}
        )
    return {i.qid: record for i in usable if (record := store.get(JUDGE_PAIRS, mark, i.qid))}
