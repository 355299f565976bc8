"""Sentence vectors for the judges, each distinct text encoded once, optionally kept on disk.

Judging a labelled set embeds thousands of sentences (minutes on a laptop CPU for MiniLM); the
on-disk cache makes a second run cost nothing. A cache folder belongs to one model: its name
carries a digest of the encoder's identity (weights fingerprint, prompts, normalisation). It holds
shards, each a pair of plain files written atomically: ``<digest>.npy`` (float32 vectors) and
``<digest>.json`` (the sha256 of each text, in row order). No pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rag_retrievers.encoders.dense import DenseEncoder

DEFAULT_CACHE = Path("runs") / "faithfulness-cache"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_digest(value: Any) -> str:
    """sha256 of ``value``'s canonical JSON: a cache key that is the same in every process."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VectorShards:
    """Fixed-length float32 vectors by string key, kept in memory and (optionally) on disk in
    ``folder`` as shards written atomically: ``<digest>.npy`` and ``<digest>.json`` (the keys)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._memory: dict[str, np.ndarray] = {}
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        if self.folder is None or not self.folder.is_dir():
            return
        for keys_file in sorted(self.folder.glob("*.json")):
            vectors_file = keys_file.with_suffix(".npy")
            try:
                keys = json.loads(keys_file.read_text(encoding="utf-8"))
                vectors = np.load(vectors_file, allow_pickle=False)
            except (OSError, ValueError):
                continue  # a damaged shard is recomputed, never trusted
            if not isinstance(keys, list) or vectors.ndim != 2 or len(keys) != len(vectors):
                continue
            for key, vector in zip(keys, vectors, strict=True):
                self._memory.setdefault(str(key), vector)

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys (first occurrence order, no repeats) that have no vector yet."""
        if not self._loaded:
            self._load()
        return list(dict.fromkeys(k for k in keys if k not in self._memory))

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors, strict=True):
            self._memory[key] = vector
        if self.folder is None or not keys:
            return
        name = text_key("\n".join(keys))[:20]
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
        # vectors first: a shard counts once its keys file exists
        atomic_write_bytes(self.folder / f"{name}.npy", buffer.getvalue())
        atomic_write_bytes(self.folder / f"{name}.json", json.dumps(keys).encode("utf-8"))

    def get(self, keys: Sequence[str]) -> np.ndarray:
        return np.stack([self._memory[k] for k in keys]).astype(np.float32)


def cache_folder(cache_dir: Path, kind: str, model_name: str, identity: dict[str, Any]) -> Path:
    """``cache_dir/kind/<model>-<digest of identity>``: one folder per model and what it stores."""
    digest = stable_digest(identity)[:16]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in model_name)[-40:]
    return cache_dir / kind / f"{safe}-{digest}"


def local_model_identity(model_name: str) -> dict[str, Any] | None:
    """A local dense model's folder and weights fingerprint, known without loading it (so a run
    served from a cache never loads the model); ``None`` for a model that is not local."""
    from rag_retrievers.encoders.models import resolve_model, weights_fingerprint

    resolved = resolve_model(model_name, "dense")
    fingerprint = weights_fingerprint(resolved.path) if resolved.local else None
    return None if fingerprint is None else {"path": resolved.path, "weights": fingerprint}


class SentenceEmbedder:
    """L2-normalised vectors of texts from a dense model, memoised in memory and on disk.

    >>> embedder = SentenceEmbedder("minilm", cache_dir=None)  # doctest: +SKIP
    >>> embedder.embed(["a sentence", "a sentence"]).shape  # doctest: +SKIP
    (2, 384)
    """

    def __init__(
        self, model: str = "minilm", *, cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.model_name = model
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._encoder: DenseEncoder | None = None
        self._store: VectorShards | None = None
        self._identity: dict[str, Any] | None = None

    @property
    def encoder(self) -> DenseEncoder:
        if self._encoder is None:
            from rag_retrievers.encoders.dense import DenseEncoder

            self._encoder = DenseEncoder(self.model_name)
        return self._encoder

    def identity(self) -> dict[str, Any]:
        """What the vectors depend on. For a local model folder: its weights fingerprint, known
        without loading the model, so a run served from the cache never loads it."""
        if self._identity is None:
            known = local_model_identity(self.model_name)
            self._identity = {**(known or self.encoder.identity()), "unit": True}
        return self._identity

    @property
    def _shards(self) -> VectorShards:
        if self._store is None:
            folder = None
            if self.cache_dir is not None:
                folder = cache_folder(
                    self.cache_dir, "embeddings", self.model_name, self.identity()
                )
            self._store = VectorShards(folder)
        return self._store

    def embed(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors, in input order."""
        keys = [text_key(t) for t in texts]
        todo = self._shards.missing(keys)
        if todo:
            text_of = dict(zip(keys, texts, strict=True))
            texts_todo = [text_of[k] for k in todo]
            vectors = self.encoder.encode_documents(texts_todo, show_progress=progress)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self._shards.put(todo, vectors / np.where(norms > 0, norms, 1.0))
        if not keys:
            return np.empty((0, 0), dtype=np.float32)
        return self._shards.get(keys)
