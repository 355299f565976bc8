"""ColBERT: late interaction (MaxSim over token vectors) on a compact multi-vector index.

Documents are encoded once by :class:`~rag_retrievers.encoders.colbert.ColBERTEncoder` (PyLate
or Stanford ColBERT checkpoints; offline, the ``minilm`` stand-in) and stored in a
:class:`~rag_retrievers.multivector.MultiVectorIndex`: ColBERTv2 residual codes (2 bits a
dimension; or fp16, or int8), memory-mapped when opened, pooled two to one by default; queries
find candidates through k-means centroids and inverted lists (PLAID) and are scored exactly by
MaxSim on them, or exhaustively (``mode="exhaustive"``, the reference).

Re-adding a document whose text is unchanged keeps its stored vectors. A saved collection
records the model (format, settings and a sha256 of its weight files) and is refused by another.
With the stand-in, :func:`repr` and :attr:`ColBERT.label` say that it is not a ColBERT model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from rag_retrievers.base import Retriever
from rag_retrievers.docstore import DocumentStore, write_documents
from rag_retrievers.encoders.colbert import STAND_IN_NOTE, ColBERTEncoder
from rag_retrievers.encoders.models import UnknownModelError
from rag_retrievers.errors import (
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    check_query,
)
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.multivector import IndexSettings, MultiVectorIndex, SearchMode
from rag_retrievers.records import Document, Hit
from rag_retrievers.registry import register_retriever

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
    Index options (:class:`~rag_retrievers.multivector.IndexSettings`): ``compression``
    (``residual``, the default, ``fp16``, ``int8``), ``nbits`` (2), ``pool_factor`` (2),
    ``n_centroids``, ``nprobe``, ``ndocs``, ``mode`` (``auto``, ``candidates``, ``exhaustive``),
    ``exhaustive_max_tokens``.

    >>> colbert = ColBERT("minilm")  # doctest: +SKIP
    >>> colbert.add([Document(id="a", text="Enzymes lower the activation energy."),
    ...              Document(id="b", text="Knead the dough and let it rise.")])  # doctest: +SKIP
    >>> [hit.id for hit in colbert.search("what do enzymes do", k=1)]  # doctest: +SKIP
    ['a']
    """

    #: documents per locked write (one model run): progress moves, searches interleave
    add_batch_size: ClassVar[int] = 512

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        encoder: ColBERTEncoder | None = None,
        batch_size: int = 32,
        device: str | None = None,
        threads: int | None = None,
        query_length: int | None = None,
        document_length: int | None = None,
        **index_options: Any,
    ) -> None:
        super().__init__()
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
                threads=threads,
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

    def config(self) -> dict[str, Any]:
        s = self.encoder.settings
        return {
            "model": self.encoder.name,
            "batch_size": self.encoder.batch_size,
            "query_length": s.query_length,
            "document_length": s.document_length,
            **asdict(self.settings),
        }

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

    # -- token vectors, for ColBERT-PRF (adapters.prf.TokenVectors; under the read lock) -------

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
        if self._docs.append(fresh + [d for d in documents if d.id in kept]) != rows:
            raise RuntimeError("document rows and index rows are out of step")

    def _delete(self, ids: list[str]) -> int:
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
        return [
            self._docs.hits(rows, scores, self.name)
            for rows, scores in self._index.search(queries, k, mask, mode)
        ]

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
        threads: int | None = None,
    ) -> Self:
        config = dict(manifest["config"])
        if not isinstance(config.get("model"), str):
            raise CorruptCollectionError(f"{folder}: the manifest records no ColBERT model")
        if model is not None:
            config["model"] = model
        try:
            retriever = cls(**config, device=device, threads=threads)
        except UnknownModelError as exc:
            exc.add_note(
                f"{folder.parent} was built with this model; if a copy of it is elsewhere, "
                "open the collection with ColBERT.open(path, model=THAT_FOLDER)"
            )
            raise
        except (TypeError, InvalidInputError) as exc:
            raise CorruptCollectionError(
                f"{folder}: manifest config does not fit ColBERT: {exc}"
            ) from None
        check_same_model(
            manifest.get("model"),
            retriever.encoder.identity(),
            f"the collection at {folder.parent}",
        )
        retriever._docs = DocumentStore.read_jsonl(folder / "documents.jsonl")
        index = MultiVectorIndex.read(folder, "tokens", len(retriever._docs))
        if index.dimension != retriever.encoder.dimension:
            raise ModelMismatchError(
                f"{folder.parent} holds {index.dimension}-dimensional token vectors; the model "
                f"gives {retriever.encoder.dimension}"
            )
        retriever._index = index
        return retriever
