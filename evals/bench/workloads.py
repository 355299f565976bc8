"""The benchmark corpora: SciFact as is, and a large corpus of repeated BEIR documents."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag_retrievers.records import Document

CORPORA = ("scifact", "large")
LARGE_SOURCES = ("vaswani_npl", "scifact")  # repeated, in this order, to build the large corpus
SAMPLE_SEED = 0


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
