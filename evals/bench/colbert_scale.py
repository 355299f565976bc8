"""``rag-retrievers bench colbert --scale-docs N``: the ColBERT index on a larger collection.

The collection is ``rag-retrievers bench scale``'s corpus (:func:`~rag_retrievers.evals.bench.
scale_corpus.corpus_batches`): the 18,094 documents of scifact, vaswani_npl, cranfield and adi (read
from ``--data``), then copies of them, copy ``c`` dropping each word with probability 0.1 (a
seeded per-copy draw). Encoding a million-vector collection with a model on 2 CPU cores would
take hours, so only the source documents are encoded (once, cached like ``bench colbert``'s
tokens); a copy's token vectors are its source's with the dropped words' tokens removed (the
tokenizer's character offsets say which word each token comes from; special tokens stay). They
are not what the model would give the shortened text (the surviving tokens keep the context of
the dropped words), but the index stores, pools, compresses and searches them as any others.

Measured, in one process: the index build (``add`` of every batch from cached vectors: pooling,
k-means, residual codes, retraining as the collection grows, and the first query, which builds
the inverted lists), the vectors stored and bytes per token, and over a fixed sample of the
bench's queries (``--scale-queries``): candidate search p50/p95/p99 (one query per call, one
BLAS thread by default), the same with the pre-issue-21 search (``--compare-reference``), and the
candidates' recall of exhaustive MaxSim's top 10 (exhaustive on every sampled query, its latency
on the first ``--exhaustive-latency-queries``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rag_retrievers.evals.output import show_report


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the larger synthetic collection (``bench colbert --scale-docs N``)."""
    parser.add_argument(
        "--scale-docs",
        type=int,
        default=None,
        metavar="N",
        help="benchmark N documents of the scale corpus (sources, then copies) instead of "
        "--dataset",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data"),
        metavar="DIR",
        help="with --scale-docs: the folder holding scifact/, vaswani_npl/, cranfield/, adi/ "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--scale-queries",
        type=int,
        default=100,
        metavar="N",
        help="with --scale-docs: queries sampled, timed and checked against exhaustive "
        "(default %(default)s)",
    )


class FeedEncoder:
    """A ColBERT encoder whose document vectors are the ones set in :attr:`current` (text ->
    vectors) before each ``add``; queries go to the wrapped encoder."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.current: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def encode_documents(self, texts: list[str], show_progress: bool | None = None) -> list[Any]:
        return [self.current[t] for t in texts]

    def __repr__(self) -> str:
        return repr(self.encoder)


def token_words(encoder: Any, texts: list[str]) -> list[np.ndarray]:
    """For each text, the whitespace-separated word (index into ``text.split()``) each of its
    document vectors comes from, -1 for special tokens and markers: the positions
    :meth:`~rag_retrievers.encoders.colbert.ColBERTEncoder.tokenize` keeps, from the fast
    tokenizer's character offsets."""
    settings = encoder.settings
    marker = settings.document_marker is not None
    max_length = settings.document_length - (1 if marker else 0)
    out = []
    for text in texts:
        _, keep = encoder.tokenize([text], "document")
        offsets = encoder.tokenizer(
            [text], truncation=True, max_length=max_length, return_offsets_mapping=True
        )["offset_mapping"][0]
        begins = np.asarray([a if b > a else -1 for a, b in offsets], dtype=np.int64)
        if marker:
            begins = np.insert(begins, 1, -1)
        if len(begins) != keep.shape[1]:
            raise RuntimeError(f"token offsets and model inputs disagree for {text[:40]!r}")
        word_starts = np.asarray([m.start() for m in re.finditer(r"\S+", text)], dtype=np.int64)
        words = np.searchsorted(word_starts, begins, side="right") - 1
        out.append(np.where(begins < 0, -1, words)[keep[0]].astype(np.int32))
    return out


def kept_words(copy: int, texts: list[str]) -> Iterator[np.ndarray]:
    """For copy ``copy`` of each text, the indices of the words it keeps: the rule (and the
    random draws) of :func:`~rag_retrievers.evals.bench.scale_corpus.corpus_batches`."""
    from rag_retrievers.evals.bench.scale_corpus import DROP

    rng = random.Random(copy)
    for text in texts:
        n = len(text.split())
        kept = [i for i in range(n) if rng.random() >= DROP] or list(range(min(n, 1)))
        yield np.asarray(kept, dtype=np.int64)


def base_tokens(
    encoder: Any, texts: list[str], args: argparse.Namespace, progress: bool | None
) -> dict[str, np.ndarray]:
    """Token vectors of the source documents, cached as ``bench colbert``'s; SciFact's cached
    vectors are reused when ``--data`` has them in the cache."""
    from rag_retrievers.evals.beir import load_beir
    from rag_retrievers.evals.bench.colbert_tokens import cached_tokens, corpus_tokens

    cache = None if args.no_cache else args.cache
    known = None
    if cache is not None:
        scifact = args.data / "scifact"
        corpus = [d.text for d in load_beir(scifact, "test").corpus]
        known = corpus_tokens(encoder, corpus, scifact / "corpus.jsonl", cache, progress)
    content = hashlib.sha256("\n\0".join(texts).encode()).hexdigest()
    return cached_tokens(encoder, texts, "scale-sources", content, cache, progress, known)


def build_collection(
    colbert: Any,
    feeder: FeedEncoder,
    data: Path,
    n_docs: int,
    tokens: dict[str, np.ndarray],
    words: dict[str, np.ndarray],
    progress: bool | None,
) -> int:
    """Add the first ``n_docs`` documents of the scale corpus to ``colbert``, copies' vectors
    derived from their sources'; returns the token vectors given to ``add`` (before pooling)."""
    from rag_retrievers.evals.bench.scale_corpus import base_documents, corpus_batches
    from tqdm.auto import tqdm

    from rag_retrievers.records import Document

    sources = [text for _, text in base_documents(data)]
    derived = 0
    position = 0
    keep: Iterator[np.ndarray] = iter(())
    bar = tqdm(total=n_docs, desc="indexing", disable=progress is False)
    for batch in corpus_batches(data, n_docs, size=2048):
        feeder.current = {}
        for doc_id, text in batch:
            copy, source = divmod(position, len(sources))
            position += 1
            base = sources[source]
            vectors = np.asarray(tokens[base], dtype=np.float32)
            if copy:
                if source == 0:
                    keep = kept_words(copy, sources)
                kept = next(keep)
                split = base.split()
                if " ".join(split[i] for i in kept.tolist()) != text:
                    raise RuntimeError(f"{doc_id}: the copy rule differs from bench scale's")
                token_word = words[base]
                vectors = vectors[(token_word < 0) | np.isin(token_word, kept)]
            feeder.current[text] = vectors
            derived += len(vectors)
        colbert.add([Document(id=i, text=t) for i, t in batch], show_progress=False)
        bar.update(len(batch))
    bar.close()
    return derived


def index_bytes(index: Any) -> int:
    """Bytes the index holds in memory for search: stored arrays, inverted lists, caches."""
    total = 0
    for segment in index._segments:
        total += segment.codes.nbytes + sum(a.nbytes for a in segment.arrays.values())
        total += sum(a.nbytes for a in segment.cache.values())
    lists = index._lists
    if lists is not None:
        total += sum(a.nbytes for a in (lists.indptr, lists.rows, lists.row_indptr, lists.cells))
    return total


def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    """Build the scale collection's index and measure it; the figures as a dict."""
    from rag_retrievers.adapters.colbert import ColBERT
    from rag_retrievers.evals.bench.colbert_timing import (
        blas_threads,
        check_counts,
        percentiles_ms,
        reference_searcher,
        timed,
        top10_recall,
    )
    from rag_retrievers.evals.bench.scale_corpus import base_documents, benchmark_queries

    from rag_retrievers.encoders.colbert import STAND_IN_NOTE, ColBERTEncoder
    from rag_retrievers.errors import InvalidInputError
    from rag_retrievers.spec import parse_params

    check_counts(args)
    if args.scale_docs < 1 or args.scale_queries < 1:
        raise InvalidInputError("--scale-docs and --scale-queries must be >= 1")
    progress = False if args.quiet else None
    encoder = ColBERTEncoder(args.model)
    texts = list(dict.fromkeys(text for _, text in base_documents(args.data)))
    began = time.perf_counter()
    tokens = base_tokens(encoder, texts, args, progress)
    words = dict(zip(texts, token_words(encoder, texts), strict=True))
    for text in texts:
        if len(words[text]) != len(tokens[text]):
            raise RuntimeError("token words and cached vectors disagree: run with --no-cache")
    encode_s = time.perf_counter() - began

    feeder = FeedEncoder(encoder)
    colbert = ColBERT(encoder=feeder, **parse_params(args.param))  # type: ignore[arg-type]
    query_texts = benchmark_queries(args.data, args.scale_queries)
    query_vectors = encoder.encode_queries(query_texts)
    began = time.perf_counter()
    derived = build_collection(colbert, feeder, args.data, args.scale_docs, tokens, words, progress)
    colbert.search_vectors(query_vectors[:1], 10, mode="candidates")  # builds the lists
    build_s = time.perf_counter() - began

    truth: list[Any] = []
    began = time.perf_counter()
    for start in range(0, len(query_vectors), 32):  # all threads: the reference, not timed
        truth += colbert.search_vectors(query_vectors[start : start + 32], 10, mode="exhaustive")
    exhaustive_all_s = time.perf_counter() - began

    search = {"candidates": lambda v, k: colbert.search_vectors([v], k, mode="candidates")[0]}
    if args.compare_reference:
        search["reference"] = reference_searcher(colbert)
    search["exhaustive"] = lambda v, k: colbert.search_vectors([v], k, mode="exhaustive")[0]
    found: dict[str, list[Any]] = {mode: [] for mode in search}
    latencies: dict[str, list[tuple[float, float]]] = {mode: [] for mode in search}
    load_before = os.getloadavg()[0]
    with blas_threads(args.threads) as threads:
        for i, vectors in enumerate(query_vectors):
            for mode, run in search.items():
                if mode == "exhaustive" and i >= args.exhaustive_latency_queries:
                    continue
                wall, cpu, hits = timed(lambda run=run, vectors=vectors: run(vectors, 10))
                latencies[mode].append((wall, cpu))
                found[mode].append(hits)
    load_after = os.getloadavg()[0]
    index = colbert.index
    modes = {
        mode: {
            **percentiles_ms(latencies[mode]),
            "latency_queries": len(latencies[mode]),
            "top10_recall": top10_recall(found[mode], truth[: len(found[mode])]),
        }
        for mode in search
    }
    return {
        "collection": "scale",
        "data": str(args.data),
        "documents": len(colbert),
        "queries": len(query_vectors),
        "retriever": repr(colbert),
        "label": colbert.label,
        "stand_in": colbert.stand_in,
        "note": STAND_IN_NOTE if colbert.stand_in else None,
        "threads": threads,
        "load_average": [load_before, load_after],
        "cpus": os.cpu_count(),
        "source_texts": len(texts),
        "tokens_given": derived,
        "tokens_stored": index.live_tokens,
        "centroids": 0 if index.centroids is None else len(index.centroids),
        "bytes_per_token": index.bytes_per_token(),
        "bytes_per_given_token": index.bytes_per_token() * index.live_tokens / max(derived, 1),
        "index_mib_in_memory": index_bytes(index) / 2**20,
        "build_seconds": round(build_s, 1),
        "encode_seconds": round(encode_s, 1),
        "exhaustive_all_queries_seconds": round(exhaustive_all_s, 1),
        "modes": modes,
    }


def print_scale(r: dict[str, Any]) -> None:
    from rag_retrievers.evals.bench.colbert_timing import MODE_NAMES, print_latency_table

    print(
        f"collection  bench scale's corpus: {r['documents']:,} documents "
        f"({r['source_texts']:,} sources, then copies with words dropped)"
    )
    print(f"retriever   {r['retriever']}")
    if r["stand_in"]:
        print(f"NOTE        {r['label']}; the figures are not those of a ColBERT model")
    print(
        f"index       {r['tokens_stored']:,} vectors stored ({r['tokens_given']:,} given), "
        f"{r['centroids']:,} centroids, built in {r['build_seconds']}s from cached vectors; "
        f"{r['bytes_per_token']:.1f} bytes per stored vector "
        f"({r['bytes_per_given_token']:.1f} per given); "
        f"{r['index_mib_in_memory']:,.0f} MiB in memory"
    )
    print(f"\n{'mode':<32}{'top-10 recall':>15}")
    for mode, m in r["modes"].items():
        print(f"{MODE_NAMES.get(mode, mode):<32}{m['top10_recall']:>15.4f}")
    print_latency_table(r["modes"])
    print(
        f"\n{r['queries']} sampled queries, one per call, k=10, {r['threads']}; top-10 recall: "
        "of exhaustive MaxSim's top 10 (exhaustive over all sampled queries took "
        f"{r['exhaustive_all_queries_seconds']}s on all threads); load average "
        f"{r['load_average'][0]:.1f} before timing, {r['load_average'][1]:.1f} after, on "
        f"{r['cpus']} CPUs"
    )


def main_scale(args: argparse.Namespace) -> int:
    """``bench colbert --scale-docs N``."""
    show_report(run_scale(args), as_json=args.json, table=print_scale)
    return 0
