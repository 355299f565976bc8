"""One suite item's figures: the questions of a suite with their gold data, and what a retrieval
or RAG system scores on each (see :mod:`rag_retrievers.evals.suite_runner` for the run)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.records import Document

if TYPE_CHECKING:
    from rag_retrievers.evals.faithfulness import FaithfulnessJudge

    from rag_retrievers.app.rag import RAG
    from rag_retrievers.base import Retriever
    from rag_retrievers.generators import Generator
    from rag_retrievers.records import Hit


@dataclass(frozen=True)
class SuiteItem:
    """One question of the suite with what the dataset says about it."""

    qid: str
    question: str
    relevant: frozenset[str]
    golds: tuple[str, ...] = ()
    decision: str | None = None
    hallucinated: str | None = None
    #: searches are limited to documents whose metadata "question" is this (RGB's own passages)
    scope: str | None = None

    def filter(self) -> dict[str, str] | None:
        return None if self.scope is None else {"question": self.scope}


def load_items(config: SuiteConfig) -> tuple[BeirDataset, list[SuiteItem]]:
    """The dataset and the suite's slice of its questions (``offset``, then ``limit``), in the
    order of queries.jsonl; gold answers joined from the answers file by query id."""
    ds = config.dataset
    if ds.format == "rgb":
        return load_rgb(config)
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


#: RGB's field for each passage kind of a suite
RGB_FIELDS = {"positive": "positive", "negative": "negative", "counterfactual": "positive_wrong"}


def load_rgb(config: SuiteConfig) -> tuple[BeirDataset, list[SuiteItem]]:
    """RGB (Chen et al. 2024, "Benchmarking Large Language Models in Retrieval-Augmented
    Generation"): one JSON object per question with its answer and its own passages. Every
    question's passages of the suite's kinds go into one corpus, tagged with the question's id,
    and each question searches only its own; positive passages are its relevant ones, so with
    negative or counterfactual passages alone the context lacks the answer."""
    ds = config.dataset
    if ds.answers is None:
        raise DataFormatError(f"{ds.path}: an RGB dataset needs its JSONL file (answers = ...)")
    rows = list(read_jsonl(ds.answers))[config.offset :]
    if config.limit is not None:
        rows = rows[: config.limit]
    corpus: list[Document] = []
    items: list[SuiteItem] = []
    for number, row in rows:
        qid, question = str(row.get("id", number)), row.get("query")
        if not isinstance(question, str) or not question.strip():
            raise DataFormatError(f"{ds.answers}:{number}: needs a string 'query'")
        relevant = set()
        for kind in ds.passages:
            texts = row.get(RGB_FIELDS[kind]) or []
            if not isinstance(texts, list):
                raise DataFormatError(f"{ds.answers}:{number}: {RGB_FIELDS[kind]} is not a list")
            for i, text in enumerate(t for t in texts if isinstance(t, str) and t.strip()):
                doc_id = f"{qid}-{kind}-{i}"
                corpus.append(Document(id=doc_id, text=text, metadata={"question": qid}))
                if kind == "positive":
                    relevant.add(doc_id)
        golds = tuple(_strings_in(row.get(f) for f in ds.gold_fields))
        if not golds:
            raise DataFormatError(f"{ds.answers}:{number}: no gold answer")
        items.append(
            SuiteItem(
                qid=qid,
                question=question,
                relevant=frozenset(relevant),
                golds=golds,
                hallucinated=_field(row, ds.hallucinated_field),
                scope=qid,
            )
        )
    queries = {i.qid: i.question for i in items}
    qrels = {i.qid: dict.fromkeys(i.relevant, 1) for i in items}
    return BeirDataset(ds.path.name, corpus, queries, qrels), items


def _strings_in(values: Iterable[Any]) -> list[str]:
    """The strings in nested lists (RGB lists a date's spellings as [[...]])."""
    found: list[str] = []
    for value in values:
        if isinstance(value, str) and value.strip():
            found.append(value)
        elif isinstance(value, list):
            found += _strings_in(value)
    return found


def _field(row: Mapping[str, Any], name: str | None) -> str | None:
    value = row.get(name) if name else None
    return value if isinstance(value, str) and value.strip() else None


class Components:
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


def pipeline(config: SuiteConfig, retriever: Retriever, parts: Components) -> RAG:
    from rag_retrievers.app.rag import RAG

    return RAG(
        retriever,
        parts.generator(),
        generate_params=config.generate_params(),
        **config.rag_options(),
    )


def retrieval_item(
    config: SuiteConfig, retriever: Retriever, rag: RAG | None, item: SuiteItem, parts: Components
) -> dict[str, Any]:
    hits = retriever.search(item.question, k=config.depth, filter=item.filter())
    return {"retrieved": [h.id for h in hits[:10]], "metrics": _ir_metrics(config, item, hits)}


def _ir_names(config: SuiteConfig) -> list[str]:
    """The suite's retrieval metrics (nDCG@10...): every name that is not an answer metric."""
    return [m for m in config.metrics if m not in ANSWER_LEVEL]


def _ir_metrics(
    config: SuiteConfig, item: SuiteItem, hits: Iterable[Hit]
) -> dict[str, float | None]:
    """The retrieval metrics of one query's ranking; ``None`` (not applicable) when nothing is
    relevant to it (an RGB question asked of its noise passages only)."""
    from rag_retrievers.evals.retrieval import per_query_metrics

    names = _ir_names(config)
    if not names or not item.relevant:
        return dict.fromkeys(names)
    qrels = {item.qid: dict.fromkeys(item.relevant, 1)}
    values = per_query_metrics({item.qid: {h.id: h.score for h in hits}}, qrels, names)
    return {name: values[name][item.qid] for name in names}


def rag_item(
    config: SuiteConfig, retriever: Retriever, rag: RAG | None, item: SuiteItem, parts: Components
) -> dict[str, Any]:
    from rag_retrievers.app.rag import says_not_found

    if rag is None:
        raise InvalidInputError("a RAG suite item needs the RAG pipeline")
    answer = rag.ask(item.question, filter=item.filter())
    shown = [h.id for h in answer.contexts]
    abstained = says_not_found(answer.text)
    has_answer = bool(item.relevant & set(shown))
    values: dict[str, float | None] = {}
    for metric in config.metrics:
        if metric in ANSWER_LEVEL:
            values[metric] = _answer_metric(metric, item, answer.text, shown, abstained, parts)
    if _ir_names(config):
        values.update(
            _ir_metrics(
                config, item, retriever.search(item.question, k=config.depth, filter=item.filter())
            )
        )
    context = "\n".join(h.document.text for h in answer.contexts if h.document is not None)
    verdicts: dict[str, dict[str, Any]] = {}
    for name in config.judges:
        if abstained:
            verdicts[name] = {"score": None, "abstained": "the answer abstained"}
        else:
            result = parts.judge(name).judge(context, answer.text)
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
    metric: str, item: SuiteItem, text: str, shown: list[str], abstained: bool, parts: Components
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
        return None if abstained else parts.relevance(item.question, text)
    if metric == "abstained_correctly":
        return m.abstained_correctly(abstained, bool(item.relevant & set(shown)))
    raise InvalidInputError(f"not an answer metric: {metric!r}")


def judge_pair(item: SuiteItem, context: str, components: Components) -> dict[str, Any]:
    """Each judge on the gold passages with the gold answer and with the dataset's wrong answer."""
    verdicts = {}
    for name in components.config.judges:
        judge = components.judge(name)
        good, bad = (judge.judge(context, a) for a in (item.golds[0], item.hallucinated or ""))
        verdicts[name] = {
            "gold": None if good.abstained else good.score,
            "wrong": None if bad.abstained else bad.score,
        }
    return verdicts
