"""ColBERT: late interaction (MaxSim over token vectors) on a compact multi-vector index.

Documents are encoded once by :class:`~rag_retrievers.encoders.colbert.ColBERTEncoder` (PyLate
or Stanford ColBERT checkpoints; offline, the ``minilm`` stand-in) and stored in a
:class:`~rag_retrievers.index.multivector.MultiVectorIndex`: ColBERTv2 residual codes (2 bits a
dimension; or fp16, or int8), memory-mapped when opened, pooled two to one by default; queries
find candidates through k-means centroids and inverted lists (PLAID) and are scored exactly by
MaxSim on them, or exhaustively (``mode="exhaustive"``, the reference).

With ``uri=`` (a local ``PATH.db`` for milvus-lite, or ``http://host:19530``) candidates come
from Milvus instead: each document's stored token vectors become one MUVERA fixed-dimensional
encoding (:mod:`rag_retrievers.scoring.muvera`, settings ``fde``) in a Milvus ``FLOAT_VECTOR``
field, a query's encoding finds ``ndocs`` candidates there (filters as Milvus expressions), and
exact MaxSim over the token vectors this process keeps ranks them. Milvus's embedding-list fields
(MAX_SIM over an ARRAY of STRUCT, Milvus 2.6+ servers) are not used: milvus-lite, the engine the
tests run, has none (see :class:`~rag_retrievers.engines.milvus_search.FDECandidates`).

Re-adding a document whose text is unchanged keeps its stored vectors. A saved collection
records the model (format, settings and a sha256 of its weight files) and is refused by another.
With the stand-in, :func:`repr` and :attr:`ColBERT.label` say that it is not a ColBERT model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from rag_retrievers.adapters.encoded import rebuild_with_model

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.colbert import STAND_IN_NOTE, ColBERTEncoder
from rag_retrievers.engines.options import DEFAULT_COLLECTION, MilvusOptions, engine_from
from rag_retrievers.errors import (
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    check_query,
)
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.index.docstore import DocumentStore, write_documents
from rag_retrievers.index.multivector import IndexSettings, MultiVectorIndex, SearchMode
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever
from rag_retrievers.scoring.muvera import FDESettings

if TYPE_CHECKING:
    from rag_retrievers.engines.milvus_search import FDECandidates

DEFAULT_MODEL = "minilm"
_INDEX_OPTIONS = tuple(f.name for f in fields(IndexSettings))
#: identity entries that change the vectors a text gets
_COMPARED = (
    "format",
    "dimension",
    "query_length",
    "document_length",
    "query_marker",
    "document_marker",
    "query_expansion",
    "attend_to_expansion",
    "skiplist",
)


class ModelMismatchError(ForeignCollectionError):
    """A collection's token vectors come from another model (or other settings) than given."""


def check_same_model(saved: object, current: dict[str, Any], where: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``current`` (an encoder identity) matches the
    weights and tokenisation settings ``saved`` (a manifest's ``model`` entry) records."""
    if not isinstance(saved, dict):
        raise CorruptCollectionError(f"{where}: the manifest records no ColBERT model")
    differences = [key for key in _COMPARED if saved.get(key) != current.get(key)]
    saved_sha = (saved.get("weights") or {}).get("sha256")
    current_sha = (current.get("weights") or {}).get("sha256")
    if saved_sha and current_sha:
        if saved_sha != current_sha:
            differences.insert(0, f"weights (sha256 {saved_sha[:12]}... vs {current_sha[:12]}...)")
    elif saved.get("name") != current.get("name"):
        differences.insert(0, "name (and no weight files to compare)")
    if differences:
        raise ModelMismatchError(
            f"{where} was built with model {saved.get('name')!r} ({saved.get('path')}); the "
            f"model given now, {current.get('name')!r} ({current.get('path')}), differs in "
            f"{', '.join(differences)}. Token vectors of different models are not comparable: "
            "open it with the model it was built with (ColBERT.open(path, model=...)), or index "
            "the documents again."
        )


@register_retriever("colbert")
class ColBERT(Retriever):
    """Late-interaction retrieval: MaxSim of query and document token vectors.

    ``model``: a PyLate or Stanford ColBERT checkpoint (folder or Hugging Face id), or the
    offline stand-in ``minilm`` (the default: token embeddings of a dense model, *not* ColBERT).
    Index options (:class:`~rag_retrievers.index.multivector.IndexSettings`): ``compression``
    (``residual``, the default, ``fp16``, ``int8``), ``nbits`` (2), ``pool_factor`` (2),
    ``n_centroids``, ``nprobe``, ``ndocs``, ``mode`` (``auto``, ``candidates``, ``exhaustive``),
    ``exhaustive_max_tokens``.

    Milvus: ``engine=MilvusOptions(uri)`` (``PATH.db`` or ``http://host:19530``; field
    ``colbert`` by default; its ``index`` indexes the encodings, ``FLAT`` unless given), and ``fde``
    (:class:`~rag_retrievers.scoring.muvera.FDESettings` or its fields as a dict). Candidates then
    come from Milvus (``ndocs`` of them, by the documents' MUVERA encodings) whenever the index's
    own search would use candidates; ``mode="exhaustive"`` still scores every document here.

    >>> colbert = ColBERT("minilm")  # doctest: +SKIP
    >>> colbert.add([Document(id="a", text="Enzymes lower the activation energy."),
    ...              Document(id="b", text="Knead the dough and let it rise.")])  # doctest: +SKIP
    >>> [hit.id for hit in colbert.search("what do enzymes do", k=1)]  # doctest: +SKIP
    ['a']
    """

    #: documents per locked write (one model run): progress moves, searches interleave
    add_batch_size: ClassVar[int] = 512
    config_keys = frozenset(
        [
            *("model batch_size query_length document_length engine fde").split(),
            *_INDEX_OPTIONS,
        ]
    )
    engines = (MilvusOptions,)

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        encoder: ColBERTEncoder | None = None,
        batch_size: int = 32,
        device: str | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        engine: MilvusOptions | Mapping[str, Any] | None = None,
        fde: FDESettings | Mapping[str, Any] | None = None,
        **index_options: Any,
    ) -> None:
        super().__init__()
        self.engine = engine_from(engine, self.engines, "ColBERT")
        if fde is not None and self.engine is None:
            raise InvalidInputError("fde (MUVERA encodings) applies only with a Milvus engine")
        if isinstance(fde, Mapping):
            try:
                fde = FDESettings(**fde)
            except TypeError as exc:
                raise InvalidInputError(f"fde: {exc}") from None
        elif fde is not None and not isinstance(fde, FDESettings):
            raise InvalidInputError(f"fde must be FDESettings, a dict or None, got {fde!r}")
        unknown = sorted(set(index_options) - set(_INDEX_OPTIONS))
        if unknown:
            raise InvalidInputError(
                f"unknown ColBERT option(s) {', '.join(unknown)}; index options: "
                f"{', '.join(_INDEX_OPTIONS)}"
            )
        settings = IndexSettings(**index_options)
        if encoder is None:
            encoder = ColBERTEncoder(
                model,
                batch_size=batch_size,
                device=device,
                query_length=query_length,
                document_length=document_length,
            )
        elif not all(hasattr(encoder, a) for a in ("encode_queries", "identity", "dimension")):
            raise InvalidInputError(f"encoder must be a ColBERTEncoder, got {encoder!r}")
        elif model not in (DEFAULT_MODEL, encoder.name):
            raise InvalidInputError(
                f"model={model!r} and encoder={encoder!r} disagree; pass one of them"
            )
        self.encoder = encoder
        self._docs = DocumentStore()
        self._index = MultiVectorIndex(encoder.dimension, settings)
        self.milvus: FDECandidates | None = None
        if self.engine is not None:
            from rag_retrievers.engines.milvus_search import FDECandidates

            identity = encoder.identity()
            e = self.engine.resolved("colbert")
            self._engine_config = e.to_config()
            self.milvus = FDECandidates(
                e.uri,
                e.collection or DEFAULT_COLLECTION,
                e.field or "colbert",
                fde or FDESettings(),
                encoder.dimension,
                {
                    "model": identity.get("name"),
                    "weights_sha256": (identity.get("weights") or {}).get("sha256"),
                },
                token=e.token,
                overwrite=e.overwrite,
                adopt=e.adopt,
                index=e.index,
            )

    @property
    def settings(self) -> IndexSettings:
        return self._index.settings

    @property
    def stand_in(self) -> bool:
        """True when the model is the offline stand-in, not a ColBERT model."""
        return bool(self.encoder.stand_in)

    @property
    def label(self) -> str:
        """A short name for reports: ``colbert`` or ``colbert (stand-in: minilm ...)``."""
        if self.stand_in:
            return f"colbert ({STAND_IN_NOTE}: {self.encoder.name})"
        return "colbert"

    @property
    def fde(self) -> FDESettings | None:
        """The MUVERA settings of the Milvus field (``None`` without Milvus)."""
        return None if self.milvus is None else self.milvus.projections.settings

    def config(self) -> dict[str, Any]:
        s = self.encoder.settings
        config = {
            "model": self.encoder.name,
            "batch_size": self.encoder.batch_size,
            "query_length": s.query_length,
            "document_length": s.document_length,
            **asdict(self.settings),
        }
        if self.milvus is not None and self.fde is not None:
            config.update(engine=self._engine_config, fde=asdict(self.fde))
        return config

    def __repr__(self) -> str:
        note = f"  # {STAND_IN_NOTE}" if self.stand_in else ""
        return super().__repr__() + note

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or ``None``."""
        return self._docs.get(doc_id)

    @property
    def index(self) -> MultiVectorIndex:
        """The token index (read-only use: sizes, bytes per token)."""
        return self._index

    # -- vectors, for late-interaction PRF and inspection ---------------------------------------

    def query_vectors(self, query: str) -> np.ndarray:
        """The query's token vectors, as scored."""
        return self.encoder.encode_queries([check_query(query)])[0]

    def document_vectors(self, doc_id: str) -> np.ndarray | None:
        """A stored document's token vectors (decoded; pooled if pooling is on), or ``None``."""
        with self._lock.read():
            row = self._docs.row(doc_id)
            return None if row is None else self._index.row_vectors(row)

    def search_vectors(
        self,
        queries: list[np.ndarray],
        k: int,
        filter: CompiledFilter | None = None,
        mode: SearchMode | None = None,
    ) -> list[list[Hit]]:
        """Search with ready query token vectors; ``mode`` overrides the index's."""
        with self._lock.read():
            return self._search_vectors(queries, k, filter, mode)

    # -- token vectors, for ColBERT-PRF (adapters.prf_abilities.TokenVectors; under the read lock) -

    def encode_query_tokens(self, queries: list[str]) -> list[np.ndarray]:
        return self.encoder.encode_queries(queries)

    def document_tokens(self, doc_ids: list[str]) -> list[np.ndarray]:
        rows = [self._docs.row(doc_id) for doc_id in doc_ids]
        if any(row is None for row in rows):
            missing = next(d for d, r in zip(doc_ids, rows, strict=True) if r is None)
            raise InvalidInputError(f"no stored tokens for {missing!r}")
        return [self._index.row_vectors(row) for row in rows if row is not None]

    def token_idf(self, vectors: np.ndarray) -> np.ndarray:
        return self._index.centroid_idf(vectors)

    def search_tokens(
        self, queries: list[np.ndarray], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        return self._search_vectors(queries, k, filter, None)

    # -- the adapter's methods -----------------------------------------------------------------

    def _add(self, documents: list[Document]) -> None:
        kept: dict[str, int] = {}  # unchanged text keeps its stored tokens
        for doc in documents:
            old, row = self._docs.get(doc.id), self._docs.row(doc.id)
            if old is not None and row is not None and old.text == doc.text:
                kept[doc.id] = row
        new_texts = list(dict.fromkeys(d.text for d in documents if d.id not in kept))
        encoded = dict(zip(new_texts, self.encoder.encode_documents(new_texts), strict=True))
        # nothing has changed up to here: the encoder may fail without harm
        replaced = [row for d in documents if (row := self._docs.remove(d.id)) is not None]
        self._index.delete_rows(replaced)
        fresh = [d for d in documents if d.id not in kept]
        rows = self._index.add_rows([encoded[d.text] for d in fresh])
        rows += [self._index.add_row_alias(kept[d.id]) for d in documents if d.id in kept]
        in_rows = fresh + [d for d in documents if d.id in kept]
        if self._docs.append(in_rows) != rows:
            raise RuntimeError("document rows and index rows are out of step")
        if self.milvus is not None:
            # the encodings are of the stored (pooled, decoded) tokens MaxSim scores, which
            # exist only now; if Milvus fails, the batch leaves this process too, so every
            # document here keeps an encoding there
            try:
                self.milvus.upsert(in_rows, [self._index.row_vectors(row) for row in rows])
            except BaseException as exc:
                removed = [self._docs.remove(d.id) for d in in_rows]
                self._index.delete_rows([r for r in removed if r is not None])
                exc.add_note(
                    f"Milvus did not take the batch: its {len(in_rows)} documents were removed "
                    "from this retriever (add them again)"
                )
                raise

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
        return self._search_vectors(self.encoder.encode_queries(queries), k, filter, None)

    def _search_vectors(
        self,
        queries: list[np.ndarray],
        k: int,
        filter: CompiledFilter | None,
        mode: SearchMode | None,
    ) -> list[list[Hit]]:
        mask = self._docs.filter_mask(filter) if filter is not None else None
        if self.milvus is not None and self._milvus_mode(mode):
            return self._milvus_search(queries, k, filter, mask)
        return [
            self._docs.hits(rows, scores, self.name)
            for rows, scores in self._index.search(queries, k, mask, mode)
        ]

    def _milvus_mode(self, mode: SearchMode | None) -> bool:
        """Whether candidates come from Milvus: where the index would use its own candidates
        (``auto`` above ``exhaustive_max_tokens`` stored tokens, or ``candidates``)."""
        mode = mode or self.settings.mode
        if mode == "auto":
            return self._index.live_tokens > self.settings.exhaustive_max_tokens
        return mode == "candidates"

    def _milvus_search(
        self,
        queries: list[np.ndarray],
        k: int,
        filter: CompiledFilter | None,
        mask: np.ndarray | None,
    ) -> list[list[Hit]]:
        """Milvus's ``ndocs`` best encodings per query, ranked by exact MaxSim here."""
        if self.milvus is None or not len(self._docs):
            return [[] for _ in queries]
        n = max(self.settings.ndocs, k)
        out = []
        for query, rows in zip(
            queries, self.milvus.candidates(queries, n, filter, self._docs), strict=True
        ):
            allowed = np.zeros(self._index.n_rows, dtype=bool)
            allowed[rows] = True
            if mask is not None:  # Milvus checked the filter; this keeps it exact regardless
                allowed &= mask[: len(allowed)]
            ((found, scores),) = self._index.search([query], k, allowed, "exhaustive")
            out.append(self._docs.hits(found, scores, self.name))
        return out

    def _metadata_fields(self) -> set[str]:
        return self._docs.metadata_fields()

    # -- persistence ---------------------------------------------------------------------------

    def _manifest_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"model": self.encoder.identity()}
        if self.stand_in:
            extra["note"] = STAND_IN_NOTE
        return extra

    def _write_data(self, folder: Path) -> None:
        self._snapshot()(folder)

    def _snapshot(self) -> Callable[[Path], None]:
        docs = list(self._docs.live_documents())
        write_index = self._index.snapshot()

        def write(folder: Path) -> None:
            write_documents(folder / "documents.jsonl", docs)
            write_index(folder, "tokens")

        return write

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
        if engine is None:
            manifest = {**manifest, "config": {**manifest["config"], "fde": None}}
        # on an engine, its collection is synchronised to the snapshot below
        retriever = rebuild_with_model(
            partial(cls, device=device, engine=engine), folder, manifest, model, check_same_model
        )
        retriever._docs = DocumentStore.read_jsonl(folder / "documents.jsonl")
        index = MultiVectorIndex.read(folder, "tokens", len(retriever._docs))
        if index.dimension != retriever.encoder.dimension:
            raise ModelMismatchError(
                f"{folder.parent} holds {index.dimension}-dimensional token vectors; the model "
                f"gives {retriever.encoder.dimension}"
            )
        retriever._index = index
        if retriever.milvus is not None:
            docs, rows = retriever._docs.live_rows()
            retriever.milvus.sync(docs, [index.row_vectors(row) for row in rows])
        return retriever
