"""Evaluation suite files: a small TOML file naming a dataset, the systems to run on it, the
generator, the judges and the metrics. ``rag-retrievers eval suite FILE`` runs one.

Relative paths in a suite file resolve against the file's own folder, so a suite runs from any
working directory. The dataset's ``path``, when relative, is taken under ``data_root``;
``--data DIR`` or the environment variable ``RAG_RETRIEVERS_DATA`` replace ``data_root`` (the
suites shipped in ``evals/suites/`` set it to ``../../../shared/data``: the shared data folder
beside the repository). Top-level keys come before the first ``[table]``::

    name = "qa_pubmedqa-rag"
    data_root = "../../../shared/data"
    retrievers = ["bm25", "bm25/rm3"]        # as `eval grid --grid` writes them
    model = "minilm"                         # optional, as --model
    generator = "smollm2"                    # a name, URL or .gguf path; absent: retrieval only
    judges = ["baseline", "offline"]         # faithfulness judges, by registered name
    metrics = ["decision_accuracy", "token_f1", "context_recall"]
    limit = 20                               # the first N questions of the split (offset = M)

    [dataset]
    path = "qa_pubmedqa"                     # BEIR layout: corpus.jsonl, queries.jsonl, qrels/
    split = "test"
    answers = "answers.jsonl"                # gold answers, one JSON object per query _id
    gold_fields = ["long_answer"]            # fields holding gold answer text
    decision_field = "final_decision"        # yes / no / maybe (PubMedQA)
    hallucinated_field = "hallucinated_answer"   # a wrong answer (HaluEval): judge reliability

    # or RGB (chen700564/RGB): a JSONL file of questions each with its own passages; a question
    # searches only its own passages (positive, negative = noise, counterfactual = wrong facts)
    # format = "rgb"; answers = "en_fact.json"; passages = ["negative"]; gold_fields = ["answer"]

    [rag]                                    # RAG(...) options and generation parameters
    system_prompt = "Start with yes, no or maybe..."   # replaces the default system message
    k = 3
    max_context_tokens = 1024
    max_tokens = 128

    [report]
    scatter = ["bm25", "bm25/rm3"]           # the two systems of the per-query scatter
    scatter_metric = "token_f1"
    reliability_label = "decision_accuracy"  # the answer counts as right when this is >= 0.5
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_retrievers.errors import InvalidInputError

DATA_ENV = "RAG_RETRIEVERS_DATA"

#: metrics of a generated answer (``decision_accuracy``: PubMedQA's yes / no / maybe)
ANSWER_METRICS = ("exact_match", "token_f1", "containment", "decision_accuracy")
#: metrics of the passages shown to the generator, against the qrels
CONTEXT_METRICS = ("context_precision", "context_recall")
#: other figures of a RAG answer
RAG_METRICS = ("answer_relevance", "abstained_correctly")
JUDGE_PREFIX = "faithfulness:"

TOP_KEYS = (
    "name", "description", "data_root", "retrievers", "model", "generator", "judges", "metrics",
    "limit", "offset", "depth", "relevance_model", "dataset", "rag", "report",
)  # fmt: skip
DATASET_KEYS = (
    "path", "format", "split", "answers", "gold_fields", "decision_field", "hallucinated_field",
    "passages",
)  # fmt: skip
#: dataset layouts: BEIR folders, and RGB's JSONL of questions each with its own passages
FORMATS = ("beir", "rgb")
#: RGB passage kinds: relevant ones, noise without the answer, and relevant ones with a wrong fact
RGB_PASSAGES = ("positive", "negative", "counterfactual")
RAG_KEYS = (
    "k", "max_context_tokens", "require_citations", "attribute_uncited", "min_score",
    "system_prompt", "max_tokens", "temperature", "top_p", "seed",
)  # fmt: skip
GENERATE_KEYS = ("max_tokens", "temperature", "top_p", "seed")
REPORT_KEYS = ("scatter", "scatter_metric", "reliability_label")


class SuiteError(InvalidInputError):
    """A suite file is missing, not TOML, or has a bad key or value; the message names the file
    and the key, and lists the valid keys or values."""


@dataclass(frozen=True)
class DatasetConfig:
    path: Path
    format: str = "beir"
    split: str = "test"
    answers: Path | None = None
    gold_fields: tuple[str, ...] = ()
    decision_field: str | None = None
    hallucinated_field: str | None = None
    passages: tuple[str, ...] = ()


@dataclass(frozen=True)
class SuiteConfig:
    """A parsed suite file; see the module docstring for the format."""

    name: str
    file: Path
    dataset: DatasetConfig
    retrievers: tuple[str, ...]
    metrics: tuple[str, ...]
    model: str | None = None
    generator: str | None = None
    judges: tuple[str, ...] = ()
    limit: int | None = None
    offset: int = 0
    depth: int = 100
    relevance_model: str = "minilm"
    rag: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def is_rag(self) -> bool:
        return self.generator is not None

    def all_metrics(self) -> tuple[str, ...]:
        """The configured metrics followed by one ``faithfulness:<judge>`` per judge."""
        return (*self.metrics, *(JUDGE_PREFIX + j for j in self.judges))

    def rag_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~rag_retrievers.app.rag.RAG`; ``system_prompt`` replaces the
        default prompt's system message (the user template stays)."""
        from rag_retrievers.generators.prompts import RagPrompt

        options = {k: v for k, v in self.rag.items() if k not in GENERATE_KEYS}
        system = options.pop("system_prompt", None)
        if system is not None:
            options["prompt"] = RagPrompt(system=system)
        return options

    def generate_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.rag.items() if k in GENERATE_KEYS}


def _fail(file: Path, message: str) -> SuiteError:
    return SuiteError(f"{file}: {message}")


def _check_keys(file: Path, table: Mapping[str, Any], valid: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in valid:
            raise _fail(file, f"unknown key {where}{key!r}; valid keys: {', '.join(valid)}")


def _typed(file: Path, table: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
    value = table.get(key)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise _fail(file, f"{where}{key} must be a {kind.__name__}, got {value!r}")
    return value


def _strings(file: Path, table: Mapping[str, Any], key: str, where: str = "") -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(file, f"{where}{key} must be a list of non-empty strings, got {value!r}")
    if len(set(value)) != len(value):
        raise _fail(file, f"{where}{key} lists a name twice: {value!r}")
    return tuple(v.strip() for v in value)


def _count(file: Path, table: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = _typed(file, table, key, int)
    if value is not None and value < minimum:
        raise _fail(file, f"{key} must be an integer >= {minimum}, got {value}")
    return value


def data_root(file: Path, declared: str | None, override: str | os.PathLike[str] | None) -> Path:
    """Where relative dataset paths point: ``override`` (``--data``), else ``$RAG_RETRIEVERS_DATA``,
    else the file's ``data_root`` (relative to the file's folder), else the file's folder."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    if declared is not None:
        return (file.parent / Path(declared).expanduser()).resolve()
    return file.parent


def load_suite(
    path: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> SuiteConfig:
    """Read and check a suite file; ``data`` replaces its ``data_root``, ``limit`` its limit."""
    file = Path(path)
    if not file.is_file():
        raise SuiteError(f"{file}: no such suite file")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(file, f"not valid TOML: {exc}") from None
    file = file.resolve()
    _check_keys(file, raw, TOP_KEYS, "")
    for table, valid in (("dataset", DATASET_KEYS), ("rag", RAG_KEYS), ("report", REPORT_KEYS)):
        if not isinstance(raw.get(table, {}), dict):
            raise _fail(file, f"{table} must be a [{table}] table")
        _check_keys(file, raw.get(table, {}), valid, f"[{table}] ")
    dataset = _dataset(file, raw, data)
    retrievers = _strings(file, raw, "retrievers")
    if not retrievers:
        raise _fail(file, 'retrievers must name at least one retriever, e.g. ["bm25"]')
    generator = _typed(file, raw, "generator", str)
    judges = _strings(file, raw, "judges")
    if limit is not None and limit < 1:
        raise SuiteError(f"--limit must be >= 1, got {limit}")
    config = SuiteConfig(
        name=_typed(file, raw, "name", str) or file.stem,
        file=file,
        dataset=dataset,
        retrievers=retrievers,
        metrics=_strings(file, raw, "metrics"),
        model=_typed(file, raw, "model", str),
        generator=generator,
        judges=judges,
        limit=limit if limit is not None else _count(file, raw, "limit", 1),
        offset=_count(file, raw, "offset", 0) or 0,
        depth=_count(file, raw, "depth", 1) or 100,
        relevance_model=_typed(file, raw, "relevance_model", str) or "minilm",
        rag=dict(raw.get("rag", {})),
        report=dict(raw.get("report", {})),
        description=_typed(file, raw, "description", str) or "",
    )
    _check_names(config)
    return config


def _dataset(
    file: Path, raw: Mapping[str, Any], override: str | os.PathLike[str] | None
) -> DatasetConfig:
    table = raw.get("dataset", {})
    where = "[dataset] "
    path = _typed(file, table, "path", str, where)
    if not path:
        raise _fail(file, '[dataset] needs path = "DIR" (a BEIR-layout folder)')
    root = data_root(file, _typed(file, raw, "data_root", str), override)
    folder = (root / Path(path).expanduser()).resolve()
    if not folder.is_dir():
        raise _fail(
            file,
            f"[dataset] path {path!r} is not a folder under {root} (set data_root in the file, "
            f"--data DIR or ${DATA_ENV})",
        )
    answers = _typed(file, table, "answers", str, where)
    answers_file = folder / answers if answers else None
    if answers_file is not None and not answers_file.is_file():
        raise _fail(file, f"[dataset] answers: no such file {answers_file}")
    kind = _typed(file, table, "format", str, where) or "beir"
    if kind not in FORMATS:
        raise _fail(file, f"[dataset] format {kind!r} is not known; valid: {', '.join(FORMATS)}")
    passages = _strings(file, table, "passages", where)
    if kind == "rgb":
        if answers_file is None:
            raise _fail(file, '[dataset] format "rgb" needs answers = "en_fact.json" (or en.json)')
        passages = passages or ("positive", "negative")
        bad = [p for p in passages if p not in RGB_PASSAGES]
        if bad:
            raise _fail(file, f"[dataset] passages {bad}; valid: {', '.join(RGB_PASSAGES)}")
    elif passages:
        raise _fail(file, '[dataset] passages applies to format = "rgb" only')
    return DatasetConfig(
        path=folder,
        format=kind,
        passages=passages,
        split=_typed(file, table, "split", str, where) or "test",
        answers=answers_file,
        gold_fields=_strings(file, table, "gold_fields", where)
        or (("answer",) if kind == "rgb" else ()),
        decision_field=_typed(file, table, "decision_field", str, where),
        hallucinated_field=_typed(file, table, "hallucinated_field", str, where),
    )


def valid_metrics(config: SuiteConfig) -> list[str]:
    """The metric names the suite's kind and dataset allow (retrieval names: any ``nDCG@k``...)."""
    names = ["nDCG@k", "Recall@k", "P@k", "MRR@k", "MAP"]
    if config.is_rag:
        names += [*CONTEXT_METRICS, *RAG_METRICS]
        if config.dataset.gold_fields:
            names += ["exact_match", "token_f1", "containment"]
        if config.dataset.decision_field:
            names.append("decision_accuracy")
    return names


def _check_names(config: SuiteConfig) -> None:
    from rag_retrievers.evals.grid_entries import parse_grid
    from rag_retrievers.evals.retrieval import ir_measure

    file = config.file
    try:
        parse_grid(",".join(config.retrievers), model=config.model)
    except InvalidInputError as exc:
        raise _fail(file, f"retrievers: {exc}") from None
    allowed = valid_metrics(config)
    if not config.metrics and not config.judges:
        raise _fail(file, f"metrics must name at least one metric; valid: {', '.join(allowed)}")
    for metric in config.metrics:
        if metric in allowed:
            continue
        try:
            ir_measure(metric)
        except InvalidInputError:
            raise _fail(
                file, f"metrics: {metric!r} is not valid here; valid: {', '.join(allowed)}"
            ) from None
    if not config.is_rag:
        for key, value in (("judges", config.judges), ("[rag]", config.rag)):
            if value:
                raise _fail(file, f'{key} needs a generator (generator = "smollm2")')
    if config.judges:
        from rag_retrievers.evals.faithfulness import judge_names

        for judge in config.judges:
            if judge not in judge_names():
                raise _fail(
                    file, f"judges: unknown judge {judge!r}; valid: {', '.join(judge_names())}"
                )
    _check_report(config)


def _check_report(config: SuiteConfig) -> None:
    from rag_retrievers.evals.grid_entries import entry_name, parse_entry

    file, report = config.file, config.report
    systems = [entry_name(parse_entry(r, model=config.model)) for r in config.retrievers]
    scatter = _strings(file, report, "scatter", "[report] ")
    if scatter and (len(scatter) != 2 or not set(scatter) <= set(systems)):
        raise _fail(file, f"[report] scatter must name two of the retrievers {systems}")
    metrics = config.all_metrics()
    for key in ("scatter_metric", "reliability_label"):
        value = _typed(file, report, key, str, "[report] ")
        if value is not None and value not in metrics:
            raise _fail(file, f"[report] {key} {value!r} is not among metrics {list(metrics)}")
    if config.rag:
        k = config.rag.get("k")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise _fail(file, f"[rag] k must be an integer >= 1, got {k!r}")
        _typed(file, config.rag, "system_prompt", str, "[rag] ")
        from rag_retrievers.generators.base import check_params

        try:
            check_params(config.generate_params())
        except InvalidInputError as exc:
            raise _fail(file, f"[rag] {exc}") from None
