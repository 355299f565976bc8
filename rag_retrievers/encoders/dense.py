"""A dense bi-encoder on sentence-transformers: texts in, float32 vectors out.

The model argument takes a short name (``minilm``), a local folder or a Hugging Face id
(:func:`rag_retrievers.encoders.models.resolve_model`). torch and sentence-transformers are imported
on first use, so importing this module costs nothing.

- **Prompts.** A model configured with ``"query"``/``"document"`` prompts (E5, BGE, nomic, ...)
  gets them by default; ``query_prompt``/``document_prompt`` override them (``""`` for none). The
  prompts actually used are passed explicitly on every call, so a model's ``default_prompt_name``
  never applies silently.
- **Normalisation.** Default: L2-normalise when the model's similarity is cosine, so a dot product
  is the cosine; the resolved value is part of :meth:`DenseEncoder.identity`.
- **Length-sorted batches.** Texts are encoded longest first in chunks of similar length (less
  padding), and the vectors are put back in input order.
- **Loaded once.** Models are cached per process by (folder, device): a second encoder for the same
  model costs nothing. :func:`clear_model_cache` drops them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from rag_retrievers.encoders.batching import check_texts, longest_first
from rag_retrievers.encoders.models import (
    ResolvedModel,
    folder_stamp,
    import_sentence_transformers,
    loading_error,
    quiet_loading,
    resolve_model,
)
from rag_retrievers.errors import InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Similarity = Literal["cosine", "dot"]

#: texts per call into the model: ST sorts within a call, we sort across calls
_CHUNK_BATCHES = 16


@lru_cache(maxsize=4)
def _load(
    path: str, local: bool, device: str | None, trust_remote_code: bool, stamp: tuple[Any, ...]
) -> Any:
    # ``stamp`` (sizes and mtimes of a local folder's files) makes a replaced model load again
    st = import_sentence_transformers()
    with quiet_loading():
        return st.SentenceTransformer(
            path, device=device, trust_remote_code=trust_remote_code, local_files_only=local
        )


def clear_model_cache() -> None:
    """Forget the models loaded so far (their memory is freed once no encoder uses them)."""
    _load.cache_clear()


def _load_model(
    resolved: ResolvedModel, device: str | None, trust_remote_code: bool
) -> SentenceTransformer:
    stamp = folder_stamp(resolved)
    try:
        return _load(resolved.path, resolved.local, device, trust_remote_code, stamp)
    except MissingDependencyError:
        raise
    except Exception as exc:  # the loaders raise OSError, ValueError, HTTP errors, ...
        raise loading_error(resolved, "sentence-transformers model", exc) from exc


@dataclass(frozen=True)
class EncoderSettings:
    """What an encoder was built with; JSON values, so a manifest can record them."""

    model: str
    batch_size: int
    normalize: bool
    query_prompt: str
    document_prompt: str
    similarity: Similarity


class DenseEncoder:
    """Encode queries and documents with a sentence-transformers bi-encoder.

    >>> encoder = DenseEncoder("minilm")  # doctest: +SKIP
    >>> encoder.encode_queries(["what is bm25"]).shape  # doctest: +SKIP
    (1, 384)

    ``threads`` calls ``torch.set_num_threads`` (a process-wide setting) only when given.
    """

    def __init__(
        self,
        model: str = "minilm",
        *,
        device: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        normalize: bool | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise InvalidInputError(f"threads must be an int >= 1 or None, got {threads!r}")
        for name, value in (("query_prompt", query_prompt), ("document_prompt", document_prompt)):
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"{name} must be a str or None, got {value!r}")
        if normalize is not None and not isinstance(normalize, bool):
            raise InvalidInputError(f"normalize must be True, False or None, got {normalize!r}")
        self.resolved = resolve_model(model, "dense")
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.device = device
        self.threads = threads
        self.batch_size = batch_size
        self.model = _load_model(self.resolved, device, trust_remote_code)
        similarity = str(getattr(self.model, "similarity_fn_name", None) or "cosine")
        if similarity not in ("cosine", "dot"):
            raise InvalidInputError(
                f"dense model {model!r} uses similarity {similarity!r}; supported: cosine, dot"
            )
        self.similarity: Similarity = "cosine" if similarity == "cosine" else "dot"
        prompts: dict[str, str] = dict(getattr(self.model, "prompts", None) or {})
        self.query_prompt: str = (
            query_prompt if query_prompt is not None else prompts.get("query", "")
        )
        self.document_prompt: str = (
            document_prompt
            if document_prompt is not None
            else prompts.get("document", prompts.get("passage", ""))
        )
        self.normalize = normalize if normalize is not None else self.similarity == "cosine"
        self._dimension: int | None = None
        self._identity: dict[str, Any] | None = None

    # -- what the encoder is -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def dimension(self) -> int:
        """Length of the vectors this encoder returns."""
        if self._dimension is None:
            get = getattr(self.model, "get_embedding_dimension", None) or getattr(
                self.model, "get_sentence_embedding_dimension", None
            )
            dim = get() if get is not None else None
            if dim is None:  # some modules cannot tell: ask the model
                dim = int(self._encode(["dimension probe"], "").shape[1])
            self._dimension = int(dim)
        return self._dimension

    def settings(self) -> EncoderSettings:
        return EncoderSettings(
            model=self.name,
            batch_size=self.batch_size,
            normalize=self.normalize,
            query_prompt=self.query_prompt,
            document_prompt=self.document_prompt,
            similarity=self.similarity,
        )

    def identity(self) -> dict[str, Any]:
        """Model name, folder, dimension, similarity, normalisation, prompts and a fingerprint
        (bytes + sha256) of the weight files; a collection records it and refuses other models."""
        if self._identity is None:
            self._identity = self.resolved.identity(
                dimension=self.dimension,
                similarity=self.similarity,
                normalize=self.normalize,
                query_prompt=self.query_prompt,
                document_prompt=self.document_prompt,
            )
        return dict(self._identity)

    def __repr__(self) -> str:
        return (
            f"DenseEncoder({self.name!r}, batch_size={self.batch_size}, "
            f"normalize={self.normalize}, query_prompt={self.query_prompt!r}, "
            f"document_prompt={self.document_prompt!r})"
        )

    # -- encoding ------------------------------------------------------------------------------

    def encode_documents(
        self, texts: Sequence[str], show_progress: bool | None = None
    ) -> np.ndarray:
        """``(len(texts), dimension)`` float32 vectors of documents, in input order."""
        return self._encode(texts, self.document_prompt, show_progress)

    def encode_queries(self, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray:
        """``(len(texts), dimension)`` float32 vectors of queries, in input order."""
        return self._encode(texts, self.query_prompt, show_progress)

    def _encode(
        self, texts: Sequence[str], prompt: str, progress: bool | None = None
    ) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows in longest_first(texts, self.batch_size * _CHUNK_BATCHES, "encoding", progress):
            out[rows] = self.model.encode(
                [texts[i] for i in rows],
                prompt=prompt,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
            )
        return out
