"""Indexes built for evaluation, kept on disk and reused: encoding a corpus with a neural model
takes minutes, and every run of an experiment needs the same index."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from rag_retrievers.evals.beir import BeirDataset

from rag_retrievers.base import Retriever
from rag_retrievers.errors import CollectionError
from rag_retrievers.spec import RetrieverSpec

DEFAULT_CACHE = Path("runs") / "index-cache"


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cache DIR`` and ``--no-cache``, shared by the evaluation commands."""
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help="reuse indexes built earlier for the same corpus and retriever, shared by the eval "
        "commands; encoding a corpus with a neural model takes minutes (default %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="always index from scratch")


def indexed_retriever(
    spec: RetrieverSpec,
    dataset: BeirDataset,
    dataset_dir: Path,
    cache: Path | None,
    *,
    progress: bool | None = None,
) -> tuple[Retriever, bool]:
    """``dataset``'s corpus indexed by ``spec``, and whether it came from ``cache``.

    A cache entry is keyed by the spec and by the corpus file's content, so a changed corpus or
    a changed retriever never reuses a stale index, and a copied or re-mounted corpus still
    finds its index. ``cache=None`` always builds and keeps nothing.
    """
    folder = None
    if cache is not None:
        source = corpus_digest(dataset_dir / "corpus.jsonl")
        digest = hashlib.sha256(f"{spec.fingerprint()}|{source}".encode()).hexdigest()[:16]
        folder = cache / f"{dataset.name}-{spec.label()}-{digest}"
        if (folder / "manifest.json").exists():
            try:
                return Retriever.open(folder), True
            except CollectionError:
                pass  # a damaged cache entry is rebuilt below
    retriever = spec.build()
    retriever.add(dataset.corpus, show_progress=progress)
    if folder is not None:
        retriever.save(folder)
    return retriever, False


def corpus_digest(path: Path) -> str:
    """SHA-256 of a corpus file's bytes: a fraction of a second for SciFact (8 MB), against
    minutes of encoding when a key on path or modification time misses."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
