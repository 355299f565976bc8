"""Benchmarks, each printing ratios against the peers measured side by side in one run.

``rag-retrievers bench encoders`` (:mod:`~rag_retrievers.evals.bench.encoders`): Dense and Splade
indexing against the raw sentence-transformers encode. The rest of this package is
``rag-retrievers bench bm25``:

Three systems index the same documents and answer the same queries in one run: our
:class:`rag_retrievers.BM25`, ``bm25s`` (numpy backend) and ``rank_bm25.BM25Okapi``. Each system
runs in its own fresh Python process (``python -m rag_retrievers.evals.bench --worker SPEC``), so
its peak memory is its own; specs and results travel as JSON files.

Measured per system and corpus: index build time, single-query throughput and latency (one query
per call, k=10), batch throughput (the system's batch API) and peak memory. On SciFact the run
also checks correctness: top-10 overlap with bm25s and nDCG@10 (ir-measures).

Run it with ``python -m rag_retrievers.evals.bench`` (same options as ``rag-retrievers bench
bm25``).

Modules: :mod:`~rag_retrievers.evals.bench.command` (options, one run over the corpora),
:mod:`~rag_retrievers.evals.bench.workloads` (corpora and queries),
:mod:`~rag_retrievers.evals.bench.systems` (the three systems),
:mod:`~rag_retrievers.evals.bench.worker` (one system timed in its own process),
:mod:`~rag_retrievers.evals.bench.stats` (throughput, latency, ratios, correctness) and
:mod:`~rag_retrievers.evals.bench.report` (the printed tables).
"""

from rag_retrievers.evals.bench.command import add_bm25_arguments, main_bm25

__all__ = ["add_bm25_arguments", "main_bm25"]
