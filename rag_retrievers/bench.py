"""Benchmark BM25 implementations side by side: ``rag-retrievers bench bm25``.

Three systems index the same documents and answer the same queries in one run: our
:class:`rag_retrievers.BM25`, ``bm25s`` (numpy backend) and ``rank_bm25.BM25Okapi``. Each system
runs in its own fresh Python process (``python -m rag_retrievers.bench --worker SPEC``), so its
peak memory is its own; specs and results travel as JSON files.

Measured per system and corpus: index build time, single-query throughput and latency (one query
per call, k=10), batch throughput (the system's batch API) and peak memory. On SciFact the run
also checks correctness: top-10 overlap with bm25s and nDCG@10 (ir-measures).

Run it with ``python -m rag_retrievers.bench`` (same options as ``rag-retrievers bench bm25``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rag_retrievers.errors import InvalidInputError, MissingDependencyError
from rag_retrievers.records import Document

K = 10
SYSTEMS = ("ours", "bm25s", "rank-bm25")
CORPORA = ("scifact", "large")
LARGE_SOURCES = ("vaswani_npl", "scifact")  # repeated, in this order, to build the large corpus
DEFAULT_RANK_BM25_QUERIES = 100
SAMPLE_SEED = 0
# a timed pass is repeated until this many seconds have gone (at most MAX_PASSES passes); each
# query's latency is its median over the passes, which steadies sub-millisecond timings
MIN_TIMING_S = 3.0
MAX_PASSES = 5

# -- options ---------------------------------------------------------------------------------------


def add_bm25_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bench bm25`` to ``parser``."""
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        default=Path("../shared/data"),
        help="folder holding scifact/ and vaswani_npl/ in the BEIR layout "
        "(relative to the current directory; default: %(default)s)",
    )
    parser.add_argument(
        "--docs",
        type=int,
        metavar="N",
        default=200_000,
        help="size of the large corpus, made by repeating vaswani_npl and "
        "scifact (default: %(default)s)",
    )
    parser.add_argument(
        "--queries",
        type=int,
        metavar="N",
        default=None,
        help="queries timed on the large corpus (default: all 393, the SciFact "
        "test queries plus the vaswani_npl queries)",
    )
    parser.add_argument(
        "--rank-bm25-queries",
        type=int,
        metavar="N",
        default=DEFAULT_RANK_BM25_QUERIES,
        help="queries given to rank-bm25 on the large corpus, a fixed random "
        "sample; it scores every document in Python per query term "
        "(default: %(default)s; on scifact it gets all queries)",
    )
    parser.add_argument(
        "--corpora",
        metavar="LIST",
        default=",".join(CORPORA),
        help=f"comma-separated, from: {', '.join(CORPORA)} (default: %(default)s)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        default=None,
        dest="json_path",
        help="also write the results as JSON to this file",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def main_bm25(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed options describe, print one table per corpus; exit code."""
    corpora = _check_options(args)
    check_dependencies()
    log = _logger(args.quiet)
    began = time.perf_counter()
    report: dict[str, Any] = {"k": K, "python": sys.version.split()[0], "corpora": {}}
    for corpus in corpora:
        report["corpora"][corpus] = bench_corpus(corpus, args, log)
        print(format_corpus_report(corpus, report["corpora"][corpus]), flush=True)
    report["wall_s"] = time.perf_counter() - began
    print(f"total wall time: {report['wall_s']:.0f} s")
    if args.json_path is not None:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        log(f"results written to {args.json_path}")
    return 0


def _check_options(args: argparse.Namespace) -> list[str]:
    """The corpora to run; raises InvalidInputError naming a bad option."""
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown or not corpora:
        raise InvalidInputError(f"--corpora {args.corpora!r}: choose from {', '.join(CORPORA)}")
    for name in ("docs", "queries", "rank_bm25_queries"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not (args.data / "scifact").is_dir():
        raise InvalidInputError(f"--data {args.data}: no scifact/ folder there")
    return corpora


def _logger(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    return log


# -- workloads -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """The documents and queries of one benchmark corpus."""

    name: str
    documents: list[Document]
    queries: dict[str, str]  # query id -> text, every query the corpus offers
    qrels: dict[str, dict[str, int]]


def load_workload(name: str, data: Path, n_docs: int, *, documents: bool = True) -> Workload:
    """The named corpus: ``scifact`` as is, or ``large`` (``n_docs`` repeated documents).
    With ``documents=False`` only the queries and judgements are read."""
    if name == "scifact":
        return _load_beir(data / "scifact", documents=documents)
    return _load_large(data, n_docs, documents=documents)


def _load_beir(folder: Path, prefix: str = "", *, documents: bool = True) -> Workload:
    """A BEIR folder's documents and its test queries (those judged in qrels/test.tsv)."""
    from rag_retrievers.evals.beir import read_corpus, read_qrels, read_queries

    qrels = read_qrels(folder / "qrels" / "test.tsv")
    queries = {
        f"{prefix}{q}": t for q, t in read_queries(folder / "queries.jsonl").items() if q in qrels
    }
    docs = read_corpus(folder / "corpus.jsonl") if documents else []
    if prefix:
        docs = [_renamed(d, f"{prefix}{d.id}") for d in docs]
        qrels = {
            f"{prefix}{q}": {f"{prefix}{d}": r for d, r in judged.items()}
            for q, judged in qrels.items()
        }
    return Workload(folder.name, docs, queries, qrels)


def _load_large(data: Path, n_docs: int, *, documents: bool = True) -> Workload:
    """Documents of :data:`LARGE_SOURCES` repeated up to exactly ``n_docs``; copy ``c`` > 0 of a
    document is ``{source}/{id}#{c}`` (the same text). Queries: all sources' test queries."""
    sources = [_load_beir(data / name, f"{name}/", documents=documents) for name in LARGE_SOURCES]
    base = [d for s in sources for d in s.documents]
    docs = list(base[:n_docs])
    copy = 1
    while base and len(docs) < n_docs:
        docs.extend(_renamed(d, f"{d.id}#{copy}") for d in base[: n_docs - len(docs)])
        copy += 1
    queries = {q: t for s in sources for q, t in s.queries.items()}
    qrels = {q: j for s in sources for q, j in s.qrels.items()}
    return Workload("large", docs, queries, qrels)


def _renamed(document: Document, new_id: str) -> Document:
    return document.model_copy(update={"id": new_id})


def sample_ids(ids: Sequence[str], n: int | None) -> list[str]:
    """``n`` of ``ids`` chosen at random with a fixed seed (kept in their order), or all."""
    if n is None or n >= len(ids):
        return list(ids)
    keep = set(random.Random(SAMPLE_SEED).sample(range(len(ids)), n))
    return [q for i, q in enumerate(ids) if i in keep]


# -- the systems -----------------------------------------------------------------------------------


class Engine(Protocol):
    """A BM25 system built over documents; returns ranked document ids."""

    def search(self, query: str, k: int) -> list[str]: ...

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]: ...


class OursEngine:
    """:class:`rag_retrievers.BM25` with its defaults (Lucene, k1 0.9, b 0.4, stopwords, stems)."""

    def __init__(self, documents: list[Document]) -> None:
        from rag_retrievers.adapters.bm25 import BM25

        self._bm25 = BM25()
        self._bm25.add(documents, show_progress=False)

    def search(self, query: str, k: int) -> list[str]:
        return [hit.id for hit in self._bm25.search(query, k=k)]

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        return [[hit.id for hit in hits] for hits in self._bm25.search_batch(queries, k=k)]


class Bm25sEngine:
    """bm25s, numpy backend, ``method="lucene"``, k1 0.9, b 0.4, its own tokenizer with English
    stopwords and the Snowball stemmer; queries are tokenized inside the timed call."""

    def __init__(self, documents: list[Document]) -> None:
        self._bm25s, stemmer_module = _import_bm25s()
        self._stemmer = stemmer_module.Stemmer("english")
        self._ids = [d.id for d in documents]
        tokens = self._tokenize([d.text for d in documents], return_ids=True)
        self._model = self._bm25s.BM25(method="lucene", k1=0.9, b=0.4, backend="numpy")
        self._model.index(tokens, show_progress=False)

    def _tokenize(self, texts: list[str], *, return_ids: bool) -> Any:
        return self._bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stemmer, return_ids=return_ids, show_progress=False
        )

    def search(self, query: str, k: int) -> list[str]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        tokens = self._tokenize(queries, return_ids=False)
        rows, scores = self._model.retrieve(
            tokens, k=k, show_progress=False, n_threads=0, backend_selection="numpy"
        )
        ids = self._ids
        return [
            [ids[r] for r, s in zip(row.tolist(), srow.tolist(), strict=True) if s > 0]
            for row, srow in zip(rows, scores, strict=True)
        ]


class RankBm25Engine:
    """``rank_bm25.BM25Okapi`` (k1 0.9, b 0.4) over our Analyzer's terms; the analysis is part of
    its build and query time. It has no batch API: a batch is a loop of ``get_scores``."""

    def __init__(self, documents: list[Document]) -> None:
        from rag_retrievers.analysis import Analyzer

        okapi = _import_rank_bm25()
        self._analyzer = Analyzer()
        self._ids = [d.id for d in documents]
        self._model = okapi(self._analyzer.analyze_many([d.text for d in documents]), k1=0.9, b=0.4)

    def search(self, query: str, k: int) -> list[str]:
        return self._ranked(self._analyzer.analyze(query), k)

    def search_batch(self, queries: list[str], k: int) -> list[list[str]]:
        return [self._ranked(terms, k) for terms in self._analyzer.analyze_many(queries)]

    def _ranked(self, terms: list[str], k: int) -> list[str]:
        from rag_retrievers.sparse import top_k

        rows, _ = top_k(self._model.get_scores(terms), k)
        return [self._ids[r] for r in rows.tolist()]


ENGINES: dict[str, Callable[[list[Document]], Engine]] = {
    "ours": OursEngine,
    "bm25s": Bm25sEngine,
    "rank-bm25": RankBm25Engine,
}


def check_dependencies() -> None:
    """Raise :class:`MissingDependencyError` now if a compared library is not installed."""
    from importlib.util import find_spec

    for module, package in (("bm25s", "bm25s"), ("rank_bm25", "rank-bm25")):
        if find_spec(module) is None:
            raise MissingDependencyError(package, "bench")


def _import_bm25s() -> tuple[Any, Any]:
    try:
        import bm25s
        import Stemmer
    except ImportError:
        raise MissingDependencyError("bm25s", "bench") from None
    return bm25s, Stemmer


def _import_rank_bm25() -> Any:
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        raise MissingDependencyError("rank-bm25", "bench") from None
    return BM25Okapi


def _import_engine(system: str) -> None:
    """Import a system's libraries now, so the memory baseline already holds them."""
    if system == "bm25s":
        _import_bm25s()
    elif system == "rank-bm25":
        _import_rank_bm25()
    import scipy.sparse  # noqa: F401 - used by ours, bm25s (numpy backend imports it) and top_k

    import rag_retrievers.adapters.bm25  # noqa: F401


# -- the worker: one system, one corpus, one process -----------------------------------------------


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Build one system over one corpus and time it; runs in a fresh process.

    ``spec``: system, corpus, data, docs, queries (ids timed one per call), batches (name ->
    ids timed through the batch API), keep_hits (return the top-k ids of the timed queries).
    """
    _import_engine(spec["system"])
    workload = load_workload(spec["corpus"], Path(spec["data"]), spec["docs"])
    texts = workload.queries
    gc.collect()
    baseline = current_rss_mib()

    began = time.perf_counter()
    engine = ENGINES[spec["system"]](workload.documents)
    engine.search(texts[spec["queries"][0]], K)  # first query: ours weights its matrix lazily
    build_s = time.perf_counter() - began

    timed = [(qid, texts[qid]) for qid in spec["queries"]]
    latencies, hits, passes = time_single_queries(engine, timed)
    batch_s = {
        name: time_batch(engine, [texts[q] for q in ids]) for name, ids in spec["batches"].items()
    }
    return {
        "system": spec["system"],
        "n_docs": len(workload.documents),
        "build_s": build_s,
        "latencies_s": latencies,
        "batch_s": batch_s,
        "passes": passes,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": peak_rss_mib(),
        "hits": hits if spec.get("keep_hits") else None,
    }


def time_single_queries(
    engine: Engine, queries: list[tuple[str, str]]
) -> tuple[dict[str, float], dict[str, list[str]], int]:
    """One ``search`` call per query, in passes (see :data:`MIN_TIMING_S`): each query's median
    latency (s), its hits from the first pass, and the number of passes."""
    hits: dict[str, list[str]] = {}
    timings: dict[str, list[float]] = {qid: [] for qid, _ in queries}
    began, passes = time.perf_counter(), 0
    while passes < MAX_PASSES and (passes == 0 or time.perf_counter() - began < MIN_TIMING_S):
        for qid, text in queries:
            start = time.perf_counter()
            result = engine.search(text, K)
            timings[qid].append(time.perf_counter() - start)
            hits.setdefault(qid, result)
        passes += 1
    return {q: statistics.median(t) for q, t in timings.items()}, hits, passes


def time_batch(engine: Engine, texts: list[str]) -> float:
    """Median seconds of one ``search_batch`` call over all ``texts``, in passes."""
    runs: list[float] = []
    began = time.perf_counter()
    while len(runs) < MAX_PASSES and (not runs or time.perf_counter() - began < MIN_TIMING_S):
        start = time.perf_counter()
        engine.search_batch(texts, K)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def current_rss_mib() -> float:
    """Resident memory now (Linux ``/proc``); elsewhere the peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def spawn_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`run_worker` in a new interpreter; its stderr passes through."""
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        spec_path, result_path = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec_path.write_text(json.dumps({**spec, "result": str(result_path)}), encoding="utf-8")
        command = [sys.executable, "-m", "rag_retrievers.bench", "--worker", str(spec_path)]
        done = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"benchmark worker for {spec['system']} on {spec['corpus']} "
                f"failed with exit code {done.returncode}"
            )
        return json.loads(result_path.read_text(encoding="utf-8"))


def _worker_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result = run_worker(spec)
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


# -- one corpus: three workers, then the statistics ------------------------------------------------


def bench_corpus(
    corpus: str, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run every system on ``corpus``; returns the per-system stats, ratios and correctness."""
    workload = load_workload(corpus, args.data, args.docs, documents=False)
    all_ids = list(workload.queries)
    timed = all_ids if corpus == "scifact" else sample_ids(all_ids, args.queries)
    subset = timed if corpus == "scifact" else sample_ids(timed, args.rank_bm25_queries)
    base = {
        "corpus": corpus,
        "data": str(args.data.resolve()),
        "docs": args.docs,
        "keep_hits": corpus == "scifact",
    }
    raw = {}
    for system in SYSTEMS:
        queries = subset if system == "rank-bm25" else timed
        batches = {"all": queries} if system == "rank-bm25" else {"all": timed, "subset": subset}
        log(f"{corpus}: {system}, {len(queries)} queries ...")
        began = time.perf_counter()
        raw[system] = spawn_worker(
            {**base, "system": system, "queries": queries, "batches": batches}
        )
        log(
            f"{corpus}: {system} done in {time.perf_counter() - began:.1f} s "
            f"({raw[system]['n_docs']:,} docs)"
        )
    result = {
        "n_docs": raw["ours"]["n_docs"],
        "n_queries": len(timed),
        "n_rank_bm25_queries": len(subset),
        "systems": {
            s: system_stats(raw[s], subset if s == "rank-bm25" else timed) for s in SYSTEMS
        },
    }
    result["ratios"] = {
        "bm25s": ratios(result["systems"]["ours"], result["systems"]["bm25s"]),
        "rank-bm25": ratios(
            system_stats(raw["ours"], subset, batch="subset"), result["systems"]["rank-bm25"]
        ),
    }
    if corpus == "scifact":
        result["correctness"] = correctness(raw, workload.qrels)
    return result


def system_stats(raw: dict[str, Any], qids: Sequence[str], batch: str = "all") -> dict[str, Any]:
    """Build time, throughputs, latency percentiles and memory from one worker's result."""
    lat = [raw["latencies_s"][q] for q in qids]
    return {
        "build_s": raw["build_s"],
        "single_qps": len(lat) / sum(lat),
        "batch_qps": len(qids) / raw["batch_s"][batch],
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * percentile(lat, 99),
        "peak_rss_mib": raw["peak_rss_mib"],
        "memory_mib": raw["peak_rss_mib"] - raw["baseline_rss_mib"],
        "n_queries": len(qids),
        "passes": raw["passes"],
    }


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile, linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# higher is better for these; lower for the others
_HIGHER_IS_BETTER = {"single_qps", "batch_qps"}
RATIO_KEYS = ("build_s", "single_qps", "batch_qps", "p50_ms", "p99_ms", "memory_mib")


def ratios(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    """How many times better ours is per measure (> 1: ours faster or smaller)."""
    out = {}
    for key in RATIO_KEYS:
        a, b = ours[key], other[key]
        if a <= 0 or b <= 0:
            out[key] = float("nan")
        else:
            out[key] = a / b if key in _HIGHER_IS_BETTER else b / a
    return out


def correctness(raw: dict[str, Any], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Top-k overlap of ours with bm25s and rank-bm25, and nDCG@10 of each system."""
    from rag_retrievers.evals.retrieval import evaluate_run

    hits = {s: raw[s]["hits"] for s in SYSTEMS}
    out: dict[str, Any] = {"overlap": {}, "nDCG@10": {}}
    for other in ("bm25s", "rank-bm25"):
        out["overlap"][other] = overlap(hits["ours"], hits[other])
    for system in SYSTEMS:
        run = {q: {d: float(K - r) for r, d in enumerate(ids)} for q, ids in hits[system].items()}
        out["nDCG@10"][system] = evaluate_run(run, qrels, ["nDCG@10"])["nDCG@10"]
    return out


def overlap(ours: dict[str, list[str]], other: dict[str, list[str]]) -> dict[str, float]:
    """Mean |ours ∩ other| / |larger list| over the shared queries, and the share identical."""
    qids = [q for q in ours if q in other]
    fractions = [
        len(set(ours[q]) & set(other[q])) / max(len(ours[q]), len(other[q]), 1) for q in qids
    ]
    return {
        "mean": statistics.fmean(fractions),
        "identical": sum(f == 1 for f in fractions) / len(fractions),
        "n_queries": len(qids),
    }


# -- the printed report ----------------------------------------------------------------------------

_LABELS = {
    "ours": "rag_retrievers.BM25",
    "bm25s": "bm25s (numpy)",
    "rank-bm25": "rank_bm25.BM25Okapi",
}
_COLUMNS = (
    "system",
    "queries",
    "build s",
    "single q/s",
    "batch q/s",
    "p50 ms",
    "p99 ms",
    "peak Δ MiB",
)


def format_corpus_report(corpus: str, result: dict[str, Any]) -> str:
    """One Markdown table (absolute numbers, then ratio rows), footnotes and correctness."""
    rows = [
        [
            _LABELS[s],
            str(st["n_queries"]),
            f"{st['build_s']:.2f}",
            f"{st['single_qps']:,.1f}",
            f"{st['batch_qps']:,.1f}",
            f"{st['p50_ms']:.2f}",
            f"{st['p99_ms']:.2f}",
            f"{st['memory_mib']:,.0f}",
        ]
        for s, st in result["systems"].items()
    ]
    for other, r in result["ratios"].items():
        n = result["systems"][other]["n_queries"]
        rows.append([f"ours vs {other}", str(n)] + [_times(r[key]) for key in RATIO_KEYS])
    title = (
        f"### BM25 on {corpus}: {result['n_docs']:,} documents, k={K}, "
        f"{result['n_queries']} queries"
    )
    lines = ["", title, "", *_markdown_table(_COLUMNS, rows), "", *_footnotes(result)]
    if "correctness" in result:
        lines += ["", *_correctness_lines(result["correctness"])]
    return "\n".join(lines) + "\n"


def _times(value: float) -> str:
    return "n/a" if value != value else f"{value:,.2f}x"


def _markdown_table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


def _footnotes(result: dict[str, Any]) -> list[str]:
    peaks = ", ".join(f"{s} {st['peak_rss_mib']:,.0f}" for s, st in result["systems"].items())
    passes = ", ".join(f"{s} {st['passes']}" for s, st in result["systems"].items())
    n_sub = result["n_rank_bm25_queries"]
    notes = [
        "- build s: index the documents plus the first query (ours weights its matrix lazily on "
        "the first search); rank-bm25's time includes our Analyzer's analysis of the corpus.",
        f"- single q/s: one query per call, k={K}, query analysis included; p50/p99: latency of "
        "those calls. batch q/s: all queries in one call (ours `search_batch`, bm25s `retrieve`; "
        "rank-bm25 has no batch API, so a loop). One thread each. Passes are repeated for "
        f"{MIN_TIMING_S:g} s (at most {MAX_PASSES}); each query's latency and the batch time are "
        f"medians over the passes (passes: {passes}).",
        "- peak Δ MiB: each system runs in its own fresh process; peak RSS (ru_maxrss) of "
        "building + searching minus the RSS after loading the corpus and importing the libraries "
        f"(documents are part of that baseline). Peak RSS in MiB: {peaks}.",
        "- ratio rows: how many times better ours is (>1x: ours faster or smaller).",
    ]
    if n_sub < result["n_queries"]:
        notes.append(
            f"- rank-bm25 answers only a fixed random sample of {n_sub} of the "
            f"{result['n_queries']} queries (it scores every document in Python per query "
            "term); the ours-vs-rank-bm25 row compares ours on that same sample."
        )
    return notes


def _correctness_lines(check: dict[str, Any]) -> list[str]:
    lines = []
    for other, o in check["overlap"].items():
        lines.append(
            f"top-{K} overlap, ours vs {other}: {o['mean']:.1%} of hits shared, "
            f"{o['identical']:.1%} of {o['n_queries']} queries identical top-{K} sets"
        )
    lines.append(
        "nDCG@10 (ir-measures): "
        + ", ".join(f"{_LABELS[s]} {v:.4f}" for s, v in check["nDCG@10"].items())
    )
    return lines


# -- entry point -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rag_retrievers.bench [options]``, the same as ``rag-retrievers bench bm25``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"] and len(argv) == 2:
        return _worker_main(argv[1])
    parser = argparse.ArgumentParser(
        prog="python -m rag_retrievers.bench",
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
