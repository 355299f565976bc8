"""Evaluate BM25 on a BEIR-layout dataset from Python.

Run: python examples/eval_beir.py ../shared/data/scifact
(the same as: rag-retrievers eval retrieval --dataset ../shared/data/scifact --retriever bm25)
"""

import sys

from rag_retrievers.evals.beir import load_beir
from rag_retrievers.evals.retrieval import evaluate_run, run_queries, write_trec_run

from rag_retrievers import BM25

dataset = load_beir(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/scifact")
bm25 = BM25()
bm25.add(dataset.corpus)
run = run_queries(bm25, dataset.queries, k=100)
for metric, value in evaluate_run(run.scores(), dataset.qrels).items():
    print(f"{metric} {value:.4f}")
write_trec_run(run.hits, "runs/example-bm25.trec", tag="bm25")
