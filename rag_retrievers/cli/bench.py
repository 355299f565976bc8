"""``rag-retrievers bench WHAT``: only the benchmark being run is imported."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from rag_retrievers.cli import add_lazy_commands

_BENCH = "rag_retrievers.evals.bench"

#: benchmark -> ("module:function" adding its options, help); the module's ``main_<what>`` runs it
BENCHES: dict[str, tuple[str, str]] = {
    "bm25": (f"{_BENCH}.command:add_bm25_arguments", "our BM25 vs rank-bm25 and bm25s"),
    "colbert": (
        f"{_BENCH}.colbert:add_colbert_arguments",
        "ColBERT index: candidate generation vs exhaustive MaxSim, bytes/token",
    ),
    "encoders": (
        f"{_BENCH}.encoders:add_encoder_arguments",
        "Dense and SPLADE indexing vs the raw sentence-transformers encode",
    ),
    "scale": (
        f"{_BENCH}.scale:add_scale_arguments",
        "a million documents: in-process BM25 vs milvus-lite (sparse and dense)",
    ),
    "sparse": (
        f"{_BENCH}.sparse:add_sparse_arguments",
        "learned sparse at a million documents: exact vs approximate vs pyseismic-lsr",
    ),
    "trust": (
        f"{_BENCH}.trust:add_trust_arguments",
        "reliability: SIGKILLs during saves, manifest bit flips, concurrent opens",
    ),
    "contention": (
        f"{_BENCH}.contention:add_contention_arguments",
        "BM25 search latency alone and under a writer adding all the time",
    ),
}


def add_arguments(parser: argparse.ArgumentParser, rest: Sequence[str]) -> None:
    table = {
        name: (f"{__name__}:add_{name}", help_text) for name, (_, help_text) in BENCHES.items()
    }
    add_lazy_commands(parser, table, rest, dest="bench_command", metavar="WHAT")


def _add(name: str, parser: argparse.ArgumentParser) -> None:
    module_name, _, function = BENCHES[name][0].partition(":")
    module = importlib.import_module(module_name)
    getattr(module, function)(parser)
    parser.set_defaults(run=getattr(module, f"main_{name}"))


def add_bm25(parser: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    _add("bm25", parser)


def add_colbert(parser: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    _add("colbert", parser)


def add_encoders(parser: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    _add("encoders", parser)


def add_scale(parser: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    _add("scale", parser)


def add_sparse(parser: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    _add("sparse", parser)


def add_trust(parser: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    _add("trust", parser)


def add_contention(parser: argparse.ArgumentParser, rest: Sequence[str] = ()) -> None:
    _add("contention", parser)
