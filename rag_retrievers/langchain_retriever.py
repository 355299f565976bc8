"""Any of our retrievers as a LangChain ``BaseRetriever``: ``invoke``, ``ainvoke``, LCEL, callbacks.

>>> from rag_retrievers import BM25, Document
>>> bm25 = BM25()
>>> bm25.add([Document(id="a", text="BM25 ranks documents by term statistics."),
...           Document(id="b", text="Sourdough needs a starter culture.", metadata={"lang": "en"})])
>>> retriever = bm25.as_langchain(k=4)
>>> [(doc.id, doc.metadata["rank"]) for doc in retriever.invoke("term statistics ranking")]
[('a', 1)]
>>> retriever.invoke("sourdough starter", k=1, filter={"lang": "en"})[0].metadata["retriever"]
'bm25'

The module is named ``langchain_retriever`` rather than ``langchain`` so that it can never stand
in for the ``langchain`` package when this folder happens to be on ``sys.path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from pydantic import ConfigDict

from rag_retrievers.errors import InvalidInputError, check_k
from rag_retrievers.filters import compile_filter
from rag_retrievers.protocols import Searcher

if TYPE_CHECKING:
    from rag_retrievers.filters import Filter
    from rag_retrievers.records import Hit

#: invoke() keywords LangChain itself may pass through to the retriever; not ours to refuse
_LANGCHAIN_KWARGS = frozenset({"verbose"})


def hit_to_langchain(hit: Hit) -> LCDocument:
    """A hit as a LangChain Document: the stored document, with ``score``, ``rank`` and
    ``retriever`` in its metadata, and for a fused hit (:class:`Hybrid`) ``members``: each
    member that found it, ``{name: {"rank": r, "score": s}}``, plus ``failed_members`` when
    members failed on this query."""
    doc = hit.to_langchain()
    members = getattr(hit, "members", None)
    if members is not None:
        doc.metadata["members"] = {
            name: {"rank": found.rank, "score": found.score} for name, found in members.items()
        }
        if getattr(hit, "failed", ()):
            doc.metadata["failed_members"] = list(hit.failed)  # type: ignore[attr-defined]
    return doc


class LangChainRetriever(BaseRetriever):
    """A LangChain retriever backed by one of ours (:meth:`Retriever.as_langchain` builds it), or
    by anything that satisfies the :class:`~rag_retrievers.protocols.Searcher` protocol.

    ``k`` and ``filter`` (our metadata filter dialect, see :mod:`rag_retrievers.filters`) are
    defaults; ``invoke(query, k=..., filter=...)`` overrides them for one call, and both also
    work as LangChain ``configurable_fields``. Every returned Document carries its id, text and
    metadata plus ``score``, ``rank`` and ``retriever`` (and ``members`` for fused hits).
    Callbacks see ``on_retriever_start``/``on_retriever_end`` (``on_retriever_error`` on
    failure) as for any LangChain retriever.

    >>> from rag_retrievers import BM25, Document
    >>> bm25 = BM25()
    >>> bm25.add([Document(id="1", text="late interaction scores tokens with MaxSim")])
    >>> lc = LangChainRetriever(retriever=bm25, k=2)
    >>> lc.invoke("maxsim tokens")[0].page_content
    'late interaction scores tokens with MaxSim'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Searcher
    """The retriever searched."""
    k: int = 4
    """Documents returned per call (LangChain's usual default), unless ``invoke(k=...)``."""
    filter: dict[str, Any] | None = None
    """Metadata filter applied to every call, unless ``invoke(filter=...)``."""

    def __init__(self, **data: Any) -> None:
        # our own errors, raised before pydantic would wrap them in a ValidationError
        retriever = data.get("retriever")
        if not isinstance(retriever, Searcher):
            raise InvalidInputError(
                f"retriever must be a rag_retrievers Retriever, got {retriever!r}; to use a "
                "LangChain retriever inside ours, see rag_retrievers.adapters.from_langchain"
            )
        if "k" in data:
            check_k(data["k"])
        if data.get("filter") is not None:
            compile_filter(data["filter"])
        super().__init__(**data)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        **kwargs: Any,
    ) -> list[LCDocument]:
        k, filter = self._call_options(kwargs)
        hits = self.retriever.search(query, k=k, filter=filter)
        return [hit_to_langchain(hit) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        **kwargs: Any,
    ) -> list[LCDocument]:
        k, filter = self._call_options(kwargs)
        hits = await self.retriever.asearch(query, k=k, filter=filter)
        return [hit_to_langchain(hit) for hit in hits]

    def _call_options(self, kwargs: dict[str, Any]) -> tuple[int, Filter | None]:
        unknown = sorted(set(kwargs) - {"k", "filter"} - _LANGCHAIN_KWARGS)
        if unknown:
            raise InvalidInputError(
                f"unknown invoke() keyword(s) {', '.join(map(repr, unknown))}; "
                "this retriever takes k and filter"
            )
        return kwargs.get("k", self.k), kwargs.get("filter", self.filter)

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        # traces name the retriever that answered (bm25, dense, hybrid...), not this wrapper
        return LangSmithRetrieverParams(ls_retriever_name=self.retriever.name or "rag_retrievers")
