"""What chunk size and overlap do to retrieval quality, judged at document level.

Each document of a BEIR-layout dataset is cut into passages by the folder runs' own
:class:`~rag_retrievers.ingest.chunking.Chunker` (for BM25 a size counts words; for a neural
retriever, the model's tokens), the passages are indexed and searched, and each document is
scored by its best passage, MaxP (Dai & Callan, "Deeper Text Understanding for IR with
Contextual Neural Language Modeling", SIGIR 2019). The document ranking is then judged against
the dataset's qrels with ir-measures, like any other run. Size 0 is the baseline: whole
documents, uncut.

    python -m rag_retrievers.evals.chunking --dataset ../shared/data/scifact \\
        --sizes 0,32,64,128,256 --overlaps 0,0.25

prints a Markdown table (``--json`` for JSON); docs/ingest.md carries its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rag_retrievers.evals.beir import BeirDataset, load_beir
from rag_retrievers.evals.retrieval import evaluate_run

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.ingest.chunking import Chunker
from rag_retrievers.ingest.tokens import token_limits
from rag_retrievers.records import Document
from rag_retrievers.spec import RetrieverSpec

METRICS = ("nDCG@10", "Recall@100")
#: passages fetched per query before they are folded into documents
DEPTH = 1000


@dataclass(frozen=True)
class ChunkingRow:
    """One configuration's result: ``size`` 0 means whole documents."""

    size: int
    overlap: int
    unit: str
    passages: int
    mean_length: float
    ndcg_at_10: float
    recall_at_100: float
    seconds: float


def passages_of(corpus: Sequence[Document], chunker: Chunker | None) -> list[Document]:
    """The passages of every document (``DOCID#n``, metadata ``doc``); each document whole
    when ``chunker`` is None."""
    if chunker is None:
        return [Document(id=f"{d.id}#0", text=d.text, metadata={"doc": d.id}) for d in corpus]
    passages = []
    for doc in corpus:
        for n, (start, end) in enumerate(chunker.spans(doc.text)):
            passages.append(
                Document(id=f"{doc.id}#{n}", text=doc.text[start:end], metadata={"doc": doc.id})
            )
    return passages


def max_passage(
    hits: dict[str, list[tuple[str, float]]], k: int = 100
) -> dict[str, dict[str, float]]:
    """Per query, each document's best passage score (MaxP), the ``k`` best documents."""
    run = {}
    for qid, ranked in hits.items():
        best: dict[str, float] = {}
        for passage_id, score in ranked:
            doc = passage_id.rsplit("#", 1)[0]
            if doc not in best or score > best[doc]:
                best[doc] = score
        top = sorted(best.items(), key=lambda item: -item[1])[:k]
        run[qid] = dict(top)
    return run


def evaluate_chunking(
    dataset: BeirDataset,
    spec: RetrieverSpec,
    size: int,
    overlap: int,
    *,
    depth: int = DEPTH,
) -> ChunkingRow:
    """Index ``dataset``'s documents cut at ``size``/``overlap`` (0: whole) with a fresh
    retriever built from ``spec``, search its queries, judge the MaxP document ranking."""
    began = time.perf_counter()
    retriever = spec.build()
    chunker = None if size == 0 else Chunker(size, overlap, limits=token_limits(retriever))
    passages = passages_of(dataset.corpus, chunker)
    retriever.add(passages, show_progress=False)
    ids = list(dataset.queries)
    results = retriever.search_batch([dataset.queries[q] for q in ids], k=depth)
    hits = {
        qid: [(h.id, h.score) for h in ranked] for qid, ranked in zip(ids, results, strict=True)
    }
    scores = evaluate_run(max_passage(hits), dataset.qrels, METRICS)
    measure = chunker if chunker is not None else Chunker(limits=token_limits(retriever))
    mean = sum(measure.length(p.text) for p in passages) / max(len(passages), 1)
    return ChunkingRow(
        size=size,
        overlap=overlap,
        unit=measure.unit,
        passages=len(passages),
        mean_length=round(mean, 1),
        ndcg_at_10=round(scores["nDCG@10"], 4),
        recall_at_100=round(scores["Recall@100"], 4),
        seconds=round(time.perf_counter() - began, 1),
    )


def table(rows: Sequence[ChunkingRow], title: str) -> str:
    """The rows as a Markdown table."""
    lines = [
        f"{title}",
        "",
        "| chunk size | overlap | passages | mean length | nDCG@10 | Recall@100 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = "whole documents" if row.size == 0 else str(row.size)
        overlap = "" if row.size == 0 else str(row.overlap)
        lines.append(
            f"| {size} | {overlap} | {row.passages} | {row.mean_length} | "
            f"{row.ndcg_at_10:.3f} | {row.recall_at_100:.3f} |"
        )
    return "\n".join(lines)


def _numbers(text: str, kind: type[int] | type[float]) -> list[float]:
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag_retrievers.evals.chunking",
        description="nDCG@10 and Recall@100 of documents cut into passages (MaxP), by chunk "
        "size and overlap",
    )
    parser.add_argument("--dataset", type=Path, required=True, help="a BEIR-layout folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--retriever", default="bm25")
    parser.add_argument("--model", help="the model of a neural retriever (e.g. minilm)")
    parser.add_argument(
        "--sizes",
        type=lambda t: _numbers(t, int),
        default=[0, 32, 64, 128, 256],
        help="chunk sizes, words for bm25, tokens for a model (0: whole documents)",
    )
    parser.add_argument(
        "--overlaps",
        type=lambda t: _numbers(t, float),
        default=[0.0, 0.25],
        help="overlaps as shares of the chunk size",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    dataset = load_beir(args.dataset, args.split)
    spec = RetrieverSpec(name=args.retriever, model=args.model)
    rows = []
    for size in args.sizes:
        for share in [0.0] if size == 0 else args.overlaps:
            if not 0 <= share < 1:
                raise InvalidInputError(f"an overlap share is in [0, 1), got {share}")
            row = evaluate_chunking(dataset, spec, int(size), int(size * share))
            rows.append(row)
            print(f"  {row}", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
    else:
        title = (
            f"{dataset.name} ({args.split}, {len(dataset.queries)} queries, "
            f"{len(dataset.corpus)} documents), {args.retriever}"
            + (f" {args.model}" if args.model else "")
            + ", MaxP"
        )
        print(table(rows, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
