"""Index a few documents with BM25, search with a filter, save, reopen.

Run: python examples/sdk_quickstart.py
"""

import tempfile
from pathlib import Path

from rag_retrievers import BM25, Document, Retriever

docs = [
    Document(
        id="rrf",
        text="Reciprocal rank fusion sums 1/(60 + rank) over rankings.",
        metadata={"year": 2009},
    ),
    Document(
        id="bm25",
        text="BM25 weighs terms by frequency, rarity and document length.",
        metadata={"year": 1994},
    ),
    Document(
        id="splade",
        text="SPLADE learns sparse term weights with a masked language model.",
        metadata={"year": 2021},
    ),
]

bm25 = BM25()
bm25.add(docs)
for hit in bm25.search("term weights", k=3):
    print(hit.rank, hit.id, round(hit.score, 3))
print([h.id for h in bm25.search("term weights", k=3, filter={"year": {"$gte": 2000}})])

with tempfile.TemporaryDirectory() as tmp:
    bm25.save(Path(tmp) / "collection")
    reopened = Retriever.open(Path(tmp) / "collection")
    print(len(reopened), "documents after reopening;", reopened.search("fusion", k=1)[0].id)
