"""Benchmark the ColBERT index: ``rag-retrievers bench colbert --dataset DIR``.

One index, built once, answers every query twice in one run: with candidate generation (the
default search) and exhaustively (exact MaxSim over every document, the reference). Printed:
nDCG@10 of each (ir-measures) and their ratio, ms/query (p50 and p95, one query per call) and
the speedup, and bytes stored per token. With ``--model minilm`` (the default here, as no
ColBERT weights exist offline) every line is labelled a stand-in.

Encoding a corpus takes minutes on a CPU, so token vectors are cached on disk (``--cache``,
default ``runs/colbert-tokens``), keyed by the model's weights and settings and the corpus file;
a rerun only builds the index.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rag_retrievers.evals.output import add_json_print_arguments, show_report

from rag_retrievers.spec import parse_params

DEFAULT_CACHE = Path("runs") / "colbert-tokens"


def add_colbert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset", required=True, type=Path, help="BEIR-layout folder (corpus, queries, qrels)"
    )
    parser.add_argument("--split", default="test", help="qrels/<split>.tsv (default test)")
    parser.add_argument(
        "--model", default="minilm", help="ColBERT model name or path (default minilm: stand-in)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='ColBERT index option (VALUE as JSON), e.g. --param compression="fp16"',
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="folder for cached token vectors (default %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="encode the corpus again")
    parser.add_argument(
        "--latency-queries",
        type=int,
        default=100,
        help="queries timed one per call in each mode (default 100; all are scored)",
    )
    add_json_print_arguments(parser)


class CachedEncoder:
    """A :class:`~rag_retrievers.encoders.colbert.ColBERTEncoder` whose document vectors come
    from a cache of the corpus (texts not in it are encoded)."""

    def __init__(self, encoder: Any, cached: dict[str, np.ndarray]) -> None:
        self.encoder, self.cached = encoder, cached

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def encode_documents(self, texts: list[str], show_progress: bool | None = None) -> list[Any]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cached]
        fresh = dict(zip(missing, self.encoder.encode_documents(missing), strict=True))
        return [self.cached[t].astype(np.float32) if t in self.cached else fresh[t] for t in texts]

    def __repr__(self) -> str:
        return repr(self.encoder)


def corpus_tokens(
    encoder: Any, texts: list[str], corpus_file: Path, cache: Path | None, progress: bool | None
) -> dict[str, np.ndarray]:
    """text -> fp16 token vectors of every distinct corpus text, from ``cache`` when there."""
    distinct = list(dict.fromkeys(texts))
    folder = None
    if cache is not None:
        from rag_retrievers.evals.cache import corpus_digest

        # keyed by content, as the eval index cache: a copied or re-mounted corpus still hits
        key = json.dumps([encoder.identity(), corpus_digest(corpus_file)], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        folder = cache / f"{corpus_file.parent.name}-{encoder.settings.format}-{digest}"
        if (folder / "done").exists():
            tokens = np.load(folder / "tokens.npy", mmap_mode="r")
            lengths = np.load(folder / "lengths.npy")
            if len(lengths) == len(distinct) and int(lengths.sum()) == len(tokens):
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                return {t: tokens[offsets[i] : offsets[i + 1]] for i, t in enumerate(distinct)}
    vectors = encoder.encode_documents(distinct, show_progress=progress)
    lengths = np.asarray([len(v) for v in vectors], dtype=np.int64)
    tokens = np.concatenate(vectors).astype(np.float16)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "tokens.npy", tokens)
        np.save(folder / "lengths.npy", lengths)
        (folder / "done").write_text("ok\n", encoding="utf-8")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return {t: tokens[offsets[i] : offsets[i + 1]] for i, t in enumerate(distinct)}


def _percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, q)) if seconds else float("nan")


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Build the index once, search every query in both modes; the figures as a dict."""
    from rag_retrievers.adapters.colbert import ColBERT
    from rag_retrievers.evals.beir import load_beir
    from rag_retrievers.evals.retrieval import evaluate_run

    from rag_retrievers.encoders.colbert import STAND_IN_NOTE, ColBERTEncoder
    from rag_retrievers.errors import InvalidInputError

    if args.latency_queries < 1:
        raise InvalidInputError(f"--latency-queries must be >= 1, got {args.latency_queries}")
    progress = False if args.quiet else None
    params = parse_params(args.param)
    dataset = load_beir(args.dataset, args.split)
    encoder = ColBERTEncoder(args.model)
    texts = [d.text for d in dataset.corpus]
    began = time.perf_counter()
    cache = None if args.no_cache else args.cache
    tokens = corpus_tokens(encoder, texts, args.dataset / "corpus.jsonl", cache, progress)
    encode_s = time.perf_counter() - began
    colbert = ColBERT(encoder=CachedEncoder(encoder, tokens), **params)  # type: ignore[arg-type]
    began = time.perf_counter()
    colbert.add(dataset.corpus, show_progress=progress)
    index_s = time.perf_counter() - began

    ids = list(dataset.queries)
    began = time.perf_counter()
    query_vectors = encoder.encode_queries([dataset.queries[q] for q in ids])
    query_encode_ms = (time.perf_counter() - began) * 1000 / max(len(ids), 1)
    modes: dict[str, Any] = {}
    top10: dict[str, list[set[str]]] = {}
    for mode in ("exhaustive", "candidates"):
        hits: list[Any] = []
        for start in range(0, len(ids), 32):  # an exhaustive scan decodes once per 32 queries
            hits += colbert.search_vectors(query_vectors[start : start + 32], 100, mode=mode)
        run = {q: {h.id: h.score for h in result} for q, result in zip(ids, hits, strict=True)}
        metrics = evaluate_run(run, dataset.qrels, ["nDCG@10", "Recall@100", "MRR@10", "MAP"])
        top10[mode] = [{h.id for h in result[:10]} for result in hits]
        latencies = []
        for vectors in query_vectors[: args.latency_queries]:
            began = time.perf_counter()
            colbert.search_vectors([vectors], 10, mode=mode)
            latencies.append(time.perf_counter() - began)
        modes[mode] = {
            **metrics,
            "ms_per_query_p50": _percentile_ms(latencies, 50),
            "ms_per_query_p95": _percentile_ms(latencies, 95),
        }
    index = colbert.index
    encoded_tokens = int(sum(len(tokens[t]) for t in dict.fromkeys(texts)))
    exhaustive, candidates = modes["exhaustive"], modes["candidates"]
    # the share of exhaustive MaxSim's top 10 that candidate generation found (ranked exactly,
    # a top-10 document among the candidates is in their top 10)
    overlap = [
        len(c & e) / max(len(e), 1)
        for c, e in zip(top10["candidates"], top10["exhaustive"], strict=True)
    ]
    return {
        "dataset": str(args.dataset),
        "split": args.split,
        "queries": len(ids),
        "documents": len(dataset.corpus),
        "retriever": repr(colbert),
        "label": colbert.label,
        "stand_in": colbert.stand_in,
        "note": STAND_IN_NOTE if colbert.stand_in else None,
        "modes": modes,
        "ndcg10_ratio": candidates["nDCG@10"] / exhaustive["nDCG@10"],
        "top10_recall": float(np.mean(overlap)) if overlap else float("nan"),
        "candidates_from": "milvus (MUVERA encodings)" if colbert.milvus else "centroids (PLAID)",
        "speedup_p50": exhaustive["ms_per_query_p50"] / candidates["ms_per_query_p50"],
        "tokens_encoded": encoded_tokens,
        "tokens_stored": index.live_tokens,
        "bytes_per_token": index.bytes_per_token(),
        "bytes_per_encoded_token": index.bytes_per_token() * index.live_tokens / encoded_tokens,
        "centroids": 0 if index.centroids is None else len(index.centroids),
        "encode_seconds": round(encode_s, 1),
        "index_seconds": round(index_s, 1),
        "query_encode_ms": round(query_encode_ms, 2),
        "latency_queries": min(args.latency_queries, len(ids)),
    }


def print_report(r: dict[str, Any]) -> None:
    name = Path(r["dataset"]).name
    print(
        f"dataset     {name} ({r['split']}: {r['queries']} queries, {r['documents']:,} documents)"
    )
    print(f"retriever   {r['retriever']}")
    if r["stand_in"]:
        print(f"NOTE        {r['label']}; the figures are not those of a ColBERT model")
    print(
        f"index       {r['tokens_stored']:,} tokens stored ({r['tokens_encoded']:,} encoded), "
        f"{r['centroids']:,} centroids, built in {r['index_seconds']}s "
        f"(encoding {r['encode_seconds']}s, cached after the first run)"
    )
    print(
        f"\n{'mode':<12}{'nDCG@10':>9}{'Recall@100':>12}{'MRR@10':>8}{'MAP':>8}"
        f"{'ms/query p50':>14}{'ms/query p95':>14}"
    )
    for mode, m in r["modes"].items():
        print(
            f"{mode:<12}{m['nDCG@10']:>9.4f}{m['Recall@100']:>12.4f}{m['MRR@10']:>8.4f}"
            f"{m['MAP']:>8.4f}{m['ms_per_query_p50']:>14.1f}{m['ms_per_query_p95']:>14.1f}"
        )
    print(
        f"\nlatency: {r['latency_queries']} queries, one per call, k=10, query encoding excluded "
        f"(it adds {r['query_encode_ms']} ms/query in both modes)"
    )
    print(f"candidates from {r['candidates_from']}")
    print(f"nDCG@10 ratio {r['ndcg10_ratio']:.4f}")
    print(f"top-10 recall {r['top10_recall']:.4f} (of exhaustive MaxSim's top 10)")
    print(f"speedup p50 {r['speedup_p50']:.1f}")
    print(f"bytes/token {r['bytes_per_token']:.1f}")
    print(f"bytes/encoded token {r['bytes_per_encoded_token']:.1f}")


def main_colbert(args: argparse.Namespace) -> int:
    """``rag-retrievers bench colbert``: candidate generation vs exhaustive MaxSim."""
    show_report(run_bench(args), as_json=args.json, table=print_report)
    return 0
