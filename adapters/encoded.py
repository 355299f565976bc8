"""What the retrievers with a neural encoder (Dense, Splade, ColBERT) share when reopening: the
model is rebuilt from the manifest's config (or a copy the caller points to) and must be the one
the collection was built with, before any data file is read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rag_retrievers.encoders.models import UnknownModelError
from rag_retrievers.errors import CorruptCollectionError

__all__ = ["rebuild_with_model"]

T = TypeVar("T")


def rebuild_with_model(
    build: Callable[..., T],
    folder: Path,
    manifest: dict[str, Any],
    model: str | None,
    check: Callable[[Any, dict[str, Any], str], None],
    encoder_of: Callable[[T], Any] = lambda built: built.encoder,  # type: ignore[attr-defined]
) -> T:
    """``build(**config)`` with the saved model (or ``model``, a copy of it elsewhere), refused
    by ``check(saved identity, identity now, where)`` unless it is the model the manifest
    records (weights' sha256, dimension, the settings that shape its vectors)."""
    config = dict(manifest["config"])
    kind = manifest.get("retriever")
    if not isinstance(config.get("model"), str):
        raise CorruptCollectionError(f"{folder}: the manifest records no {kind} model")
    if model is not None:
        config["model"] = model
    try:
        built = build(**config)
    except UnknownModelError as exc:
        exc.add_note(
            f"{folder.parent} was built with this model; if a copy of it is elsewhere, open the "
            f"collection with .open(path, model=THAT_FOLDER)"
        )
        raise
    identity = encoder_of(built).identity()
    check(manifest.get("model"), identity, f"the collection at {folder.parent}")
    return built
