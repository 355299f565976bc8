"""``rag-retrievers ask COLLECTION "question"``: answer from a saved collection with citations.

Nothing it prints holds a secret: the generator's repr in ``--json`` and every error message go
through :func:`~rag_retrievers.generators.redact.redact_text` with the API key. Text that comes
from documents or the model is printed without control characters, so neither can rewrite the
terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from rag_retrievers.app.citations import cited_sources
from rag_retrievers.errors import InvalidInputError, RagRetrieversError
from rag_retrievers.records import Answer

API_KEY_ENV = "OPENAI_API_KEY"
# C0/C1 control characters (terminal escapes...) but tab and newline, and the bidirectional
# overrides that make text display in another order than it reads
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def add_ask_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", type=Path, help="a saved collection directory")
    p.add_argument("question")
    p.add_argument(
        "--generator",
        help="a generator name (extractive, llama-cpp, openai, langchain), an OpenAI-compatible "
        f"server URL (MODEL@URL names the model; the key comes from ${API_KEY_ENV}), a .gguf path "
        "or a GGUF short name (smollm2: SmolLM2-135M-Instruct through llama.cpp); default: "
        "extractive, which quotes the retrieved sentences that best answer, with citations",
    )
    p.add_argument("-k", type=int, default=5, help="passages retrieved (default 5)")
    p.add_argument(
        "--max-context-tokens",
        type=int,
        default=1024,
        help="token budget for the passages (default 1024)",
    )
    p.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    p.add_argument(
        "--min-score", type=float, help="answer 'not found' unless a hit scores at least this"
    )
    p.add_argument(
        "--keep-uncited",
        action="store_true",
        help="print an answer that cites no passage (default: 'not found in the documents')",
    )
    p.add_argument("--filter", type=_json_arg, help="metadata filter as JSON")
    p.add_argument("--timeout", type=float, help="seconds before generation gives up")
    p.add_argument("--threads", type=int, help="CPU threads for a local GGUF model")
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    p.add_argument("--json", action="store_true", help="print the answer and its contexts as JSON")
    p.set_defaults(run=main_ask)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None


def _generator(args: argparse.Namespace) -> Any:
    from rag_retrievers.generators import resolve_generator

    options: dict[str, Any] = {}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.threads is not None:
        options["n_threads"] = args.threads
    try:
        return resolve_generator(args.generator, **options)
    except TypeError as exc:  # an option the chosen backend does not take
        hint = " (--threads applies to a local GGUF model only)" if args.threads else ""
        raise InvalidInputError(f"--generator {redact(args.generator)}: {exc}{hint}") from None


def redact(text: str) -> str:
    """``text`` with the API key and any credentials masked."""
    from rag_retrievers.generators.redact import redact_text

    return redact_text(text, [os.environ.get(API_KEY_ENV)])


def printable(text: str) -> str:
    """``text`` without control characters but tab and newline.

    >>> printable("red \\x1b[31mtext\\x1b[0m")
    'red [31mtext[0m'
    """
    return _UNPRINTABLE.sub("", text)


def main_ask(args: argparse.Namespace) -> int:
    try:
        return _ask(args)
    except RagRetrieversError as exc:
        message = redact(str(exc))
        if message != str(exc):  # the CLI prints str(exc)
            exc.args = (message,)
        raise


def _ask(args: argparse.Namespace) -> int:
    from rag_retrievers.app.rag import RAG
    from rag_retrievers.base import Retriever
    from rag_retrievers.errors import check_query

    check_query(args.question)
    retriever = Retriever.open(args.collection)
    params = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}
    rag = RAG(
        retriever,
        _generator(args),
        k=args.k,
        max_context_tokens=args.max_context_tokens,
        min_score=args.min_score,
        require_citations=not args.keep_uncited,
        filter=args.filter,
        generate_params=params,
    )
    if args.stream and not args.json:
        streamed = rag.stream(args.question)
        for piece in streamed:
            print(printable(piece), end="", flush=True)
        print()
        answer = streamed.answer
    else:
        answer = rag.ask(args.question)
    if args.json:
        report = {"question": args.question, "generator": redact(repr(rag.generator))}
        report.update(answer.model_dump())
        report["citation_numbers"] = citation_numbers(answer)
        report["sources"] = [source.to_json() for source in cited_sources(answer)]
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    if not args.stream:
        print(printable(answer.text))
    print_citations(answer)
    return 0


def citation_numbers(answer: Answer) -> dict[str, int]:
    """Each cited id's passage number, as the model saw it."""
    numbers = {hit.id: i for i, hit in enumerate(answer.contexts, 1)}
    return {doc_id: numbers[doc_id] for doc_id in answer.citations if doc_id in numbers}


def print_citations(answer: Answer, file: Any = None) -> None:
    """Print ``[n] where  text...`` for every cited passage, ``where`` being its file and page
    or heading path (``guide.pdf p. 3``), or its id."""
    out = file or sys.stdout
    if not answer.citations:
        print("\n(no citations)", file=out)
        return
    texts = {hit.id: hit.document.text if hit.document else "" for hit in answer.contexts}
    how = " (by word overlap: the model wrote no [n])" if answer.citations_from == "overlap" else ""
    print(f"\nCitations{how}:", file=out)
    for source in cited_sources(answer):
        snippet = printable(" ".join(texts[source.id].split()))
        snippet = snippet[:77] + "..." if len(snippet) > 80 else snippet
        label = printable(" ".join(source.label.split()))
        print(f"  [{source.number}] {label}  {snippet}", file=out)
