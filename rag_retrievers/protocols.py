"""The small protocol what consumes search results depends on, instead of :class:`Retriever`.

Every :class:`~rag_retrievers.base.Retriever` satisfies it; so can anything else that searches
and returns :class:`~rag_retrievers.records.Hit` records (the LangChain bridge needs no more).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rag_retrievers.filters import Filter
    from rag_retrievers.records import Hit


@runtime_checkable
class Searcher(Protocol):
    """Searches by text: ``search`` and ``asearch`` return the ``k`` best hits, best first."""

    @property
    def name(self) -> str:
        """What answered (``bm25``, ``hybrid``...), for traces."""
        ...

    def search(self, query: str, k: int = 10, filter: Filter | None = None) -> list[Hit]: ...

    async def asearch(self, query: str, k: int = 10, filter: Filter | None = None) -> list[Hit]: ...
