"""SPLADE over the shared sparse index: learned term weights, dot-product scores.

Documents are encoded once by :class:`~rag_retrievers.encoders.sparse.SpladeEncoder` and stored as
rows of term -> weight in :class:`~rag_retrievers.index.sparse.SparseIndex` (no document-side
weighting: the model's weights are the scored values). A query is encoded the same way (or, with
``query_encoder="inference-free"``, as its word pieces weighted by idf over the indexed documents)
and scored by dot product; :meth:`Splade.explain` lists the terms a score is made of.

Re-adding a document whose text is unchanged keeps its stored vector (only its metadata is
replaced), so updating metadata never runs the model again. A saved collection records the model
(its name and a sha256 of its weight files) and is refused by another model.

With ``engine=MilvusOptions(uri)`` the document vectors also go to a Milvus sparse field and
Milvus answers the searches (:mod:`rag_retrievers.engines.milvus_search`); the weights are the
model's either way, so scores are the same. Inference-free queries take idf from this process's
live statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
from rag_retrievers.adapters.encoded import rebuild_with_model

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.sparse import QueryEncoder, SpladeEncoder
from rag_retrievers.engines.options import MilvusOptions, engine_from, milvus_field
from rag_retrievers.errors import (
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    check_k,
    check_query,
)
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.index.docstore import DocumentStore
from rag_retrievers.index.sparse import SparseIndex, snapshot_collection
from rag_retrievers.index.sparse_approx import ApproximateIndex
from rag_retrievers.index.sparse_blocks import ApproximateSearch, BlockIndex
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever

if TYPE_CHECKING:
    from rag_retrievers.engines.milvus_search import MilvusField

DEFAULT_MODEL = "splade-tiny"
Search = Literal["exact", "approximate"] | ApproximateSearch | Mapping[str, Any]


def check_same_model(saved: object, current: dict[str, Any], where: str) -> None:
    """Raise :class:`ForeignCollectionError` unless ``current`` (an encoder identity) has the
    vocabulary and weight files that ``saved`` (a manifest's ``model`` entry) records."""
    if not isinstance(saved, dict):
        raise CorruptCollectionError(f"{where}: the manifest records no sparse model")
    saved_sha = (saved.get("weights") or {}).get("sha256")
    current_sha = (current.get("weights") or {}).get("sha256")
    differences = []
    if saved.get("vocab_size") != current["vocab_size"]:
        differences.append(f"vocabulary ({saved.get('vocab_size')} vs {current['vocab_size']})")
    if saved_sha and current_sha:
        if saved_sha != current_sha:
            differences.append(f"weights (sha256 {saved_sha[:12]}... vs {current_sha[:12]}...)")
    elif saved.get("name") != current["name"]:
        differences.append("name (and no weight files to compare)")
    if differences:
        raise ForeignCollectionError(
            f"{where} was built with sparse model {saved.get('name')!r} ({saved.get('path')}); "
            f"the model given now, {current['name']!r} ({current.get('path')}), differs in "
            f"{' and '.join(differences)}. Term weights of different models are not "
            "comparable: open it with the model it was built with "
            "(Splade.open(path, model=...)), or index the documents again."
        )


class _DocumentFrequencies(Mapping[str, int]):
    """term -> number of live documents holding it, read from the index without copying."""

    def __init__(self, index: SparseIndex) -> None:
        self._ids, self._df = index.term_ids, index.document_frequency

    def __getitem__(self, term: str) -> int:
        return int(self._df[self._ids[term]])

    def __contains__(self, term: object) -> bool:
        return term in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


def _row_vectors(index: SparseIndex, rows: Sequence[int]) -> list[dict[str, float]]:
    """The stored term -> value dict of each row."""
    terms = index.terms
    return [
        dict(zip(map(terms.__getitem__, ids.tolist()), values.tolist(), strict=True))
        for ids, values in index.raw_rows(rows)
    ]


@register_retriever("splade")
class Splade(Retriever):
    """Learned sparse retrieval with a SPLADE model; scores are dot products of term weights.

    ``model`` is a short name (``splade-tiny``, the default), a local folder or a Hugging Face
    id; or pass a ready ``encoder`` (:class:`~rag_retrievers.encoders.sparse.SpladeEncoder`),
    which can be shared between retrievers. ``query_encoder="inference-free"`` encodes queries
    without running the model (word pieces weighted by idf, or the model's query table).

    >>> splade = Splade()  # doctest: +SKIP
    >>> splade.add([Document(id="a", text="Enzymes lower the activation energy."),
    ...             Document(id="b", text="Knead the dough and let it rise.")])  # doctest: +SKIP
    >>> [hit.id for hit in splade.search("what do enzymes do", k=1)]  # doctest: +SKIP
    ['a']
    >>> splade.explain("what do enzymes do", "a", top=2)  # doctest: +SKIP
    [('enzyme', 5.188...), ('##ase', 3.932...)]
    """

    #: documents per locked write (one model run): the progress bar moves and searches
    #: interleave every batch
    add_batch_size: ClassVar[int] = 1024
    config_keys = frozenset("model query_encoder batch_size dtype engine search".split())
    engines = (MilvusOptions,)

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        encoder: SpladeEncoder | None = None,
        query_encoder: QueryEncoder = "splade",
        batch_size: int = 16,
        device: str | None = None,
        dtype: str = "float32",
        engine: MilvusOptions | Mapping[str, Any] | None = None,
        search: Search = "exact",
    ) -> None:
        super().__init__()
        approximate = None if search == "exact" else ApproximateSearch.from_config(search)
        if approximate is not None and engine is not None:
            raise InvalidInputError(
                f"search={search!r} applies to the embedded index; with engine=... the engine "
                "answers the searches: leave search='exact'"
            )
        if encoder is None:
            encoder = SpladeEncoder(
                model,
                query_encoder=query_encoder,
                batch_size=batch_size,
                device=device,
            )
        elif not isinstance(encoder, SpladeEncoder):
            raise InvalidInputError(f"encoder must be a SpladeEncoder, got {encoder!r}")
        elif model not in (DEFAULT_MODEL, encoder.name, encoder.reference):
            raise InvalidInputError(
                f"model={model!r} and encoder={encoder!r} disagree; pass one of them"
            )
        elif query_encoder != encoder.query_encoder:
            raise InvalidInputError(
                f"query_encoder={query_encoder!r}, but the encoder given encodes queries with "
                f"{encoder.query_encoder!r}; set it on the encoder"
            )
        self.encoder = encoder
        self.search_settings = approximate
        self._index = SparseIndex(None, dtype)
        self._approximate = self._approximate_index()
        self._docs = DocumentStore()
        self.milvus: MilvusField | None = None
        self.engine = engine_from(engine, self.engines, "Splade")
        if self.engine is not None:
            from rag_retrievers.engines.milvus import VectorField

            identity = self.encoder.identity()
            spec = VectorField(
                "sparse",
                identity={
                    "retriever": "splade",
                    "model": identity["name"],
                    "weights_sha256": (identity.get("weights") or {}).get("sha256"),
                },
            )
            self.milvus, self._engine_config = milvus_field(self.engine, "splade", spec)

    def config(self) -> dict[str, Any]:
        return {
            "model": self.encoder.reference,
            "query_encoder": self.encoder.query_encoder,
            "batch_size": self.encoder.batch_size,
            "dtype": self._index.dtype.name,
            **({"engine": self._engine_config} if self.milvus is not None else {}),
            **({"search": s.config()} if (s := self.search_settings) is not None else {}),
        }

    def _approximate_index(self) -> ApproximateIndex | None:
        if self.search_settings is None:
            return None
        return ApproximateIndex(self._index, self.search_settings)

    def _top_rows(
        self, weights: dict[str, float], k: int, mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best rows: approximately where the settings and the collection allow it,
        else (and always as the fallback) exactly."""
        if self._approximate is not None:
            found = self._approximate.search(weights, k, mask, len(self._docs))
            if found is not None:
                return found
        return self._index.search(weights, k, mask)

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or ``None``."""
        return self._docs.get(doc_id)

    # -- queries -------------------------------------------------------------------------------

    def query_weights(self, query: str) -> dict[str, float]:
        """The query as the sparse vector it is scored with: term -> weight."""
        with self._lock.read():
            return self._encode_queries([check_query(query)])[0]

    def _encode_queries(self, queries: list[str]) -> list[dict[str, float]]:
        return self.encoder.encode_queries(
            queries,
            document_frequency=_DocumentFrequencies(self._index),
            n_documents=len(self._docs),
        )

    def explain(self, query: str, doc_id: str, top: int = 10) -> list[tuple[str, float]]:
        """The ``top`` terms that contribute most to ``doc_id``'s score for ``query``, as
        (term, query weight x document weight), largest first; they sum to the score when
        ``top`` covers them all. Empty when the document shares no term with the query."""
        check_query(query)
        check_k(top, "top")
        if not isinstance(doc_id, str):
            raise InvalidInputError(f"doc_id must be a str, got {doc_id!r}")
        with self._lock.read():
            row = self._docs.row(doc_id)
            if row is None:
                raise InvalidInputError(f"no document with id {doc_id!r} in this collection")
            weights = self._encode_queries([query])[0]
            term_ids, query_weights = self._index.query_vector(weights)
            contributions = []
            for term_id, q in zip(term_ids.tolist(), query_weights.tolist(), strict=True):
                one = np.ones(1, dtype=self._index.dtype)
                d = float(self._index.scores(np.asarray([term_id]), one)[row])
                if d:
                    contributions.append((self._index.terms[term_id], q * d))
        contributions.sort(key=lambda tc: (-tc[1], tc[0]))
        return contributions[:top]

    # -- term vectors, for pseudo-relevance feedback (adapters.prf_abilities.TermVectors) ------

    def query_terms(self, query: str) -> dict[str, float]:
        """The query as term -> weight, as it is scored (the model's weights; idf-weighted word
        pieces in inference-free mode)."""
        return self.query_weights(query)

    def document_terms(self, doc_id: str) -> dict[str, float]:
        """A stored document's term weights, as indexed ({} if absent)."""
        with self._lock.read():
            row = self._docs.row(doc_id)
            return {} if row is None else _row_vectors(self._index, [row])[0]

    def document_fraction(self, term: str) -> float:
        """The share of documents whose vector holds ``term``."""
        with self._lock.read():
            tid, n = self._index.term_ids.get(term), self._index.n_live
            return float(self._index.document_frequency[tid]) / n if tid is not None and n else 0.0

    def search_terms(
        self, terms: Mapping[str, float], k: int, filter: CompiledFilter | None
    ) -> list[Hit]:
        """A weighted bag of terms scored by dot product, in the space of :meth:`query_terms`
        (so ``search_terms(query_terms(q))`` ranks as ``search(q)``)."""
        with self._lock.read():
            mask = self._docs.filter_mask(filter) if filter is not None else None
            rows, scores = self._top_rows(dict(terms), k, mask)
            return self._docs.hits(rows, scores, self.name)

    # -- the adapter's methods -----------------------------------------------------------------

    def _add(self, documents: list[Document]) -> None:
        # unchanged text keeps its stored vector; each distinct new text is encoded once
        kept_rows: dict[str, int] = {}
        for doc in documents:
            row = self._docs.row(doc.id)
            old = self._docs.get(doc.id)
            if row is not None and old is not None and old.text == doc.text:
                kept_rows[doc.id] = row
        new_texts = list(dict.fromkeys(d.text for d in documents if d.id not in kept_rows))
        encoded = dict(zip(new_texts, self.encoder.encode_documents(new_texts), strict=True))
        kept = dict(
            zip(kept_rows, _row_vectors(self._index, list(kept_rows.values())), strict=True)
        )
        # nothing has changed up to here: the encoder may fail without harm
        vectors = [kept[d.id] if d.id in kept else encoded[d.text] for d in documents]
        replaced = [row for d in documents if (row := self._docs.remove(d.id)) is not None]
        self._index.delete_rows(replaced)
        rows = self._index.add_rows(vectors)
        self._docs.append(documents)
        if self.milvus is not None:
            from rag_retrievers.engines.milvus_search import sparse_rows

            self.milvus.upsert(documents, sparse_rows(self._index, rows.tolist()))

    def _delete(self, ids: list[str]) -> int:
        if self.milvus is not None:
            self.milvus.delete([doc_id for doc_id in ids if doc_id in self._docs])
        rows = [row for doc_id in ids if (row := self._docs.remove(doc_id)) is not None]
        self._index.delete_rows(rows)
        return len(rows)

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        if not len(self._docs):
            return [[] for _ in queries]  # nothing to score: don't run the model
        if self.milvus is not None:
            found = self.milvus.search(self.milvus_queries(queries), k, filter, self._docs)
            return [self._docs.hits(rows, scores, self.name) for rows, scores in found]
        mask = self._docs.filter_mask(filter) if filter is not None else None
        results = []
        for weights in self._encode_queries(queries):
            rows, scores = self._top_rows(weights, k, mask)
            results.append(self._docs.hits(rows, scores, self.name))
        return results

    def milvus_queries(self, queries: list[str]) -> list[dict[int, float]]:
        """The queries as sparse vectors of the Milvus field (term id + 1 -> weight)."""
        from rag_retrievers.engines.milvus_search import sparse_query

        return [sparse_query(self._index, w) for w in self._encode_queries(queries)]

    def _metadata_fields(self) -> set[str]:
        return self._docs.metadata_fields()

    # -- persistence ---------------------------------------------------------------------------

    def _manifest_extra(self) -> dict[str, Any]:
        return {"model": self.encoder.identity()}

    def _write_data(self, folder: Path) -> None:
        self._snapshot()(folder)

    def _snapshot(self) -> Callable[[Path], None]:
        write = snapshot_collection(self._docs, self._index)
        write_blocks = self._approximate.snapshot() if self._approximate is not None else None
        if write_blocks is None:
            return write

        def write_both(folder: Path) -> None:
            write(folder)
            write_blocks(folder)

        return write_both

    @classmethod
    def _read_data(
        cls,
        folder: Path,
        manifest: dict[str, Any],
        *,
        model: str | None = None,
        device: str | None = None,
        engine: MilvusOptions | None = None,
    ) -> Self:
        # on an engine, its collection is synchronised to the snapshot below
        retriever = rebuild_with_model(
            partial(cls, device=device, engine=engine), folder, manifest, model, check_same_model
        )
        retriever._docs = DocumentStore.read_jsonl(folder / "documents.jsonl")
        retriever._index = SparseIndex.read(
            folder, len(retriever._docs), dtype=manifest["config"].get("dtype", "float32")
        )
        retriever._approximate = retriever._approximate_index()
        if retriever._approximate is not None:
            # a saved block index is reused when built with these settings, else rebuilt lazily
            blocks = BlockIndex.read(folder, len(retriever._docs), len(retriever._index.terms))
            if blocks is not None:
                retriever._approximate.adopt(blocks)
        if retriever.milvus is not None:
            from rag_retrievers.engines.milvus_search import sparse_rows

            docs, rows = retriever._docs.live_rows()
            retriever.milvus.sync(docs, sparse_rows(retriever._index, rows))
        return retriever
