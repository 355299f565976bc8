"""``rag-retrievers index`` and ``rag-retrievers search``: a collection on disk, built and
searched."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from rag_retrievers.cli.options import (
    json_arg,
    progress_from_args,
    quiet_option,
    retriever_options,
    spec_from_args,
)
from rag_retrievers.errors import InvalidInputError


def add_index_arguments(p: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    p.add_argument("collection", type=Path, help="collection directory (created if absent)")
    p.add_argument(
        "--input", required=True, type=Path, help="JSONL: _id or id, text, title?, metadata?"
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
    from rag_retrievers.base import Retriever
    from rag_retrievers.evals.beir import read_corpus
    from rag_retrievers.index.storage import MANIFEST, check_writable

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
        retriever = spec_from_args(args, args.retriever or "bm25").build()
    before = len(retriever)
    began = time.perf_counter()
    retriever.add(documents, show_progress=progress_from_args(args))
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
