"""The ``rag-retrievers`` command line: index, search, eval, bench, demo.

Errors a user can cause print one line, ``rag-retrievers: error: ...``, and exit with code 2;
input is read and checked in full before a saved collection is touched.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_retrievers.errors import InvalidInputError, RagRetrieversError

if TYPE_CHECKING:
    from rag_retrievers.base import Retriever
    from rag_retrievers.evals.beir import BeirDataset
    from rag_retrievers.spec import RetrieverSpec

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    from rag_retrievers.records import validation_message

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (RagRetrieversError, OSError) as exc:
        message = _one_line(str(exc)) or type(exc).__name__
        print(f"rag-retrievers: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:  # a record built from the user's input
        print(f"rag-retrievers: error: {_one_line(validation_message(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rag-retrievers: interrupted; saved collections are unchanged", file=sys.stderr)
        return 130


def _one_line(message: str) -> str:
    """An error message on one line: its lines joined with "; ", blank ones dropped."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag-retrievers", description="Pluggable retrievers for RAG, and their evaluation."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("index", help="add documents from a JSONL file to a collection")
    p.add_argument("collection", type=Path, help="collection directory (created if absent)")
    p.add_argument(
        "--input", required=True, type=Path, help="JSONL: _id or id, text, title?, metadata?"
    )
    _retriever_options(p, default=None, required=False)
    _quiet(p)
    p.set_defaults(run=cmd_index, prf=None)

    p = commands.add_parser("search", help="search a collection")
    p.add_argument("collection", type=Path)
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument(
        "--filter", type=_json_arg, help="metadata filter as JSON, e.g. '{\"year\": 2020}'"
    )
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.set_defaults(run=cmd_search)

    from rag_retrievers.ask import add_ask_arguments

    p = commands.add_parser("ask", help="answer a question from a collection, with citations")
    add_ask_arguments(p)

    p = commands.add_parser("eval", help="evaluate retrieval quality")
    evals = p.add_subparsers(dest="eval_command", required=True, metavar="KIND")
    e = evals.add_parser("retrieval", help="retrieval metrics on a BEIR-layout dataset")
    e.add_argument(
        "--dataset",
        required=True,
        type=Path,
        help="folder with corpus.jsonl, queries.jsonl, qrels/",
    )
    _retriever_options(e, default=None)
    e.add_argument(
        "--prf", help="wrap the retriever in pseudo-relevance feedback: rm3, rocchio, colbert-prf"
    )
    e.add_argument("--split", default="test", help="qrels/<split>.tsv (default test)")
    e.add_argument("--depth", type=int, default=100, help="hits retrieved per query (default 100)")
    e.add_argument("--metrics", default="nDCG@10,Recall@100,MRR@10,MAP", help="comma-separated")
    e.add_argument(
        "--output",
        type=Path,
        help="folder for run.trec and metrics.json (default runs/<dataset>-<retriever>)",
    )
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    from rag_retrievers.evals.cache import add_cache_arguments

    add_cache_arguments(e)
    _quiet(e)
    e.set_defaults(run=cmd_eval_retrieval)
    from rag_retrievers.evals.grid import add_grid_arguments, main_grid

    g = evals.add_parser(
        "grid", help="a grid of retrievers on one dataset: one table, significance vs a baseline"
    )
    add_grid_arguments(g)
    g.set_defaults(run=main_grid)
    from rag_retrievers.evals.tuning import add_tuning_arguments, main_tuning

    t = evals.add_parser(
        "tune-fusion", help="tune a hybrid's RRF k and weights on one split, report on another"
    )
    add_tuning_arguments(t)
    t.set_defaults(run=main_tuning)
    from rag_retrievers.evals.faithfulness.command import add_faithfulness_arguments

    f = evals.add_parser(
        "faithfulness", help="a faithfulness judge against human labels: AUROC, reliability"
    )
    add_faithfulness_arguments(f)
    from rag_retrievers.evals.suite import add_suite_arguments

    s = evals.add_parser(
        "suite", help="run an evaluation suite (TOML) end to end, resumable; write its report"
    )
    add_suite_arguments(s)

    p = commands.add_parser("bench", help="speed and memory, side by side with peer libraries")
    benches = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    b = benches.add_parser("bm25", help="our BM25 vs rank-bm25 and bm25s")
    from rag_retrievers.bench import add_bm25_arguments, main_bm25

    add_bm25_arguments(b)
    b.set_defaults(run=main_bm25)
    b = benches.add_parser(
        "colbert", help="ColBERT index: candidate generation vs exhaustive MaxSim, bytes/token"
    )
    from rag_retrievers.bench.colbert import add_colbert_arguments, main_colbert

    add_colbert_arguments(b)
    b.set_defaults(run=main_colbert)
    b = benches.add_parser(
        "encoders", help="Dense and SPLADE indexing vs the raw sentence-transformers encode"
    )
    from rag_retrievers.bench.encoders import add_encoder_arguments, main_encoders

    add_encoder_arguments(b)
    b.set_defaults(run=main_encoders)
    b = benches.add_parser(
        "scale", help="a million documents: in-process BM25 vs milvus-lite (sparse and dense)"
    )
    from rag_retrievers.bench.scale import add_scale_arguments, main_scale

    add_scale_arguments(b)
    b.set_defaults(run=main_scale)
    b = benches.add_parser(
        "trust", help="reliability: SIGKILLs during saves, manifest bit flips, concurrent opens"
    )
    from rag_retrievers.bench.trust import add_trust_arguments, main_trust

    add_trust_arguments(b)
    b.set_defaults(run=main_trust)
    b = benches.add_parser(
        "contention", help="BM25 search latency alone and under a writer adding all the time"
    )
    from rag_retrievers.bench.contention import add_contention_arguments, main_contention

    add_contention_arguments(b)
    b.set_defaults(run=main_contention)

    p = commands.add_parser(
        "demo", help="index a small built-in corpus, search it, save and reopen it"
    )
    p.add_argument("--dir", help="where to save the demo collection (default: a temporary folder)")
    p.set_defaults(run=lambda args: _demo(args))
    return parser


def _retriever_options(
    p: argparse.ArgumentParser, default: str | None, required: bool = True
) -> None:
    p.add_argument(
        "--retriever",
        default=default,
        required=required,
        help="registered retriever name"
        + ("" if required else " (default: the collection's own, or bm25 for a new one)"),
    )
    p.add_argument(
        "--model",
        help="model short name, local path or Hugging Face id; for hybrid, one name for every "
        "member that takes a model or MEMBER=NAME,... (e.g. dense=minilm,splade=splade-tiny)",
    )
    p.add_argument("--members", help="for --retriever hybrid: comma-separated member names")
    p.add_argument("--fusion", help="for --retriever hybrid: rrf (default) or another fusion")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="retriever option, VALUE as JSON or a plain string, e.g. --param k1=1.2",
    )


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None
    except RecursionError:
        from rag_retrievers.filters import MAX_FILTER_DEPTH

        raise argparse.ArgumentTypeError(
            "JSON nested too deeply to read (a filter nests at most "
            f"{MAX_FILTER_DEPTH} levels of $and/$or)"
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise argparse.ArgumentTypeError(f"not valid JSON: {_one_line(str(exc))}") from None


def _spec(args: argparse.Namespace, name: str) -> RetrieverSpec:
    from rag_retrievers.spec import RetrieverSpec, parse_params

    members = tuple(m.strip() for m in (args.members or "").split(",") if m.strip())
    return RetrieverSpec(
        name=name,
        model=args.model,
        members=members,
        fusion=args.fusion,
        prf=args.prf,
        params=parse_params(args.param),
    )


def _progress(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "quiet", False) else None


# -- commands ----------------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    from rag_retrievers.base import Retriever
    from rag_retrievers.evals.beir import read_corpus
    from rag_retrievers.storage import MANIFEST, check_writable

    documents = read_corpus(args.input)  # every line checked before the collection is touched
    check_writable(args.collection)  # a foreign target fails now, not after indexing
    if (args.collection / MANIFEST).exists():
        retriever = Retriever.open(args.collection)
        if args.retriever not in (None, retriever.name):
            raise InvalidInputError(
                f"{args.collection} is a {retriever.name!r} collection; "
                f"--retriever {args.retriever} cannot add to it"
            )
        if args.param or args.model or args.members or args.fusion:
            raise InvalidInputError(
                "--param, --model, --members and --fusion apply when a collection is created, "
                "not to an existing one"
            )
    else:
        retriever = _spec(args, args.retriever or "bm25").build()
    before = len(retriever)
    began = time.perf_counter()
    retriever.add(documents, show_progress=_progress(args))
    retriever.save(args.collection)
    print(
        f"{args.collection}: {len(retriever)} documents ({len(retriever) - before:+d}) "
        f"with {retriever!r} in {time.perf_counter() - began:.1f}s"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from rag_retrievers.base import Retriever

    retriever = Retriever.open(args.collection)
    hits = retriever.search(args.query, k=args.k, filter=args.filter)
    if args.json:
        print(json.dumps([h.model_dump() for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no hits")
    for hit in hits:
        text = hit.document.text.replace("\n", " ") if hit.document else ""
        print(f"{hit.rank:>3}  {hit.score:9.4f}  {hit.id:<20}  {text[:80]}")
    return 0


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from rag_retrievers.evals.beir import load_beir
    from rag_retrievers.evals.retrieval import evaluate_run, ir_measure, run_queries, write_trec_run

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for metric in metrics:
        ir_measure(metric)  # unknown names fail before any work
    if args.depth < 1:
        raise InvalidInputError(f"--depth must be >= 1, got {args.depth}")
    spec = _spec(args, args.retriever)
    dataset = load_beir(args.dataset, args.split)

    began = time.perf_counter()
    retriever, cached = indexed(spec, dataset, args)
    index_s = time.perf_counter() - began
    run = run_queries(retriever, dataset.queries, k=args.depth, progress=_progress(args))
    search_s = sum(run.latencies.values())
    results = evaluate_run(run.scores(), dataset.qrels, metrics)

    output = args.output or Path("runs") / f"{dataset.name}-{spec.label()}"
    write_trec_run(run.hits, output / "run.trec", tag=spec.label())
    report = {
        "dataset": str(args.dataset),
        "split": args.split,
        "queries": len(dataset.queries),
        "documents": len(dataset.corpus),
        "retriever": repr(retriever),
        "metrics": results,
        "index_seconds": round(index_s, 3),
        "index_from_cache": cached,
        "queries_per_second": round(len(dataset.queries) / search_s, 1) if search_s else None,
    }
    (output / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"dataset    {dataset.name} ({args.split}: {len(dataset.queries)} queries, "
        f"{len(dataset.corpus):,} documents)"
    )
    print(f"retriever  {retriever!r}")
    for name, value in results.items():
        print(f"{name} {value:.4f}")
    qps = report["queries_per_second"]
    if cached:
        print(f"index opened from the cache in {index_s:.1f}s (--no-cache to rebuild)")
    print(f"index {index_s:.1f}s, {qps} queries/s; run and metrics in {output}")
    return 0


def indexed(
    spec: RetrieverSpec, dataset: BeirDataset, args: argparse.Namespace
) -> tuple[Retriever, bool]:
    """The dataset's corpus indexed by ``spec``, through the index cache the options name."""
    from rag_retrievers.evals.cache import indexed_retriever

    cache = None if args.no_cache else args.cache
    return indexed_retriever(spec, dataset, args.dataset, cache, progress=_progress(args))


def _demo(args: argparse.Namespace) -> int:
    from rag_retrievers.demo import run_demo

    return run_demo(args.dir)


if __name__ == "__main__":
    raise SystemExit(main())
