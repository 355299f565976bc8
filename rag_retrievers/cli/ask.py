"""``rag-retrievers ask``: its options (the command itself is :mod:`rag_retrievers.app.ask`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_arguments(parser: argparse.ArgumentParser, rest: Sequence[str]) -> None:
    from rag_retrievers.app.ask import add_ask_arguments

    add_ask_arguments(parser)
