"""The ``rag-retrievers`` command line: index, search, ask, eval, bench, demo.

A lazy command table: every command is listed (name, module, help) without importing it, and
only the module of the command being run is imported and builds its options; ``eval`` and
``bench`` do the same for their kinds. ``rag-retrievers search COL q`` imports no evaluation
or benchmark code.

Errors a user can cause print one line, ``rag-retrievers: error: ...``, and exit with code 2;
input is read and checked in full before a saved collection is touched.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence

from rag_retrievers.errors import RagRetrieversError

EXIT_USAGE = 2

#: a command's options: ``add(parser, rest)``, ``rest`` being the arguments after its name
AddArguments = Callable[[argparse.ArgumentParser, Sequence[str]], None]

#: command -> ("module:function" that adds its options and sets ``run``, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "index": (
        "rag_retrievers.cli.collection:add_index_arguments",
        "add a folder of documents (kept in step) or a JSONL file to a collection",
    ),
    "search": ("rag_retrievers.cli.collection:add_search_arguments", "search a collection"),
    "ask": (
        "rag_retrievers.cli.ask:add_arguments",
        "answer a question from a collection, with citations",
    ),
    "eval": ("rag_retrievers.cli.eval:add_arguments", "evaluate retrieval quality"),
    "bench": (
        "rag_retrievers.cli.bench:add_arguments",
        "speed and memory, side by side with peer libraries",
    ),
    "demo": (
        "rag_retrievers.cli.demo:add_arguments",
        "index a small built-in corpus, search it, save and reopen it",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    from rag_retrievers.records import validation_message

    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    try:
        return int(args.run(args) or 0)
    except (RagRetrieversError, OSError) as exc:
        message = one_line(str(exc)) or type(exc).__name__
        print(f"rag-retrievers: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:  # a record built from the user's input
        print(f"rag-retrievers: error: {one_line(validation_message(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rag-retrievers: interrupted; saved collections are unchanged", file=sys.stderr)
        return 130


def one_line(message: str) -> str:
    """An error message on one line: its lines joined with "; ", blank ones dropped."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command listed, the options of the one ``argv`` names."""
    parser = argparse.ArgumentParser(
        prog="rag-retrievers", description="Pluggable retrievers for RAG, and their evaluation."
    )
    add_lazy_commands(parser, COMMANDS, argv, dest="command", metavar="COMMAND")
    return parser


def add_lazy_commands(
    parser: argparse.ArgumentParser,
    table: Mapping[str, tuple[str, str]],
    argv: Sequence[str],
    *,
    dest: str,
    metavar: str,
) -> None:
    """Sub-commands from ``table``; only the one named first in ``argv`` imports its module."""
    commands = parser.add_subparsers(dest=dest, required=True, metavar=metavar)
    chosen = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    for name, (target, help_text) in table.items():
        sub = commands.add_parser(name, help=help_text)
        if chosen is not None and argv[chosen] == name:
            module, _, function = target.partition(":")
            add: AddArguments = getattr(importlib.import_module(module), function)
            add(sub, argv[chosen + 1 :])
