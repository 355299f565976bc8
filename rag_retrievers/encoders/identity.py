"""Whether a dense model is the one a collection's vectors come from: vectors of different
models are not comparable, so a saved collection (its manifest) and a Chroma collection (its
metadata) are refused by another model."""

from __future__ import annotations

from typing import Any

from rag_retrievers.errors import ForeignCollectionError, InvalidInputError


class ModelMismatchError(ForeignCollectionError):
    """A collection's vectors come from another model than the one given."""


class DimensionMismatchError(ModelMismatchError, InvalidInputError):
    """A collection's vectors have another dimension than the model's."""


def check_same_model(saved: dict[str, Any], current: dict[str, Any], where: str) -> None:
    """Raise if ``current`` (an encoder identity) is not the model ``saved`` records."""
    if saved.get("dimension") != current["dimension"]:
        raise DimensionMismatchError(
            f"{where} holds {saved.get('dimension')}-dimensional vectors from model "
            f"{saved.get('name')!r}; model {current['name']!r} gives {current['dimension']} "
            "dimensions. Use the model the collection was built with, or build a new collection."
        )
    saved_sha = (saved.get("weights") or {}).get("sha256")
    current_sha = (current.get("weights") or {}).get("sha256")
    differences: list[str] = [
        key
        for key in ("similarity", "normalize", "query_prompt", "document_prompt")
        if key in saved and saved[key] != current[key]
    ]
    if saved_sha and current_sha and saved_sha != current_sha:
        differences.insert(0, f"weights (sha256 {saved_sha[:12]}... vs {current_sha[:12]}...)")
    elif not (saved_sha and current_sha) and saved.get("name") != current["name"]:
        differences.insert(0, "name")
    if differences:
        raise ModelMismatchError(
            f"{where} was built with model {saved.get('name')!r} "
            f"({saved.get('path')}); the model given now ({current['name']!r}, "
            f"{current.get('path')}) differs in {', '.join(differences)}. Vectors of different "
            "models are not comparable: use the original model or build a new collection."
        )
