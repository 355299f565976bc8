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
from rag_retrievers.engines.options import ChromaOptions, MilvusOptions
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
    from rag_retrievers.adapters.colbert import ColBERT
    from rag_retrievers.adapters.dense import Dense
    from rag_retrievers.adapters.from_langchain import (
        LangChainRetrieverAdapter,
        LangChainVectorStore,
    )
    from rag_retrievers.adapters.hybrid import Hybrid
    from rag_retrievers.adapters.parent import Parent
    from rag_retrievers.adapters.prf import PRF
    from rag_retrievers.adapters.splade import Splade
    from rag_retrievers.app.rag import RAG
    from rag_retrievers.langchain_retriever import LangChainRetriever

#: public names imported on first use: name -> "module:attribute"
_LAZY = {
    "BM25": "rag_retrievers.adapters.bm25:BM25",
    "ColBERT": "rag_retrievers.adapters.colbert:ColBERT",
    "Dense": "rag_retrievers.adapters.dense:Dense",
    "Splade": "rag_retrievers.adapters.splade:Splade",
    "Hybrid": "rag_retrievers.adapters.hybrid:Hybrid",
    "PRF": "rag_retrievers.adapters.prf:PRF",
    "Parent": "rag_retrievers.adapters.parent:Parent",
    "RAG": "rag_retrievers.app.rag:RAG",
    "LangChainRetriever": "rag_retrievers.langchain_retriever:LangChainRetriever",
    "LangChainVectorStore": "rag_retrievers.adapters.from_langchain:LangChainVectorStore",
    "LangChainRetrieverAdapter": (
        "rag_retrievers.adapters.from_langchain:LangChainRetrieverAdapter"
    ),
}


__all__ = [
    "BM25",
    "PRF",
    "RAG",
    "Answer",
    "ChromaOptions",
    "ColBERT",
    "CollectionError",
    "CorruptCollectionError",
    "Dense",
    "Document",
    "DuplicateIdError",
    "FilterError",
    "ForeignCollectionError",
    "Hit",
    "Hybrid",
    "InvalidDocumentError",
    "InvalidInputError",
    "InvalidQueryError",
    "LangChainRetriever",
    "LangChainRetrieverAdapter",
    "LangChainVectorStore",
    "MilvusOptions",
    "MissingDependencyError",
    "Parent",
    "RagRetrieversError",
    "Retriever",
    "Splade",
    "UnknownNameError",
    "create_retriever",
    "open_collection",
    "register_retriever",
    "retriever_names",
]


def open_collection(path: Any) -> Retriever:
    """Open a saved collection with whichever retriever saved it."""
    return Retriever.open(path)


def __dir__() -> list[str]:
    # the lazy names too, for tab completion in a REPL
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    # adapters load on first use, so `import rag_retrievers` stays light
    if name == "__version__":
        from importlib.metadata import version

        return version("rag-retrievers")
    if name in _LAZY:
        import importlib

        module, _, attr = _LAZY[name].partition(":")
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'rag_retrievers' has no attribute {name!r}")
