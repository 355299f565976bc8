"""``rag-retrievers demo``: index a small built-in corpus, search it, save and reopen it."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_arguments(parser: argparse.ArgumentParser, rest: Sequence[str]) -> None:
    parser.add_argument(
        "--dir", help="where to save the demo collection (default: a temporary folder)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rag_retrievers.app.demo import run_demo

    return run_demo(args.dir)
