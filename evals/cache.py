"""Indexes built for evaluation, kept on disk and reused: encoding a corpus with a neural model
takes minutes, and every run of an experiment needs the same index."""

from __future__ import annotations

import argparse
import hashlib
import json
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

    A cache entry is keyed by the retriever's full configuration (its defaults included, so a
    changed default never reuses an index built under the old one) and by the corpus file's
    content, so a changed corpus or retriever never reuses a stale index, and a copied or
    re-mounted corpus still finds its index. ``cache=None`` always builds and keeps nothing.

    A hybrid or PRF spec is assembled around its leaves (:meth:`RetrieverSpec.leaves`), each
    indexed through the cache on its own: ``bm25/rm3`` and ``hybrid:bm25+dense`` reuse the
    index ``bm25`` built. Whether it came from the cache means: every leaf did.
    """
    leaves = spec.leaves()
    if leaves != [spec]:
        opened = [
            indexed_retriever(leaf, dataset, dataset_dir, cache, progress=progress)
            for leaf in leaves
        ]
        return spec.assemble([r for r, _ in opened]), all(cached for _, cached in opened)
    retriever = spec.build()
    folder = None
    if cache is not None:
        folder = cache / f"{dataset.name}-{spec.label()}-{cache_key(retriever, dataset_dir)}"
        if (folder / "manifest.json").exists():
            try:
                cached = Retriever.open(folder)
            except CollectionError:
                pass  # a damaged cache entry is rebuilt below
            else:
                close = getattr(retriever, "close", None)
                if callable(close):  # Dense: its Chroma working directory
                    close()
                return cached, True
    retriever.add(dataset.corpus, show_progress=progress)
    if folder is not None:
        retriever.save(folder)
    return retriever, False


def cache_key(retriever: Retriever, dataset_dir: Path) -> str:
    """A digest of the retriever's configuration and the corpus's content."""
    config = json.dumps([retriever.name, retriever.config()], sort_keys=True, default=str)
    source = corpus_digest(dataset_dir / "corpus.jsonl")
    return hashlib.sha256(f"{config}|{source}".encode()).hexdigest()[:16]


def corpus_digest(path: Path) -> str:
    """SHA-256 of a corpus file's bytes: a fraction of a second for SciFact (8 MB), against
    minutes of encoding when a key on path or modification time misses."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def indexed(
    spec: RetrieverSpec, dataset: BeirDataset, args: argparse.Namespace
) -> tuple[Retriever, bool]:
    """The dataset's corpus indexed by ``spec``, through the index cache the command's options
    name (``--cache``, ``--no-cache``; ``--quiet`` turns progress bars off)."""
    cache = None if args.no_cache else args.cache
    progress = False if getattr(args, "quiet", False) else None
    return indexed_retriever(spec, dataset, args.dataset, cache, progress=progress)
