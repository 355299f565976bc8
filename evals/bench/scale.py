"""``rag-retrievers bench scale``: a million documents: in-process BM25, milvus-lite and a Milvus
server.

The corpus (:mod:`~rag_retrievers.evals.bench.scale_corpus`): the 18,094 documents of scifact,
vaswani_npl, cranfield and adi repeated as near-duplicate copies until ``--docs``; queries: a
fixed sample of their test queries. Systems (:mod:`~rag_retrievers.evals.bench.scale_systems`),
each built and timed in its own fresh process:

- ``bm25``: our in-process :class:`~rag_retrievers.adapters.bm25.BM25` (sparse matrix index).
- ``milvus-bm25``: the same BM25 (our analyzer, Lucene idf and tf, k1 0.9, b 0.4) as sparse
  vectors in milvus-lite: document vectors hold the length-normalised tf part with the final
  avgdl (a first pass over the corpus counts lengths and document frequencies), queries hold
  count x idf. This process keeps only the statistics, not an index.
- ``milvus-dense``: 256-dimensional random-projection vectors (hashed bag of words times a seeded
  random +-1 matrix, L2-normalised) in a milvus-lite ``FLAT`` field. Not a semantic model:
  encoding a million documents with MiniLM on 2 CPU cores would take hours, so this measures
  the engine with vectors of the real dimension class only.
- ``milvus-server-dense``, ``milvus-server-hnsw``: the same vectors on a Milvus standalone
  server the worker starts and stops (``FLAT``; ``HNSW`` built with ``--hnsw`` and timed at each
  ``ef`` of ``--hnsw-ef``), see :mod:`~rag_retrievers.evals.bench.scale_server`. Not run unless
  named in ``--systems``.

Figures: build s (indexing and a first query: our sparse index weights its postings, and
milvus-lite flushes and builds its index, on the first search; for milvus-bm25 also the
statistics pass; for the server, until every row is indexed and loaded), peak RSS MiB of the
worker process above its RSS before building, the server's peak RSS (its process group,
sampled every 0.5 s), on-disk MiB (the saved collection; the milvus-lite or server data folder),
per-query latency p50/p99 with 1 and 2 client threads (k=10; analysis or encoding of the query
and result records included, but for the server systems, whose query vectors are encoded before
timing) and, for the dense systems, recall@10 against exact inner-product search over the
same vectors (computed by the worker in numpy), by id and counting ties at the 10th score.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from rag_retrievers.evals.bench.scale_corpus import SOURCES, benchmark_queries
from rag_retrievers.evals.bench.scale_server import SERVER_SYSTEMS, recall_against
from rag_retrievers.evals.bench.scale_systems import BUILDERS, LITE_SYSTEMS
from rag_retrievers.evals.bench.servers import rss_mib

SYSTEMS = tuple(BUILDERS)
#: what runs when --systems is not given (the server systems need the `milvus` package)
DEFAULT_SYSTEMS = ("bm25", "milvus-bm25", "milvus-dense")
T = TypeVar("T")


# -- measuring ---------------------------------------------------------------------------------


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _latencies(
    search: Callable[[str], T], queries: list[str], threads: int
) -> tuple[list[float], list[T]]:
    """Milliseconds per query and each query's hits."""

    def timed(query: str) -> tuple[float, T]:
        start = time.perf_counter()
        hits = search(query)
        return (time.perf_counter() - start) * 1000, hits

    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(timed, queries))
    return [ms for ms, _ in done], [hits for _, hits in done]


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _timed(
    search: Callable[[str], list[tuple[str, float]]],
    queries: list[str],
    exact: list[list[tuple[str, float]]] | None,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for threads in (1, 2):
        latencies, found = _latencies(search, queries, threads)
        figures[f"p50_ms_{threads}t"] = _percentile(latencies, 50)
        figures[f"p99_ms_{threads}t"] = _percentile(latencies, 99)
        if exact is not None and threads == 1:
            figures["recall_at_10"], figures["tie_recall_at_10"] = recall_against(found, exact)
    return figures


def run_system(
    system: str, data: Path, n_docs: int, queries: list[str], **options: Any
) -> list[dict[str, Any]]:
    """Build ``system`` over ``n_docs`` documents and time ``queries`` (in this process): one
    result per search setting."""
    with tempfile.TemporaryDirectory(prefix="rag-retrievers-scale-") as tmp:
        before = rss_mib(os.getpid())
        start = time.perf_counter()
        built = BUILDERS[system](data, n_docs, Path(tmp), queries, **options)
        try:
            built.search("warm up the index")  # milvus-lite flushes and builds it on first search
            base: dict[str, Any] = {
                "system": system,
                "docs": n_docs,
                "queries": len(queries),
                "build_s": time.perf_counter() - start,
                "disk_mib": built.disk_mib(),
            }
            settings = built.searches or {"": built.search}
            results = []
            for setting, search in settings.items():
                results.append({**base, "search": setting, **_timed(search, queries, built.exact)})
            peak = _peak_mib() - before
            server = built.server_peak() if built.server_peak else None
            for result in results:
                result["peak_mib"], result["server_peak_mib"] = peak, server
        finally:
            built.close()
    return results


# -- the command -------------------------------------------------------------------------------


def _hnsw_parameters(text: str) -> dict[str, int]:
    """``M=16,efConstruction=200`` as a mapping (checked by :class:`MilvusIndex`)."""
    from rag_retrievers.engines.milvus_index import MilvusIndex
    from rag_retrievers.errors import InvalidInputError

    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(f"expected NAME=INT pairs, got {part!r}")
        out[name.strip()] = int(value)
    if "ef" in out:
        raise argparse.ArgumentTypeError("ef is a search setting: give it with --hnsw-ef")
    try:
        MilvusIndex.coerce({"type": "HNSW", **out})
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return out


def _positive_ints(text: str) -> list[int]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or not all(v.isdigit() and int(v) > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return [int(v) for v in values]


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        metavar="DIR",
        help="folder holding scifact/, vaswani_npl/, cranfield/ and adi/ (default: %(default)s)",
    )
    parser.add_argument(
        "--docs",
        type=int,
        default=1_000_000,
        metavar="N",
        help="corpus size (default: %(default)s)",
    )
    parser.add_argument(
        "--milvus-docs",
        type=int,
        default=None,
        metavar="N",
        help="corpus size for the milvus-lite systems (default: --docs)",
    )
    parser.add_argument(
        "--queries", type=int, default=200, metavar="N", help="queries timed (default: %(default)s)"
    )
    parser.add_argument(
        "--milvus-queries",
        type=int,
        default=None,
        metavar="N",
        help="queries timed on the milvus-lite systems (default: --queries)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        metavar="LIST",
        help=f"comma-separated, of {', '.join(SYSTEMS)} (default: %(default)s; the server "
        "systems start `milvus-server`, from the `milvus` package)",
    )
    parser.add_argument(
        "--hnsw",
        type=_hnsw_parameters,
        default={},
        metavar="PARAMS",
        help="milvus-server-hnsw's build parameters, e.g. M=16,efConstruction=200 "
        "(default: MilvusIndex's)",
    )
    parser.add_argument(
        "--hnsw-ef",
        type=_positive_ints,
        default=[64],
        metavar="LIST",
        help="milvus-server-hnsw: the ef of each search setting timed, e.g. 32,64,128 "
        "(default: 64)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(results: list[dict[str, Any]]) -> str:
    header = (
        "| system | search | docs | queries | build s | peak Δ MiB | server peak MiB "
        "| on disk MiB | p50 ms 1t | p99 ms 1t | p50 ms 2t | p99 ms 2t | recall@10 (ties) |"
    )
    lines = [header, "|" + "---|" * 13]
    for r in results:
        recall = (
            f"{r['recall_at_10']:.4f} ({r['tie_recall_at_10']:.4f})" if "recall_at_10" in r else "-"
        )
        lines.append(
            f"| {r['system']} | {r.get('search') or '-'} | {r['docs']:,} | {r['queries']} | "
            f"{r['build_s']:,.1f} | {r['peak_mib']:,.0f} | "
            f"{_cell(r.get('server_peak_mib'), ',.0f')} | {r['disk_mib']:,.0f} | "
            f"{r['p50_ms_1t']:,.2f} | {r['p99_ms_1t']:,.2f} | {r['p50_ms_2t']:,.2f} | "
            f"{r['p99_ms_2t']:,.2f} | {recall} |"
        )
    return "\n".join(lines)


def main_scale(args: argparse.Namespace) -> int:
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in BUILDERS]
    if unknown:
        print(f"unknown system {unknown[0]!r}; valid: {', '.join(SYSTEMS)}", file=sys.stderr)
        return 2
    for name in SOURCES:
        if not (args.data / name / "corpus.jsonl").is_file():
            print(f"{args.data / name}/corpus.jsonl not found: pass --data DIR", file=sys.stderr)
            return 2
    if any(s in SERVER_SYSTEMS for s in systems):
        from rag_retrievers.evals.bench.servers import milvus_server_executable

        if milvus_server_executable() is None:
            print(
                "the server systems need `milvus-server`: pip install 'milvus>=2.3.5'",
                file=sys.stderr,
            )
            return 2
    results = []
    for system in systems:
        lite = system in LITE_SYSTEMS
        n_docs = (args.milvus_docs or args.docs) if lite else args.docs
        n_queries = (args.milvus_queries or args.queries) if lite else args.queries
        spec = {
            "system": system,
            "data": str(args.data),
            "docs": n_docs,
            "queries": n_queries,
            "hnsw": args.hnsw,
            "hnsw_efs": args.hnsw_ef,
        }
        # a fresh process per system: peak memory and imports are its own
        done = subprocess.run(
            [sys.executable, "-m", "rag_retrievers.evals.bench.scale", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            print(f"{system} failed:\n{done.stderr[-4000:]}", file=sys.stderr)
            return 1
        results.extend(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{system}: done", file=sys.stderr)
    print(json.dumps(results, indent=2) if args.json else format_table(results))
    return 0


def _worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    data = Path(spec["data"])
    queries = benchmark_queries(data, spec["queries"])
    results = run_system(
        spec["system"],
        data,
        spec["docs"],
        queries,
        hnsw=spec.get("hnsw"),
        hnsw_efs=spec.get("hnsw_efs"),
    )
    print(json.dumps(results))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _worker(sys.argv[1])
