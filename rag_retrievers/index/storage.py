"""Collection directories: plain files plus a manifest, saved atomically.

Layout of a collection directory::

    manifest.json        what the collection is: retriever, config, model, versions, file digests,
                         and a digest of the manifest itself
    gen-000003/          the data files of the current generation (.npy arrays, .jsonl records)

A save writes a new generation into a temporary folder, fsyncs every file, renames the folder into
place and only then replaces ``manifest.json`` (temp file, fsync, rename). A process killed at any
point leaves the previous manifest pointing at the previous, complete generation.

A collection folder may come from someone else, so reading one trusts nothing in it: the manifest
must carry its own sha256, name exactly the files its generation folder holds (no more, no fewer),
each a regular file (never a symbolic link) whose size and sha256 match. What the manifest's
``config`` may say is checked by the retriever that reads it (:meth:`Retriever.open`).
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

from rag_retrievers.errors import (
    CollectionWriteError,
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
)

FORMAT = "rag-retrievers/collection"
#: 2 added the manifest's own digest; format 1 manifests are refused (see ``upgrade_collection``)
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
DIGEST = "manifest_sha256"
_REQUIRED = ("format", "format_version", "retriever", "config", "data", "files", DIGEST)


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


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The sha256 of a manifest's canonical JSON, its own digest left out."""
    body = {key: value for key, value in manifest.items() if key != DIGEST}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Digest ``manifest`` and replace ``root``'s manifest with it, atomically."""
    signed = {**manifest, DIGEST: manifest_digest(manifest)}
    text = json.dumps(signed, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_text(root / MANIFEST, text)


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
    moment ago can still open its files. A save that fails (a full disk, a
    permission) raises :class:`CollectionWriteError` and leaves the previous state and no
    temporary folder behind.
    """
    root = collection_path(path)
    check_writable(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            return _save_locked(root, retriever, config, write_data, extra)
    except OSError as exc:
        raise CollectionWriteError(
            f"could not save the collection to {root}: {_os_reason(exc)}; "
            "the previously saved state is unchanged"
        ) from exc


def _save_locked(
    root: Path,
    retriever: str,
    config: dict[str, Any],
    write_data: Callable[[Path], None],
    extra: dict[str, Any] | None,
) -> Path:
    previous = current_generation(root) if (root / MANIFEST).exists() else None
    for stale in root.glob(".gen-*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(f".{MANIFEST}.*.tmp"):
        stale.unlink(missing_ok=True)

    tmp = root / f".gen-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    try:
        write_manifest(root, manifest)
    except BaseException:
        shutil.rmtree(root / data, ignore_errors=True)  # never published
        raise
    # a reader that read the previous manifest a moment ago can still open its files; one that
    # read an older one finds its generation gone and retries (Retriever.open)
    keep = {data, previous or data}
    for old in root.iterdir():
        if _GENERATION.fullmatch(old.name) and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return root


def collection_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, refused with :class:`InvalidInputError` if no file system takes it."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidInputError(f"a collection path is a str or Path, got {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidInputError(f"a collection path is a str or Path, got {text!r}")
    if "\x00" in text:
        raise InvalidInputError(f"a collection path cannot hold a NUL character: {text!r}")
    if not text.strip():
        raise InvalidInputError("a collection path must not be empty")
    return Path(text)


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return exc.strerror.lower()
    if "requested" in str(exc) and "written" in str(exc):  # numpy's short write: a full disk
        return "no space left on device (a short write)"
    return str(exc) or type(exc).__name__


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
    for parent in root.parents:
        if parent.exists() and not parent.is_dir():
            raise ForeignCollectionError(f"cannot save to {root}: {parent} is not a directory")
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
    """Read and check a collection's manifest; with ``verify``, check every data file's digest.

    The manifest's own digest and the exact list of data files are always checked, and nothing
    that is a symbolic link is followed.
    """
    root = collection_path(path)
    if not root.is_dir():
        raise ForeignCollectionError(f"no collection at {root}: not a directory")
    file = root / MANIFEST
    if file.is_symlink():
        raise CorruptCollectionError(f"{file} is a symbolic link; a collection holds plain files")
    if not file.exists():
        raise ForeignCollectionError(f"{root} is not a rag-retrievers collection: no {MANIFEST}")
    if file.stat().st_size > _MAX_MANIFEST_BYTES:
        raise CorruptCollectionError(f"{file} is larger than {_MAX_MANIFEST_BYTES} bytes")
    manifest = parse_manifest(file, file.read_bytes())
    if manifest["format_version"] != FORMAT_VERSION:
        raise ForeignCollectionError(
            f"{root} has collection format {manifest['format_version']!r}; this version of "
            f"rag-retrievers reads format {FORMAT_VERSION}"
            + (
                " (format 1 has no manifest digest: if you trust the folder, "
                "rag_retrievers.index.storage.upgrade_collection(path) rewrites it as format 2)"
                if manifest["format_version"] == 1
                else ""
            )
        )
    if manifest.get(DIGEST) != manifest_digest(manifest):
        raise CorruptCollectionError(f"{file} does not match its own digest ({DIGEST})")
    check_data_files(root, manifest, verify=verify)
    return manifest


_MAX_MANIFEST_BYTES = 16 << 20


def parse_manifest(file: Path, raw: bytes) -> dict[str, Any]:
    """The manifest's JSON, with the fields every format has, of the types we write."""
    try:
        manifest = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constants,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise CorruptCollectionError(f"{file} is not valid JSON: {reason}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ForeignCollectionError(f"{file} is not a rag-retrievers manifest")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CorruptCollectionError(f"{file}: format_version {version!r} is not an integer")
    required = _REQUIRED if version >= 2 else _REQUIRED[:-1]
    missing = [key for key in required if key not in manifest]
    if missing:
        raise CorruptCollectionError(f"{file} lacks {', '.join(missing)}")
    _check_shape(file, manifest)
    return manifest


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} occurs twice in one object")
        out[key] = value
    return out


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def check_data_files(root: Path, manifest: dict[str, Any], *, verify: bool = True) -> None:
    """The generation folder holds exactly the manifest's files, plain files of the recorded
    sizes (and, with ``verify``, digests)."""
    data = root / manifest["data"]
    if data.is_symlink() or not data.is_dir():
        raise CorruptCollectionError(f"{root}: generation folder {manifest['data']} is missing")
    try:
        present = {entry.name: entry for entry in os.scandir(data)}
    except OSError as exc:
        raise CorruptCollectionError(f"{root}: {manifest['data']} unreadable: {exc}") from None
    listed = manifest["files"]
    missing = sorted(set(listed) - set(present))
    if missing:
        raise CorruptCollectionError(
            f"{root}: data file {manifest['data']}/{missing[0]} is missing"
        )
    extra = sorted(set(present) - set(listed))
    if extra:
        raise CorruptCollectionError(
            f"{root}: {manifest['data']}/{extra[0]} is not listed in the manifest"
        )
    for name, info in listed.items():
        entry = present[name]
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            raise CorruptCollectionError(
                f"{root}: data file {manifest['data']}/{name} is not a plain file"
            )
        target = data / name
        if entry.stat(follow_symlinks=False).st_size != info["bytes"] or (
            verify and _digest(target) != info["sha256"]
        ):
            raise CorruptCollectionError(f"{root}: data file {manifest['data']}/{name} is damaged")


def current_generation(path: str | os.PathLike[str]) -> str | None:
    """The generation the manifest names now, or ``None`` if that cannot be read."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    data = manifest.get("data") if isinstance(manifest, dict) else None
    return data if isinstance(data, str) else None


def upgrade_collection(path: str | os.PathLike[str]) -> Path:
    """Rewrite a format 1 manifest (no digest) as format 2, after checking every data file.

    Format 1 manifests carry no digest of their own, so a reader cannot tell a hand-edited one;
    call this only on a folder you trust (one you saved with an earlier version).
    """
    root = collection_path(path)
    with _locked(root):
        file = root / MANIFEST
        if file.is_symlink() or not file.is_file():
            raise ForeignCollectionError(f"{root} is not a rag-retrievers collection")
        manifest = parse_manifest(file, file.read_bytes())
        if manifest["format_version"] != 1:
            raise InvalidInputError(
                f"{root} has collection format {manifest['format_version']!r}; only format 1 "
                "is upgraded"
            )
        check_data_files(root, manifest, verify=True)
        write_manifest(root, {**manifest, "format_version": FORMAT_VERSION})
    return root


def _check_shape(file: Path, manifest: dict[str, Any]) -> None:
    """The manifest's own fields have the types we write; names stay inside the collection."""
    problems = []
    if not isinstance(manifest["retriever"], str):
        problems.append("retriever is not a string")
    if not isinstance(manifest["config"], dict):
        problems.append("config is not an object")
    if not (isinstance(manifest["data"], str) and _GENERATION.fullmatch(manifest["data"])):
        problems.append(f"data {manifest['data']!r} is not a generation folder name")
    if DIGEST in manifest and not isinstance(manifest[DIGEST], str):
        problems.append(f"{DIGEST} is not a string")
    files = manifest["files"]
    if not isinstance(files, dict):
        problems.append("files is not an object")
    else:
        for name, info in files.items():
            plain = _FILE_NAME.fullmatch(name) is not None
            fields = isinstance(info, dict) and set(info) == {"bytes", "sha256"}
            sized = fields and type(info["bytes"]) is int and info["bytes"] >= 0
            if not (plain and sized and isinstance(info.get("sha256"), str)):
                problems.append(f"files entry {name!r} is malformed")
    if problems:
        raise CorruptCollectionError(f"{file}: {'; '.join(problems)}")


_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}")


def data_dir(path: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    return Path(path) / manifest["data"]
