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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_retrievers.evals import answers as metrics_lib
from rag_retrievers.evals.beir import BeirDataset, DataFormatError, load_beir, read_jsonl
from rag_retrievers.evals.suite_config import (
    ANSWER_METRICS,
    CONTEXT_METRICS,
    JUDGE_PREFIX,
    RAG_METRICS,
    SuiteConfig,
)

from rag_retrievers.base import progress_bar
from rag_retrievers.errors import InvalidInputError

if TYPE_CHECKING:
    from rag_retrievers.evals.faithfulness import FaithfulnessJudge

    from rag_retrievers.base import Retriever
    from rag_retrievers.generators import Generator
    from rag_retrievers.rag import RAG
    from rag_retrievers.records import Hit
    from rag_retrievers.spec import RetrieverSpec

ITEMS_FILE = "items.jsonl"
#: the pseudo-system under which judge verdicts on gold and wrong answers are kept
JUDGE_PAIRS = "judge-pairs"


@dataclass(frozen=True)
class SuiteItem:
    """One question of the suite with what the dataset says about it."""

    qid: str
    question: str
    relevant: frozenset[str]
    golds: tuple[str, ...] = ()
    decision: str | None = None
    hallucinated: str | None = None


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


def load_items(config: SuiteConfig) -> tuple[BeirDataset, list[SuiteItem]]:
    """The dataset and the suite's slice of its questions (``offset``, then ``limit``), in the
    order of queries.jsonl; gold answers joined from the answers file by query id."""
    ds = config.dataset
    dataset = load_beir(ds.path, ds.split)
    gold: dict[str, dict[str, Any]] = {}
    if ds.answers is not None:
        for number, row in read_jsonl(ds.answers):
            qid = row.get("_id", row.get("id"))
            if qid is None:
                raise DataFormatError(f"{ds.answers}:{number}: needs an '_id'")
            gold[str(qid)] = row
    qids = list(dataset.queries)[config.offset :]
    if config.limit is not None:
        qids = qids[: config.limit]
    items = []
    for qid in qids:
        row = gold.get(qid, {})
        if ds.answers is not None and not row:
            raise DataFormatError(f"{ds.answers}: no gold answer for query {qid!r}")
        golds = tuple(str(row[f]) for f in ds.gold_fields if isinstance(row.get(f), str | int))
        if ds.gold_fields and not golds:
            raise DataFormatError(f"{ds.answers}: query {qid!r} has none of {ds.gold_fields}")
        items.append(
            SuiteItem(
                qid=qid,
                question=dataset.queries[qid],
                relevant=frozenset(d for d, rel in dataset.qrels.get(qid, {}).items() if rel > 0),
                golds=golds,
                decision=_field(row, ds.decision_field),
                hallucinated=_field(row, ds.hallucinated_field),
            )
        )
    return dataset, items


def _field(row: Mapping[str, Any], name: str | None) -> str | None:
    value = row.get(name) if name else None
    return value if isinstance(value, str) and value.strip() else None


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


class _Lazy:
    """The expensive shared parts, made on first use: a rerun served from the cache never loads
    the generator, the judges or the relevance model."""

    def __init__(self, config: SuiteConfig, generator: Generator | None) -> None:
        self.config, self._generator = config, generator
        self._judges: dict[str, FaithfulnessJudge] = {}
        self._encoder: Any = None

    def generator(self) -> Generator:
        if self._generator is None:
            from rag_retrievers.generators import resolve_generator

            self._generator = resolve_generator(self.config.generator)
        return self._generator

    def judge(self, name: str) -> FaithfulnessJudge:
        if name not in self._judges:
            from rag_retrievers.evals.faithfulness import create_judge

            self._judges[name] = create_judge(name)
        return self._judges[name]

    def relevance(self, question: str, answer: str) -> float:
        if self._encoder is None:
            from rag_retrievers.encoders.dense import DenseEncoder

            self._encoder = DenseEncoder(self.config.relevance_model)
        vectors = self._encoder.encode_queries([question, answer], show_progress=False)
        return metrics_lib.answer_relevance(vectors[0], vectors[1])


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
    from rag_retrievers.evals.grid import entry_name, parse_entry

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ItemStore(out_dir / ITEMS_FILE)
    dataset, items = load_items(config)
    lazy = _Lazy(config, generator)
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
    bar = progress_bar(todo, config.name, "item", progress)
    try:
        for label, spec in zip(labels, specs, strict=True):
            if pending[label]:
                retriever, cached = indexed_retriever(
                    spec, dataset, config.dataset.path, cache, progress=progress
                )
                results.descriptions[label] = repr(retriever)
                log(f"{label}: index {'from the cache' if cached else 'built'}")
                run_one = _rag_item if config.is_rag else _retrieval_item
                rag = _pipeline(config, retriever, lazy) if config.is_rag else None
                for item in pending[label]:
                    began = time.perf_counter()
                    record = run_one(config, retriever, rag, item, lazy)
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
            results.records[label] = {
                i.qid: store.done[(label, prints[label], i.qid)] for i in items
            }
    finally:
        if bar is not None:
            bar.close()
    if config.judges and config.dataset.hallucinated_field:
        results.judge_pairs = _judge_pairs(config, dataset, items, store, lazy, log)
    return results


def _pipeline(config: SuiteConfig, retriever: Retriever, lazy: _Lazy) -> RAG:
    from rag_retrievers.rag import RAG

    return RAG(
        retriever,
        lazy.generator(),
        generate_params=config.generate_params(),
        **config.rag_options(),
    )


def _retrieval_item(
    config: SuiteConfig, retriever: Retriever, rag: RAG | None, item: SuiteItem, lazy: _Lazy
) -> dict[str, Any]:
    hits = retriever.search(item.question, k=config.depth)
    return {"retrieved": [h.id for h in hits[:10]], "metrics": _ir_metrics(config, item, hits)}


def _ir_names(config: SuiteConfig) -> list[str]:
    """The suite's retrieval metrics (nDCG@10...): every name that is not an answer metric."""
    return [m for m in config.metrics if m not in ANSWER_LEVEL]


def _ir_metrics(config: SuiteConfig, item: SuiteItem, hits: Iterable[Hit]) -> dict[str, float]:
    from rag_retrievers.evals.retrieval import per_query_metrics

    names = _ir_names(config)
    if not names or not item.relevant:
        return dict.fromkeys(names, 0.0)
    qrels = {item.qid: dict.fromkeys(item.relevant, 1)}
    values = per_query_metrics({item.qid: {h.id: h.score for h in hits}}, qrels, names)
    return {name: values[name][item.qid] for name in names}


def _rag_item(
    config: SuiteConfig, retriever: Retriever, rag: RAG | None, item: SuiteItem, lazy: _Lazy
) -> dict[str, Any]:
    from rag_retrievers.rag import says_not_found

    if rag is None:
        raise InvalidInputError("a RAG suite item needs the RAG pipeline")
    answer = rag.ask(item.question)
    shown = [h.id for h in answer.contexts]
    abstained = says_not_found(answer.text)
    has_answer = bool(item.relevant & set(shown))
    values: dict[str, float | None] = {}
    for metric in config.metrics:
        if metric in ANSWER_LEVEL:
            values[metric] = _answer_metric(metric, item, answer.text, shown, abstained, lazy)
    if _ir_names(config):
        values.update(_ir_metrics(config, item, retriever.search(item.question, k=config.depth)))
    context = "\n".join(h.document.text for h in answer.contexts if h.document is not None)
    verdicts: dict[str, dict[str, Any]] = {}
    for name in config.judges:
        if abstained:
            verdicts[name] = {"score": None, "abstained": "the answer abstained"}
        else:
            result = lazy.judge(name).judge(context, answer.text)
            verdicts[name] = {"score": result.score, "abstained": result.abstained}
        values[JUDGE_PREFIX + name] = (
            None if verdicts[name]["abstained"] else verdicts[name]["score"]
        )
    return {
        "question": item.question,
        "answer": answer.text,
        "citations": list(answer.citations),
        "contexts": shown,
        "abstained": abstained,
        "context_has_answer": has_answer,
        "metrics": values,
        "judges": verdicts,
    }


ANSWER_LEVEL = frozenset((*ANSWER_METRICS, *CONTEXT_METRICS, *RAG_METRICS))


def _answer_metric(
    metric: str, item: SuiteItem, text: str, shown: list[str], abstained: bool, lazy: _Lazy
) -> float | None:
    m = metrics_lib
    if metric == "exact_match":
        return m.exact_match(text, item.golds)
    if metric == "token_f1":
        return m.token_f1(text, item.golds)
    if metric == "containment":
        return m.containment(text, item.golds)
    if metric == "decision_accuracy":
        return m.decision_accuracy(text, item.decision) if item.decision else None
    if metric == "context_precision":
        return m.context_precision(shown, item.relevant)
    if metric == "context_recall":
        return m.context_recall(shown, item.relevant)
    if metric == "answer_relevance":
        return None if abstained else lazy.relevance(item.question, text)
    if metric == "abstained_correctly":
        return m.abstained_correctly(abstained, bool(item.relevant & set(shown)))
    raise InvalidInputError(f"not an answer metric: {metric!r}")


def _judge_pairs(
    config: SuiteConfig,
    dataset: BeirDataset,
    items: list[SuiteItem],
    store: ItemStore,
    lazy: _Lazy,
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
        verdicts = {}
        for name in config.judges:
            judge = lazy.judge(name)
            good, bad = (judge.judge(context, a) for a in (item.golds[0], item.hallucinated or ""))
            verdicts[name] = {
                "gold": None if good.abstained else good.score,
                "wrong": None if bad.abstained else bad.score,
            }
        store.append(
            {"system": JUDGE_PAIRS, "fingerprint": mark, "qid": item.qid, "judges": verdicts}
        )
    return {
        i.qid: record for i in items if (record := store.get(JUDGE_PAIRS, mark, i.qid)) is not None
    }
