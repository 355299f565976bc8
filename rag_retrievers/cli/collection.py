"""``rag-retrievers index`` and ``rag-retrievers search``: a collection on disk, built and
searched."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_retrievers.cli.options import (
    json_arg,
    progress_from_args,
    quiet_option,
    retriever_options,
    spec_from_args,
)
from rag_retrievers.errors import InvalidInputError

if TYPE_CHECKING:
    from rag_retrievers.base import Retriever


def add_index_arguments(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    p.add_argument("collection", type=Path, help="collection directory (created if absent)")
    p.add_argument(
        "--input",
        required=True,
        type=Path,
        nargs="+",
        metavar="PATH",
        help="a folder of documents (PDF, HTML, Markdown, text, JSONL; run again, only changed "
        "files are re-read), document files, a JSONL file (_id or id, text, title?, metadata?) "
        "or a BEIR folder (corpus.jsonl)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        help="for documents: chunk length in the model's tokens (words for bm25); default: what "
        "the model reads, 128 words for bm25, or the collection's own",
    )
    p.add_argument(
        "--chunk-overlap", type=int, help="for documents: tokens (words) two chunks share"
    )
    retriever_options(p, default=None, required=False)
    quiet_option(p)
    p.set_defaults(run=cmd_index, prf=None)


def add_search_arguments(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    p.add_argument("collection", type=Path)
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument(
        "--filter", type=json_arg, help="metadata filter as JSON, e.g. '{\"year\": 2020}'"
    )
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.set_defaults(run=cmd_search)


def cmd_index(args: argparse.Namespace) -> int:
    from rag_retrievers.index.storage import check_writable

    check_writable(args.collection)  # a foreign target fails now, not after indexing
    inputs: list[Path] = args.input
    corpus = _jsonl_corpus(inputs)
    if corpus is None:
        return _index_documents(args, inputs)
    if args.chunk_size is not None or args.chunk_overlap is not None:
        raise InvalidInputError(
            "--chunk-size and --chunk-overlap apply to folders and document files, not to a "
            "JSONL corpus (its records are indexed as they are)"
        )
    from rag_retrievers.evals.beir import read_corpus

    documents = read_corpus(corpus)  # every line checked before the collection is touched
    retriever = _retriever(args)
    before = len(retriever)
    began = time.perf_counter()
    retriever.add(documents, show_progress=progress_from_args(args))
    retriever.save(args.collection)
    print(
        f"{args.collection}: {len(retriever)} documents ({len(retriever) - before:+d}) "
        f"with {retriever!r} in {time.perf_counter() - began:.1f}s"
    )
    return 0


def _jsonl_corpus(inputs: list[Path]) -> Path | None:
    """The JSONL file to index as it is (one ``--input``: a file that is not a document type,
    or a BEIR folder), or ``None`` for documents to load and chunk."""
    from rag_retrievers.ingest.loaders import supported

    if len(inputs) != 1:
        return None
    (path,) = inputs
    if path.is_dir():
        beir = (path / "corpus.jsonl").is_file() and (
            (path / "queries.jsonl").is_file() or (path / "qrels").is_dir()
        )
        return path / "corpus.jsonl" if beir else None
    if path.suffix.lower() == ".jsonl" or not supported(path):
        return path
    return None


def _retriever(args: argparse.Namespace) -> Retriever:
    """The collection's retriever, opened; or a new one built from the options."""
    from rag_retrievers.base import Retriever
    from rag_retrievers.index.storage import MANIFEST

    if not (args.collection / MANIFEST).exists():
        return spec_from_args(args, args.retriever or "bm25").build()
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
    return retriever


def _index_documents(args: argparse.Namespace, inputs: list[Path]) -> int:
    """Load, chunk and index a folder (kept in step: changed files re-read, vanished ones
    deleted) or document files (brought in step one by one)."""
    from rag_retrievers.ingest.loaders import source_name, supported
    from rag_retrievers.ingest.sync import sync_files, sync_folder

    folders = [path for path in inputs if path.is_dir()]
    if folders and len(inputs) > 1:
        raise InvalidInputError("--input takes one folder, or document files, not both")
    if not folders:
        for path in inputs:
            if not path.is_file():
                raise InvalidInputError(f"--input {path}: no such file or folder")
            if not supported(path):
                raise InvalidInputError(
                    f"--input {path}: not a document type (a JSONL corpus is indexed alone)"
                )
    retriever = _retriever(args)
    began = time.perf_counter()
    options: dict[str, Any] = {
        "retriever": retriever,
        "chunk_size": args.chunk_size,
        "chunk_overlap": args.chunk_overlap,
        "show_progress": progress_from_args(args),
        "on_failure": lambda failure: print(f"rag-retrievers: {failure}", file=sys.stderr),
    }
    if folders:
        report = sync_folder(folders[0], args.collection, **options)
    else:
        files = [(source_name(path, path.parent), path) for path in inputs]
        report = sync_files(files, args.collection, **options)
    if report.reread:
        print(f"rag-retrievers: every file was re-read: {report.reread}", file=sys.stderr)
    print(
        f"{args.collection}: {report.summary()}, with {retriever!r} "
        f"in {time.perf_counter() - began:.1f}s"
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
