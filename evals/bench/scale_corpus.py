"""The corpus and queries of ``rag-retrievers bench scale`` (also read by ``bench sparse`` and
``bench colbert --scale-docs``).

Every document of scifact, vaswani_npl, cranfield and adi (18,094, read from ``--data``, never
copied) repeated until the size asked for; copy ``c`` > 0 of a document has the id
``{dataset}/{id}#{c}`` and its text with each word dropped with probability :data:`DROP` (a
seeded, per-copy random draw), so copies are near-duplicates, not identical rows. Queries: a
fixed sample of the test queries of scifact, vaswani_npl and cranfield.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SOURCES = ("scifact", "vaswani_npl", "cranfield", "adi")
QUERY_SOURCES = ("scifact", "vaswani_npl", "cranfield")
DROP = 0.1
BATCH = 20_000


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def base_documents(data: Path) -> list[tuple[str, str]]:
    """(id, text) of every source document, title prepended as BEIR baselines index it."""
    out = []
    for name in SOURCES:
        for obj in _read_jsonl(data / name / "corpus.jsonl"):
            text = " ".join(t for t in (obj.get("title"), obj.get("text")) if t)
            out.append((f"{name}/{obj.get('_id', obj.get('id'))}", text))
    return out


def corpus_batches(data: Path, n_docs: int, size: int = BATCH) -> Iterator[list[tuple[str, str]]]:
    """The documents in batches of ``size``: the sources, then perturbed copies."""
    base = base_documents(data)
    batch: list[tuple[str, str]] = []
    produced, copy = 0, 0
    while produced < n_docs:
        rng = random.Random(copy)
        for doc_id, text in base:
            if produced >= n_docs:
                break
            if copy:
                words = text.split()
                kept = [w for w in words if rng.random() >= DROP] or words[:1]
                doc_id, text = f"{doc_id}#{copy}", " ".join(kept)
            batch.append((doc_id, text))
            produced += 1
            if len(batch) == size:
                yield batch
                batch = []
        copy += 1
    if batch:
        yield batch


def benchmark_queries(data: Path, n: int) -> list[str]:
    """A fixed random sample of ``n`` test queries of :data:`QUERY_SOURCES`."""
    queries = []
    for name in QUERY_SOURCES:
        folder = data / name
        qrels = folder / "qrels" / "test.tsv"
        judged = {line.split("\t")[0] for line in qrels.read_text(encoding="utf-8").splitlines()}
        queries += [
            q["text"] for q in _read_jsonl(folder / "queries.jsonl") if str(q["_id"]) in judged
        ]
    return random.Random(0).sample(queries, min(n, len(queries)))
