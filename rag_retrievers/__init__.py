"""rag-retrievers: pluggable retrievers for RAG behind one small interface.

>>> from rag_retrievers import BM25, Document
>>> bm25 = BM25()
>>> bm25.add([Document(id="1", text="Reciprocal rank fusion combines rankings.")])
>>> bm25.search("rank fusion", k=3)[0].id
'1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag_retrievers.base import Retriever
from rag_retrievers.errors import (
    CollectionError,
    CorruptCollectionError,
    DuplicateIdError,
    FilterError,
    ForeignCollectionError,
    InvalidDocumentError,
    InvalidInputError,
    InvalidQueryError,
    MissingDependencyError,
    RagRetrieversError,
    UnknownNameError,
)
from rag_retrievers.records import Answer, Document, Hit
from rag_retrievers.registry import create_retriever, register_retriever, retriever_names

if TYPE_CHECKING:
    from rag_retrievers.adapters.bm25 import BM25


__all__ = [
    "BM25",
    "Answer",
    "CollectionError",
    "CorruptCollectionError",
    "Document",
    "DuplicateIdError",
    "FilterError",
    "ForeignCollectionError",
    "Hit",
    "InvalidDocumentError",
    "InvalidInputError",
    "InvalidQueryError",
    "MissingDependencyError",
    "RagRetrieversError",
    "Retriever",
    "UnknownNameError",
    "create_retriever",
    "open_collection",
    "register_retriever",
    "retriever_names",
]


def open_collection(path: Any) -> Retriever:
    """Open a saved collection with whichever retriever saved it."""
    return Retriever.open(path)


def __getattr__(name: str) -> Any:
    # adapters load on first use, so `import rag_retrievers` stays light
    if name == "__version__":
        from importlib.metadata import version

        return version("rag-retrievers")
    if name == "BM25":
        from rag_retrievers.adapters.bm25 import BM25

        return BM25
    raise AttributeError(f"module 'rag_retrievers' has no attribute {name!r}")
