"""The quickstart: index a small corpus this module writes, search it, save it, reopen it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from rag_retrievers.records import Document

CORPUS = [
    (
        "bm25",
        "BM25 ranks documents by term frequency, inverse document frequency and length.",
        "lexical",
    ),
    (
        "tfidf",
        "TF-IDF weights a term by how often it occurs in a document and how rare it is.",
        "lexical",
    ),
    (
        "stemming",
        "Stemming reduces inflected words such as running and runs to the stem run.",
        "lexical",
    ),
    (
        "stopwords",
        "Stopwords like the, of and and are dropped because they carry little meaning.",
        "lexical",
    ),
    (
        "inverted-index",
        "An inverted index maps every term to the documents that contain it.",
        "lexical",
    ),
    (
        "dense",
        "Dense retrieval embeds queries and documents as vectors and compares them by cosine.",
        "neural",
    ),
    (
        "splade",
        "SPLADE learns sparse term weights and expands documents with related vocabulary.",
        "neural",
    ),
    (
        "colbert",
        "ColBERT keeps one embedding per token and scores with late interaction MaxSim.",
        "neural",
    ),
    (
        "cross-encoder",
        "A cross-encoder reads query and document together and is accurate but slow.",
        "neural",
    ),
    (
        "rrf",
        "Reciprocal rank fusion combines rankings by summing one over sixty plus the rank.",
        "fusion",
    ),
    (
        "rm3",
        "RM3 pseudo relevance feedback expands the query with terms from the top documents.",
        "feedback",
    ),
    (
        "rocchio",
        "Rocchio feedback moves the query vector towards the centroid of relevant documents.",
        "feedback",
    ),
    (
        "ndcg",
        "nDCG rewards relevant documents near the top of a ranking, discounted by log rank.",
        "evaluation",
    ),
    (
        "recall",
        "Recall at one hundred counts the share of relevant documents in the top hundred.",
        "evaluation",
    ),
    (
        "faithfulness",
        "A faithful answer states only what the retrieved context supports.",
        "evaluation",
    ),
    (
        "rag",
        "Retrieval-augmented generation feeds retrieved passages to a language model.",
        "generation",
    ),
]

QUERIES = [
    ("what is bm25 ranking", None),
    ("combining rankings from several retrievers", None),
    ("expanding the query with feedback terms", {"topic": "feedback"}),
]


def demo_documents() -> list[Document]:
    return [Document(id=i, text=t, metadata={"topic": topic}) for i, t, topic in CORPUS]


def run_demo(directory: str | None = None) -> int:
    from rag_retrievers.adapters.bm25 import BM25
    from rag_retrievers.base import Retriever

    bm25 = BM25()
    bm25.add(demo_documents())
    print(f"indexed {len(bm25)} documents with {bm25!r}\n")
    for query, filter in QUERIES:
        print(f"query: {query!r}" + (f"  filter: {json.dumps(filter)}" if filter else ""))
        for hit in bm25.search(query, k=3, filter=filter):
            text = hit.document.text if hit.document else ""
            print(f"  {hit.rank}. {hit.id:<14} {hit.score:6.3f}  {text[:60]}")
        print()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(directory) if directory else Path(tmp) / "demo-collection"
        bm25.save(path)
        reopened = Retriever.open(path)
        same = all(
            [h.id for h in reopened.search(q, k=3, filter=f)]
            == [h.id for h in bm25.search(q, k=3, filter=f)]
            for q, f in QUERIES
        )
        print(
            f"saved to {path} and reopened as {type(reopened).__name__}: "
            f"{len(reopened)} documents, identical results: {same}"
        )
    return 0 if same else 1
