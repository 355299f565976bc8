"""``rag-retrievers bench sparse``: learned-sparse search at scale, exact vs approximate vs Seismic.

The corpus is the scale corpus (:mod:`~rag_retrievers.evals.bench.scale`) as SPLADE vectors
(:mod:`~rag_retrievers.evals.bench.sparse_corpus`): the 18,094 source documents are encoded once
with ``--model`` (cached by content under ``--cache``), the ``--docs`` collection is built from
their vectors by the scale corpus's rule. Queries: the scale bench's fixed sample, encoded by the
same model.

Three systems index the same vectors, in one process, and answer the same queries:

- ``exact``: our :class:`~rag_retrievers.index.sparse.SparseIndex` (what ``Splade()`` searches),
  the reference for recall;
- ``approximate``: our :class:`~rag_retrievers.index.sparse_approx.ApproximateIndex` (what
  ``Splade(search="approximate")`` searches), built over the exact index;
- ``seismic``: ``pyseismic-lsr``'s ``SeismicIndex`` where installed, built with one thread and
  the same settings (``n_postings``, an average per list under a global value threshold, capped
  at 1.5x per list: ours prunes by the same rule).

Figures: build s (from vectors in memory to a searchable index; ours includes the forward index
it builds from the exact index), held MiB (the process's RSS after the build minus before, after
garbage collection), latency p50/p99 of one query per call with k=10 (query vectors encoded
beforehand; each system's own query form built inside the timing), the same in CPU time, and
recall@10 against exact: by row ids, and counting any row whose exact score reaches exact
search's 10th as a hit (the corpus's copies tie often, and exact search breaks ties by row
number, which no approximate method sees). Queries are timed round robin across the systems,
so a busy machine slows all of them alike; the load average is printed with the table.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rag_retrievers.evals.bench.report import markdown_table
from rag_retrievers.evals.bench.stats import percentile
from rag_retrievers.evals.output import add_json_file_arguments, stderr_logger, write_json_report

from rag_retrievers.errors import InvalidInputError

K = 10
SYSTEMS = ("exact", "approximate", "seismic")
DEFAULT_CACHE = Path("runs") / "splade-vectors"
_LABELS = {
    "exact": "exact (SparseIndex)",
    "approximate": "approximate (ours)",
    "seismic": "pyseismic-lsr",
}


def add_sparse_arguments(parser: argparse.ArgumentParser) -> None:
    from rag_retrievers.index.sparse_blocks import ApproximateSearch

    defaults = ApproximateSearch()
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), metavar="DIR",
        help="folder holding scifact/, vaswani_npl/, cranfield/ and adi/ (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--docs", type=int, default=1_000_000, metavar="N",
        help="collection size (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--queries", type=int, default=200, metavar="N", help="queries timed (default: %(default)s)"
    )  # fmt: skip
    parser.add_argument(
        "--model", default="splade-tiny", help="SPLADE model (default: %(default)s)"
    )
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR",
        help="folder for the source documents' vectors (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--no-cache", action="store_true", help="encode the sources again")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), metavar="LIST",
        help=f"comma-separated, of {', '.join(SYSTEMS)} (default: all; seismic where installed)",
    )  # fmt: skip
    for name, kind in (
        ("postings", int),
        ("block_fraction", float),
        ("summary_energy", float),
        ("query_terms", int),
        ("heap_factor", float),
    ):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name),
            help="approximate search setting, ours and Seismic's (default: %(default)s)",
        )  # fmt: skip
    add_json_file_arguments(parser)


# -- the systems -------------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _measured(build: Callable[[], Any]) -> tuple[Any, float, float]:
    """What ``build()`` returns, its wall seconds and the RSS it left held (MiB)."""
    gc.collect()
    before = _rss_mib()
    began = time.perf_counter()
    built = build()
    seconds = time.perf_counter() - began
    gc.collect()
    return built, seconds, _rss_mib() - before


def build_systems(
    names: list[str], vectors: Any, terms: list[str], args: argparse.Namespace
) -> tuple[dict[str, dict[str, Any]], Callable[[dict[str, Any]], Any]]:
    """Each system of ``names`` built over ``vectors`` (CSR, columns named by ``terms``): its
    search function (query -> row numbers, best first) and build figures; and the exact search,
    the reference (built whether timed or not: the approximate index is built over it)."""
    from rag_retrievers.index.sparse import SparseIndex
    from rag_retrievers.index.sparse_approx import ApproximateIndex
    from rag_retrievers.index.sparse_blocks import ApproximateSearch

    settings = ApproximateSearch(
        postings=args.postings,
        block_fraction=args.block_fraction,
        summary_energy=args.summary_energy,
        query_terms=args.query_terms,
        heap_factor=args.heap_factor,
        min_documents=0,
    )
    systems: dict[str, dict[str, Any]] = {}
    n_rows = vectors.shape[0]
    if "seismic" in names:
        seismic, seconds, held = _measured(lambda: _build_seismic(vectors, settings))
        systems["seismic"] = {
            "search": lambda q: _search_seismic(seismic, q, settings),
            "build_s": seconds,
            "held_mib": held,
        }
    index: SparseIndex
    index, seconds, held = _measured(lambda: _exact(vectors, terms))
    if "exact" in names:
        systems["exact"] = {
            "search": lambda q: index.search(q["weights"], K)[0],
            "build_s": seconds,
            "held_mib": held,
        }
    if "approximate" in names:
        approximate = ApproximateIndex(index, settings)
        _, seconds, held = _measured(approximate.prepare)
        fallbacks = [0]

        def search(q: dict[str, Any]) -> np.ndarray:
            found = approximate.search(q["weights"], K, None, n_rows)
            if found is None:  # as Splade does: the exact index answers
                fallbacks[0] += 1
                return index.search(q["weights"], K)[0]
            return found[0]

        blocks = approximate.blocks
        assert blocks is not None
        systems["approximate"] = {
            "search": search,
            "build_s": seconds,
            "held_mib": held,
            "fallbacks": fallbacks,
            "blocks": len(blocks.block_starts) - 1,
            "postings": len(blocks.rows),
            "summary_entries": len(blocks.entry_blocks),
        }
    return systems, lambda q: index.search(q["weights"], K)[0]


def _exact(vectors: Any, terms: list[str]) -> Any:
    from rag_retrievers.index.sparse import SparseIndex

    index = SparseIndex()
    index.add_matrix(vectors, terms)
    index.search({terms[int(vectors.indices[0])]: 1.0}, K)  # weights the postings once
    return index


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 sent to stderr inside the block: Seismic's build prints its progress
    to stdout, where this command's table (or a test's capture) goes."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _build_seismic(vectors: Any, settings: Any) -> Any:
    seismic = importlib.import_module("seismic")

    dataset = seismic.SeismicDataset(dim=vectors.shape[1])
    dataset.add_documents_by_id(
        [str(i) for i in range(vectors.shape[0])],
        vectors.indices.astype(np.int64),
        vectors.data.astype(np.float32),
        vectors.indptr.astype(np.int64),
    )
    with _stdout_to_stderr():
        return seismic.SeismicIndex.build_from_dataset(
            dataset,
            n_postings=settings.postings,
            centroid_fraction=settings.block_fraction,
            summary_energy=settings.summary_energy,
            num_threads=1,
        )


def _search_seismic(index: Any, q: dict[str, Any], settings: Any) -> list[int]:
    seismic = importlib.import_module("seismic")

    components = np.asarray([str(c) for c in q["ids"]], dtype=seismic.get_seismic_string())
    found = index.search(
        "q", components, q["values"], K, query_cut=settings.query_terms,
        heap_factor=settings.heap_factor,
    )  # fmt: skip
    return [int(doc) for _, _, doc in found]


# -- the run -----------------------------------------------------------------------------------


def run_bench(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    from rag_retrievers.evals.bench.scale_corpus import SOURCES, base_documents, benchmark_queries
    from rag_retrievers.evals.bench.sparse_corpus import collection, encoding_seconds, load_sources

    from rag_retrievers.encoders.sparse import SpladeEncoder

    names = _check_options(args, SOURCES)
    load_start = os.getloadavg()
    encoder = SpladeEncoder(args.model)
    documents = base_documents(args.data)
    cache = None if args.no_cache else args.cache
    began = time.perf_counter()
    sources = load_sources(encoder, documents, cache, log)
    encode_s = time.perf_counter() - began
    recorded = encoding_seconds(encoder, [t for _, t in documents], cache) if cache else None
    began = time.perf_counter()
    vectors, _ = collection(sources, args.docs)
    collection_s = time.perf_counter() - began
    del sources
    log(f"collection: {vectors.shape[0]:,} documents, {vectors.nnz:,} entries")
    texts = benchmark_queries(args.data, args.queries)
    term_ids = {t: i for i, t in enumerate(encoder.terms)}
    queries: list[dict[str, Any]] = []
    for weights in encoder.encode_queries(texts):
        ids = np.asarray(sorted(term_ids[t] for t in weights), dtype=np.int64)
        values = np.asarray([weights[encoder.terms[i]] for i in ids], dtype=np.float32)
        queries.append({"weights": weights, "ids": ids, "values": values})
    systems, exact = build_systems(names, vectors, list(encoder.terms), args)
    for name, system in systems.items():
        log(f"{name}: built in {system['build_s']:.1f} s, {system['held_mib']:,.0f} MiB held")
    latencies = _time_round_robin(systems, queries)
    reference = [exact(q) for q in queries]
    tenth = [_tenth_score(vectors, q, r) for q, r in zip(queries, reference, strict=True)]
    report: dict[str, Any] = {
        "docs": vectors.shape[0],
        "entries": int(vectors.nnz),
        "queries": len(queries),
        "query_terms_mean": statistics.fmean(len(q["ids"]) for q in queries) if queries else 0,
        "model": args.model,
        "encode_s": encode_s,
        "encode_s_recorded": recorded,
        "collection_s": collection_s,
        "settings": {k: getattr(args, k) for k in _SETTINGS},
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "systems": {},
    }
    for name, system in systems.items():
        wall, cpu = latencies[name]
        figures = {
            "build_s": system["build_s"],
            "held_mib": system["held_mib"],
            "p50_ms": statistics.median(wall),
            "p99_ms": percentile(wall, 99),
            "p50_cpu_ms": statistics.median(cpu),
        }
        found = [system["search"](q) for q in queries]
        figures["recall_at_10"] = _recall(found, reference)
        figures["tie_recall_at_10"] = _tie_recall(vectors, queries, found, tenth)
        if "fallbacks" in system:
            figures["exact_fallbacks"] = system["fallbacks"][0]
            for key in ("blocks", "postings", "summary_entries"):
                figures[key] = system[key]
        report["systems"][name] = figures
    return report


_SETTINGS = ("postings", "block_fraction", "summary_energy", "query_terms", "heap_factor")


def _check_options(args: argparse.Namespace, sources: tuple[str, ...]) -> list[str]:
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown or not names:
        raise InvalidInputError(f"--systems {args.systems!r}: choose from {', '.join(SYSTEMS)}")
    for name in ("docs", "queries"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in sources:
        if not (args.data / name / "corpus.jsonl").is_file():
            raise InvalidInputError(f"--data {args.data}: no {name}/corpus.jsonl there")
    if "seismic" in names:
        try:
            importlib.import_module("seismic")
        except ImportError:
            names.remove("seismic")  # the table says it was not installed
    return names


def _time_round_robin(
    systems: dict[str, dict[str, Any]], queries: list[dict[str, Any]]
) -> dict[str, tuple[list[float], list[float]]]:
    """Per system, wall and CPU milliseconds of each query; the systems take turns per query
    (in a rotating order), after a warm-up pass over a few queries."""
    names = list(systems)
    for q in queries[:5]:
        for name in names:
            systems[name]["search"](q)
    out: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in names}
    for i, q in enumerate(queries):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            cpu, wall = time.process_time(), time.perf_counter()
            systems[name]["search"](q)
            out[name][0].append((time.perf_counter() - wall) * 1000)
            out[name][1].append((time.process_time() - cpu) * 1000)
    return out


def _recall(found: list[Any], reference: list[Any]) -> float:
    shares = [
        len(set(map(int, f)) & set(map(int, r))) / len(r)
        for f, r in zip(found, reference, strict=True)
        if len(r)
    ]
    return statistics.fmean(shares) if shares else float("nan")


def _dense(q: dict[str, Any], width: int) -> np.ndarray:
    dense = np.zeros(width, dtype=np.float32)
    dense[q["ids"]] = q["values"]
    return dense


def _tenth_score(vectors: Any, q: dict[str, Any], reference: Any) -> float:
    """The exact score of the last of the exact top ``K`` (``inf`` when nothing matched)."""
    rows = np.asarray(reference, dtype=np.int64)
    if not len(rows):
        return float("inf")
    return float(np.min(vectors[rows] @ _dense(q, vectors.shape[1])))


def _tie_recall(
    vectors: Any, queries: list[dict[str, Any]], found: list[Any], tenth: list[float]
) -> float:
    """Share of the top ``K`` slots filled with a row whose exact score reaches the exact
    ``K``-th score (relative tolerance 1e-5): recall that counts any of several rows tied at the
    cut as a right answer. The scale corpus's copies tie often (a copy that kept every word a
    query matches scores what its source does), and exact search breaks ties by row number."""
    shares = []
    for q, rows, bar in zip(queries, found, tenth, strict=True):
        if bar == float("inf"):
            continue
        rows = np.asarray(list(map(int, rows)), dtype=np.int64)
        scores = vectors[rows] @ _dense(q, vectors.shape[1]) if len(rows) else np.zeros(0)
        shares.append(min(int((scores >= bar - 1e-5 * abs(bar)).sum()), K) / K)
    return statistics.fmean(shares) if shares else float("nan")


# -- the report --------------------------------------------------------------------------------


def format_report(r: dict[str, Any]) -> str:
    rows = []
    for name, s in r["systems"].items():
        rows.append([
            _LABELS[name], f"{s['build_s']:,.1f}", f"{s['held_mib']:,.0f}", f"{s['p50_ms']:.2f}",
            f"{s['p99_ms']:.2f}", f"{s['p50_cpu_ms']:.2f}",
            f"{s['recall_at_10']:.4f}", f"{s['tie_recall_at_10']:.4f}",
        ])  # fmt: skip
    header = (
        "system", "build s", "held MiB", "p50 ms", "p99 ms", "p50 CPU ms", "recall@10",
        "recall@10, ties",
    )  # fmt: skip
    systems = r["systems"]
    lines = [
        "",
        f"### Learned sparse ({r['model']}) on {r['docs']:,} documents, k={K}, "
        f"{r['queries']} queries",
        "",
        *markdown_table(header, rows),
        "",
    ]
    if "approximate" in systems:
        a = systems["approximate"]
        if "exact" in systems:
            lines.append(
                f"- approximate vs exact: {systems['exact']['p50_ms'] / a['p50_ms']:.1f}x faster "
                f"at p50, recall@10 {a['recall_at_10']:.4f} ({a['tie_recall_at_10']:.4f} counting "
                "rows tied with the exact 10th score)"
            )
        if "seismic" in systems:
            ratio = a["p50_ms"] / systems["seismic"]["p50_ms"]
            lines.append(f"- approximate / pyseismic-lsr p50: {ratio:.2f}")
        lines.append(
            f"- approximate index: {a['postings']:,} postings in {a['blocks']:,} blocks, "
            f"{a['summary_entries']:,} summary entries; {a['exact_fallbacks']} queries fell back "
            "to exact search"
        )
    else:
        lines.append("- approximate: not run")
    if "seismic" not in systems:
        lines.append("- pyseismic-lsr: not run (`pip install 'rag-retrievers[seismic]'`)")
    settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items())
    recorded = r["encode_s_recorded"]
    encoded = f"{recorded:,.0f} s when cached" if recorded is not None else "time not recorded"
    start, end = r["load_average"]["start"], r["load_average"]["end"]
    lines += [
        f"- settings: {settings}",
        f"- corpus: {r['entries'] / max(r['docs'], 1):.1f} entries per document, "
        f"{r['query_terms_mean']:.1f} terms per query; sources encoded ({encoded}); this run "
        f"read or encoded them in {r['encode_s']:,.0f} s and built the collection in "
        f"{r['collection_s']:,.0f} s",
        f"- load average (1/5/15 min) at start {start[0]:.1f}/{start[1]:.1f}/{start[2]:.1f}, "
        f"at end {end[0]:.1f}/{end[1]:.1f}/{end[2]:.1f} on {os.cpu_count()} CPUs",
    ]
    return "\n".join(lines) + "\n"


def main_sparse(args: argparse.Namespace) -> int:
    """``rag-retrievers bench sparse``: exact vs approximate vs Seismic, one table."""
    log = stderr_logger(args.quiet)
    report = run_bench(args, log)
    print(format_report(report), flush=True)
    if args.json_path is not None:
        write_json_report(args.json_path, report)
    return 0
