"""Collection directories: plain files plus a manifest, saved atomically.

Layout of a collection directory::

    manifest.json        what the collection is: retriever, config, model, versions, file digests
    gen-000003/          the data files of the current generation (.npy arrays, .jsonl records)

A save writes a new generation into a temporary folder, fsyncs every file, renames the folder into
place and only then replaces ``manifest.json`` (temp file, fsync, rename). A process killed at any
point leaves the previous manifest pointing at the previous, complete generation.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from rag_retrievers.errors import CorruptCollectionError, ForeignCollectionError

FORMAT = "rag-retrievers/collection"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_REQUIRED = ("format", "format_version", "retriever", "config", "data", "files")


def package_versions(*packages: str) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("rag-retrievers", *packages):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_collection(
    path: str | os.PathLike[str],
    *,
    retriever: str,
    config: dict[str, Any],
    write_data: Callable[[Path], None],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a new generation with ``write_data(folder)`` and point the manifest at it.

    Saves to one directory are serialised by a lock file, across threads and processes. The
    previous generation is kept until the next save, so a reader that read the old manifest a
    moment ago can still open its files.
    """
    root = Path(path)
    check_writable(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        previous = read_manifest(root, verify=False) if (root / MANIFEST).exists() else None
        for stale in root.glob(".gen-*"):  # left by a save that was killed
            shutil.rmtree(stale, ignore_errors=True)
        for stale in root.glob(f".{MANIFEST}.*.tmp"):
            stale.unlink(missing_ok=True)

        tmp = root / f".gen-{uuid.uuid4().hex}"
        tmp.mkdir()
        write_data(tmp)
        files = {}
        for file in sorted(tmp.iterdir()):
            with file.open("rb") as f:
                os.fsync(f.fileno())
            files[file.name] = {"bytes": file.stat().st_size, "sha256": _digest(file)}
        _fsync_dir(tmp)
        # past every generation on disk, including one a killed save renamed but never published
        numbers = [int(p.name[4:]) for p in root.iterdir() if _GENERATION.fullmatch(p.name)]
        data = f"gen-{max(numbers, default=0) + 1:06d}"
        os.replace(tmp, root / data)
        _fsync_dir(root)

        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "retriever": retriever,
            "config": config,
            **(extra or {}),
            "data": data,
            "files": files,
            "versions": package_versions("numpy", "scipy", "pydantic"),
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        keep = {data, previous["data"] if previous else data}
        for old in root.iterdir():
            if _GENERATION.fullmatch(old.name) and old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
    return root


_GENERATION = re.compile(r"gen-\d{6}")
_LOCK = ".lock"


def _is_ours(name: str) -> bool:
    """Files a save leaves in a collection directory, even one killed before its manifest."""
    return (
        name in (MANIFEST, _LOCK)
        or name.startswith((".gen-", f".{MANIFEST}."))
        or _GENERATION.fullmatch(name) is not None
    )


def check_writable(root: Path) -> None:
    """Raise unless ``root`` is absent, empty, our leftovers only, or a readable collection."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ForeignCollectionError(f"{root} exists and is not a directory")
    if (root / MANIFEST).exists():
        read_manifest(root, verify=False)  # refuse to overwrite a foreign or corrupt manifest
    elif any(not _is_ours(p.name) for p in root.iterdir()):
        raise ForeignCollectionError(
            f"{root} is a non-empty directory without {MANIFEST}; refusing to write a collection "
            "into it (choose an empty or new directory)"
        )


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    with (root / _LOCK).open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # blocks without holding the GIL
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def read_manifest(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """Read and check a collection's manifest; with ``verify``, check every data file's digest."""
    root = Path(path)
    if not root.is_dir():
        raise ForeignCollectionError(f"no collection at {root}: not a directory")
    file = root / MANIFEST
    if not file.exists():
        raise ForeignCollectionError(f"{root} is not a rag-retrievers collection: no {MANIFEST}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCollectionError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ForeignCollectionError(f"{file} is not a rag-retrievers manifest")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise CorruptCollectionError(f"{file} lacks {', '.join(missing)}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ForeignCollectionError(
            f"{root} has collection format {manifest['format_version']}; this version of "
            f"rag-retrievers reads format {FORMAT_VERSION}"
        )
    _check_shape(file, manifest)
    data = root / manifest["data"]
    for name, info in manifest["files"].items():
        target = data / name
        if not target.is_file():
            raise CorruptCollectionError(f"{root}: data file {manifest['data']}/{name} is missing")
        if target.stat().st_size != info["bytes"] or (verify and _digest(target) != info["sha256"]):
            raise CorruptCollectionError(f"{root}: data file {manifest['data']}/{name} is damaged")
    return manifest


def _check_shape(file: Path, manifest: dict[str, Any]) -> None:
    """The manifest's own fields have the types we write; names stay inside the collection."""
    problems = []
    if not isinstance(manifest["retriever"], str):
        problems.append("retriever is not a string")
    if not isinstance(manifest["config"], dict):
        problems.append("config is not an object")
    if not (isinstance(manifest["data"], str) and _GENERATION.fullmatch(manifest["data"])):
        problems.append(f"data {manifest['data']!r} is not a generation folder name")
    files = manifest["files"]
    if not isinstance(files, dict):
        problems.append("files is not an object")
    else:
        for name, info in files.items():
            plain = name not in ("", ".", "..") and "/" not in name and "\\" not in name
            fields = isinstance(info, dict) and isinstance(info.get("bytes"), int)
            if not (plain and fields and isinstance(info.get("sha256"), str)):
                problems.append(f"files entry {name!r} is malformed")
    if problems:
        raise CorruptCollectionError(f"{file}: {'; '.join(problems)}")


def data_dir(path: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    return Path(path) / manifest["data"]
