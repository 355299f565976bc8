"""The ``bench encoders`` command: what our Dense and Splade adapters cost on top of the encoder.

Encoding is the expensive part of a neural retriever, so the question this benchmark answers is
how much the adapter adds: the same texts are encoded by the raw sentence-transformers call
(``SentenceTransformer.encode`` / ``SparseEncoder.encode_document``, same model, same batch size)
and indexed by our ``add`` (content hashing, length-sorted batches, the vector store or sparse
index, the document store), alternating, best of ``--repeats`` runs each, in one process. It also
reports query latency (p50/p99 of ``search(q, k=10)`` against a raw query encode) and the bytes per
document of the saved collection.

Run: ``rag-retrievers bench encoders --dataset ../shared/data/scifact``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_retrievers.evals.bench.report import markdown_table
from rag_retrievers.evals.bench.stats import percentile
from rag_retrievers.evals.output import add_json_file_arguments, stderr_logger, write_json_report

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.records import Document

K = 10


@dataclass(frozen=True)
class EncoderSystem:
    """One adapter and the raw sentence-transformers call it is compared with."""

    kind: str  # the model kind rag_retrievers.encoders.models.resolve_model takes
    default_model: str
    batch_size: int
    raw_call: str  # printed in the report

    def load_raw(self, model: str) -> Any:
        from rag_retrievers.encoders.models import resolve_model

        resolved = resolve_model(model, self.kind)  # type: ignore[arg-type]
        import sentence_transformers as st

        cls = st.SentenceTransformer if self.kind == "dense" else st.SparseEncoder
        return cls(resolved.path, device="cpu")

    def raw_encode(self, model: Any, texts: list[str]) -> None:
        if self.kind == "dense":
            model.encode(texts, batch_size=self.batch_size)
        else:
            model.encode_document(texts, batch_size=self.batch_size)

    def raw_query(self, model: Any, text: str) -> None:
        if self.kind == "dense":
            model.encode([text])
        else:
            model.encode_query([text])

    def make_ours(self, name: str, model: str) -> Any:
        from rag_retrievers.registry import create_retriever

        return create_retriever(name, model=model, batch_size=self.batch_size)


SYSTEMS: dict[str, EncoderSystem] = {
    "dense": EncoderSystem("dense", "minilm", 32, "SentenceTransformer.encode"),
    "splade": EncoderSystem("sparse", "splade-tiny", 16, "SparseEncoder.encode_document"),
}


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bench encoders`` to ``parser``."""
    parser.add_argument(
        "--dataset",
        type=Path,
        metavar="DIR",
        default=Path("../shared/data/scifact"),
        help="a BEIR-layout folder (corpus.jsonl, queries.jsonl); default: %(default)s",
    )
    parser.add_argument(
        "--docs",
        type=int,
        metavar="N",
        default=2000,
        help="the first N documents of the corpus are encoded (default: %(default)s)",
    )
    parser.add_argument(
        "--queries",
        type=int,
        metavar="N",
        default=100,
        help="the first N queries are timed (default: %(default)s)",
    )
    parser.add_argument(
        "--retrievers",
        metavar="LIST",
        default=",".join(SYSTEMS),
        help=f"comma-separated, from: {', '.join(SYSTEMS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="RETRIEVER=NAME",
        help="the model of one retriever, a short name or a local path "
        "(default: dense=minilm, splade=splade-tiny); repeatable",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        default=2,
        help="raw and ours alternate N times; the best time of each counts (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, metavar="N", default=None, help="torch CPU threads")
    add_json_file_arguments(parser)


def parse_models(pairs: Sequence[str], retrievers: Sequence[str]) -> dict[str, str]:
    """``["splade=./my-splade"]`` -> the model per retriever, defaults filled in."""
    models = {name: SYSTEMS[name].default_model for name in retrievers}
    for pair in pairs:
        name, sep, model = pair.partition("=")
        if not sep or not model.strip():
            raise InvalidInputError(f"--model {pair!r}: expected RETRIEVER=NAME, e.g. dense=minilm")
        if name not in models:
            raise InvalidInputError(
                f"--model {pair!r}: {name!r} is not benchmarked; choose from {', '.join(models)}"
            )
        models[name] = model.strip()
    return models


def _check_options(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    retrievers = [r.strip() for r in args.retrievers.split(",") if r.strip()]
    unknown = [r for r in retrievers if r not in SYSTEMS]
    if unknown or not retrievers:
        raise InvalidInputError(
            f"--retrievers {args.retrievers!r}: choose from {', '.join(SYSTEMS)}"
        )
    for name in ("docs", "queries", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name} must be >= 1, got {value}")
    if not (args.dataset / "corpus.jsonl").is_file():
        raise InvalidInputError(f"--dataset {args.dataset}: no corpus.jsonl there")
    return retrievers, parse_models(args.model, retrievers)


def load_texts(dataset: Path, n_docs: int, n_queries: int) -> tuple[list[Document], list[str]]:
    """The first ``n_docs`` documents (title and text joined, as the eval indexes them) and the
    first ``n_queries`` queries of ``dataset``."""
    from rag_retrievers.evals.beir import read_corpus, read_queries

    documents = read_corpus(dataset / "corpus.jsonl")[:n_docs]
    queries = list(read_queries(dataset / "queries.jsonl").values())[:n_queries]
    if not documents or not queries:
        raise InvalidInputError(f"--dataset {dataset}: needs documents and queries")
    return documents, queries


def main_encoders(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed options describe and print its table; exit code."""
    retrievers, models = _check_options(args)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    log = stderr_logger(args.quiet)
    documents, queries = load_texts(args.dataset, args.docs, args.queries)
    log(f"{len(documents):,} documents, {len(queries)} queries from {args.dataset}")
    results = {
        name: bench_system(name, SYSTEMS[name], models[name], documents, queries, args.repeats, log)
        for name in retrievers
    }
    print(format_report(args.dataset.name, len(documents), len(queries), args.repeats, results))
    if args.json_path is not None:
        report = {"dataset": str(args.dataset), "repeats": args.repeats, "systems": results}
        write_json_report(args.json_path, report)
    return 0


def _seconds(run: Callable[[], Any]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def bench_system(
    name: str,
    system: EncoderSystem,
    model: str,
    documents: list[Document],
    queries: list[str],
    repeats: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Raw encode vs our ``add`` (alternating), query latency and saved bytes for one adapter."""
    texts = [d.text for d in documents]
    raw = system.load_raw(model)
    # warm-up of both paths: first-call allocations and lazy imports are nobody's overhead
    system.raw_encode(raw, texts[:8])
    system.make_ours(name, model).add(documents[:8], show_progress=False)
    raw_times, ours_times = [], []
    for run in range(repeats):
        raw_times.append(_seconds(lambda: system.raw_encode(raw, texts)))
        ours = system.make_ours(name, model)  # fresh each run: nothing already encoded
        ours_times.append(_seconds(lambda: ours.add(documents, show_progress=False)))  # noqa: B023
        log(f"{name}: run {run + 1}: raw {raw_times[-1]:.1f} s, ours {ours_times[-1]:.1f} s")
    ours_latency = _latencies(lambda q: ours.search(q, k=K), queries)
    raw_latency = _latencies(lambda q: system.raw_query(raw, q), queries)
    with tempfile.TemporaryDirectory(prefix="rag-retrievers-bench-") as tmp:
        folder = ours.save(Path(tmp) / "collection")
        saved = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    raw_s, ours_s = min(raw_times), min(ours_times)
    return {
        "model": model,
        "raw_call": system.raw_call,
        "batch_size": system.batch_size,
        "raw_s": raw_s,
        "ours_s": ours_s,
        "raw_docs_per_s": len(texts) / raw_s,
        "ours_docs_per_s": len(texts) / ours_s,
        "time_ratio": ours_s / raw_s,
        "ours_p50_ms": percentile(ours_latency, 50),
        "ours_p99_ms": percentile(ours_latency, 99),
        "raw_query_p50_ms": percentile(raw_latency, 50),
        "saved_bytes_per_doc": saved / len(documents),
    }


def _latencies(call: Callable[[str], Any], queries: list[str]) -> list[float]:
    call(queries[0])  # warm-up
    out = []
    for query in queries:
        began = time.perf_counter()
        call(query)
        out.append((time.perf_counter() - began) * 1000)
    return out


_COLUMNS = (
    "retriever (model)",
    "raw docs/s",
    "ours docs/s",
    "ours/raw time",
    "search p50 ms",
    "search p99 ms",
    "raw query encode p50 ms",
    "bytes/doc saved",
)


def format_report(
    dataset: str, n_docs: int, n_queries: int, repeats: int, results: dict[str, dict[str, Any]]
) -> str:
    rows = [
        [
            f"{name} ({r['model']})",
            f"{r['raw_docs_per_s']:,.1f}",
            f"{r['ours_docs_per_s']:,.1f}",
            f"{r['time_ratio']:.2f}x",
            f"{r['ours_p50_ms']:.1f}",
            f"{r['ours_p99_ms']:.1f}",
            f"{r['raw_query_p50_ms']:.1f}",
            f"{r['saved_bytes_per_doc']:,.0f}",
        ]
        for name, r in results.items()
    ]
    notes = [
        f"- raw: {r['raw_call']} on the same texts, batch size {r['batch_size']} ({name})"
        for name, r in results.items()
    ]
    title = (
        f"### Encoders on {dataset}: {n_docs:,} documents, {n_queries} queries, "
        f"best of {repeats} alternating runs"
    )
    lines = ["", title, "", *markdown_table(_COLUMNS, rows), "", *notes]
    lines.append(
        "- ours/raw time: our add() (hashing, length-sorted batches, index, document store) "
        "over the raw encode; < 1.00x means ours is faster"
    )
    return "\n".join(lines) + "\n"
