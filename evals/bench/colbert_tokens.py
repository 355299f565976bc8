"""``bench colbert``'s token cache: a corpus's token vectors, encoded once.

Encoding a corpus takes minutes on a CPU, so token vectors are cached on disk (``--cache``,
default ``runs/colbert-tokens``) as fp16, keyed by the model's weights and settings and the
corpus's content; a rerun only builds the index.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE = Path("runs") / "colbert-tokens"


class CachedEncoder:
    """A :class:`~rag_retrievers.encoders.colbert.ColBERTEncoder` whose document vectors come
    from a cache of the corpus (texts not in it are encoded)."""

    def __init__(self, encoder: Any, cached: dict[str, np.ndarray]) -> None:
        self.encoder, self.cached = encoder, cached

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def encode_documents(self, texts: list[str], show_progress: bool | None = None) -> list[Any]:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cached]
        fresh = dict(zip(missing, self.encoder.encode_documents(missing), strict=True))
        return [self.cached[t].astype(np.float32) if t in self.cached else fresh[t] for t in texts]

    def __repr__(self) -> str:
        return repr(self.encoder)


def corpus_tokens(
    encoder: Any, texts: list[str], corpus_file: Path, cache: Path | None, progress: bool | None
) -> dict[str, np.ndarray]:
    """text -> fp16 token vectors of every distinct corpus text, from ``cache`` when there."""
    key = None
    if cache is not None:
        from rag_retrievers.evals.cache import corpus_digest

        # keyed by content, as the eval index cache: a copied or re-mounted corpus still hits
        key = corpus_digest(corpus_file)
    return cached_tokens(encoder, texts, corpus_file.parent.name, key, cache, progress)


def cached_tokens(
    encoder: Any,
    texts: list[str],
    name: str,
    content_key: str | None,
    cache: Path | None,
    progress: bool | None,
    known: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """text -> fp16 token vectors of every distinct text, from ``cache`` (a folder named after
    ``name``, the encoder and ``content_key``) when there; texts in ``known`` are not encoded."""
    distinct = list(dict.fromkeys(texts))
    folder = None
    if cache is not None and content_key is not None:
        key = json.dumps([encoder.identity(), content_key], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        folder = cache / f"{name}-{encoder.settings.format}-{digest}"
        if (folder / "done").exists():
            tokens = np.load(folder / "tokens.npy", mmap_mode="r")
            lengths = np.load(folder / "lengths.npy")
            if len(lengths) == len(distinct) and int(lengths.sum()) == len(tokens):
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                return {t: tokens[offsets[i] : offsets[i + 1]] for i, t in enumerate(distinct)}
    source = CachedEncoder(encoder, known) if known else encoder
    vectors = source.encode_documents(distinct, show_progress=progress)
    lengths = np.asarray([len(v) for v in vectors], dtype=np.int64)
    tokens = np.concatenate(vectors).astype(np.float16)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "tokens.npy", tokens)
        np.save(folder / "lengths.npy", lengths)
        (folder / "done").write_text("ok\n", encoding="utf-8")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return {t: tokens[offsets[i] : offsets[i + 1]] for i, t in enumerate(distinct)}
