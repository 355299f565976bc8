"""Retrievers registered by name, so a manifest, the CLI or a config file can name one.

Built-in adapters are listed as import paths and imported on first use: naming ``bm25`` never
imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rag_retrievers.errors import ForeignCollectionError, UnknownNameError
from rag_retrievers.name_registry import Registry

if TYPE_CHECKING:
    from rag_retrievers.base import Retriever

R = TypeVar("R", bound="type[Retriever]")

_RETRIEVERS: Registry[type[Retriever]] = Registry(
    "retriever",
    {
        "bm25": "rag_retrievers.adapters.bm25:BM25",
        "colbert": "rag_retrievers.adapters.colbert:ColBERT",
        "dense": "rag_retrievers.adapters.dense:Dense",
        "hybrid": "rag_retrievers.adapters.hybrid:Hybrid",
        "parent": "rag_retrievers.adapters.parent:Parent",
        "prf": "rag_retrievers.adapters.prf:PRF",
        "splade": "rag_retrievers.adapters.splade:Splade",
    },
)


def register_retriever(name: str) -> Callable[[R], R]:
    """Class decorator: make a Retriever subclass openable and creatable by ``name``."""

    def decorate(cls: R) -> R:
        cls.name = name
        _RETRIEVERS.register(name, cls)
        return cls

    return decorate


def retriever_names() -> list[str]:
    return _RETRIEVERS.names()


def retriever_class(name: str) -> type[Retriever]:
    """The class registered as ``name``; :class:`UnknownNameError` lists the valid names."""
    return _RETRIEVERS.get(name)


def create_retriever(name: str, **options: Any) -> Retriever:
    return retriever_class(name)(**options)


def saved_class(manifest: Mapping[str, Any], where: Path) -> type[Retriever]:
    """The class to reopen a saved collection with: the one registered under the manifest's
    ``retriever`` name (imported on first use). :meth:`Retriever.open` dispatches through this.
    """
    try:
        return retriever_class(manifest["retriever"])
    except UnknownNameError:
        raise ForeignCollectionError(
            f"{where} was saved by retriever {manifest['retriever']!r}, which is not "
            f"registered here; registered: {', '.join(retriever_names())}"
        ) from None
