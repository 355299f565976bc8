"""``python -m rag_retrievers.evals.bench``: the benchmark, or with ``--worker SPEC`` one worker."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rag_retrievers.evals.bench.command import add_bm25_arguments, main_bm25
from rag_retrievers.evals.bench.worker import worker_main

from rag_retrievers.errors import InvalidInputError, MissingDependencyError


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rag_retrievers.evals.bench [options]``, the same as ``rag-retrievers bench
    bm25``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"] and len(argv) == 2:
        return worker_main(argv[1])
    parser = argparse.ArgumentParser(
        prog="python -m rag_retrievers.evals.bench",
        description="Benchmark BM25: ours vs bm25s vs rank-bm25.",
    )
    add_bm25_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return main_bm25(args)
    except (InvalidInputError, MissingDependencyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
