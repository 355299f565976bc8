"""What a folder run remembers between runs: the files it indexed, by content hash.

The record is ``ingest.json`` in the collection directory, beside the manifest::

    {"format": "rag-retrievers/ingest", "format_version": 1,
     "manifest_sha256": "...",            the manifest of the save this record describes
     "chunking": {"size": 254, "overlap": 63, "unit": "tokens of minilm"},
     "files": {"guide.pdf": {"sha256": "...", "chunks": 12, "pages": 3, "kind": "pdf",
                             "parents": ["guide.pdf#page-1", "guide.pdf#page-2", ...]}},
     "pending": {"notes.md": {"chunks": 7, "parents": [...]}},
                                          what a save in progress may change
     "state_sha256": "..."}               a digest of the rest, as the manifest carries

It is replaced atomically (temporary file, fsync, rename), twice a run: before the collection is
saved, the files the run changes move from ``files`` to ``pending`` with the most chunks they may
have (``{source}#0`` ... ``#{n-1}``) and every parent id (page, section) they may have; a run
deletes both, so a retriever that holds parents (``Parent``) is kept in step too. After the
save, the new record names the new manifest. A run killed between the two leaves a record that
names a manifest that is no longer there, or pending files: the next run re-reads those files
(every file, when the manifest changed) and deletes every chunk and parent id they may have, so
nothing stale survives.

A collection folder may come from someone else, so the record is read as untrusted input: no
symbolic link, a size cap, strict JSON, its own digest, and every field of the type and range
written (a source is a relative path without ``..``, a parent id starts with its source; they
only ever name ids to delete, and no file is opened by a name read from here). A record that
breaks a rule raises :class:`~rag_retrievers.errors.CorruptCollectionError` before anything
changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_retrievers.errors import CorruptCollectionError
from rag_retrievers.index.storage import atomic_write_text

STATE = "ingest.json"
FORMAT = "rag-retrievers/ingest"
FORMAT_VERSION = 1
DIGEST = "state_sha256"
#: the largest record read (a million files take about 150 MB: far beyond a folder run)
MAX_STATE_BYTES = 256 << 20
#: the most chunks a record may say one file has
MAX_CHUNKS_PER_FILE = 10_000_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEYS = {"format", "format_version", "manifest_sha256", "chunking", "files", "pending", DIGEST}


@dataclass(frozen=True)
class Held:
    """What a file may have in the collection: chunks ``{source}#0`` ... ``#{chunks-1}`` and
    the ids of their parents (pages, sections)."""

    chunks: int = 0
    parents: tuple[str, ...] = ()

    def __or__(self, other: Held) -> Held:
        """What either may have."""
        return Held(max(self.chunks, other.chunks), tuple(sorted({*self.parents, *other.parents})))

    def ids(self, source: str) -> list[str]:
        return [f"{source}#{n}" for n in range(self.chunks)] + list(self.parents)


@dataclass(frozen=True)
class FileRecord:
    """One indexed file: the sha256 of its bytes, its chunk count, pages, kind, parent ids."""

    sha256: str
    chunks: int
    pages: int = 0
    kind: str = ""
    parents: tuple[str, ...] = ()

    @property
    def held(self) -> Held:
        return Held(self.chunks, self.parents)


@dataclass(frozen=True)
class IngestState:
    """The record of :data:`STATE` (see the module docstring)."""

    manifest_sha256: str
    chunking: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, FileRecord] = field(default_factory=dict)
    pending: Mapping[str, Held] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "manifest_sha256": self.manifest_sha256,
            "chunking": dict(self.chunking),
            "files": {
                source: {
                    "sha256": r.sha256,
                    "chunks": r.chunks,
                    "pages": r.pages,
                    "kind": r.kind,
                    "parents": list(r.parents),
                }
                for source, r in sorted(self.files.items())
            },
            "pending": {
                source: {"chunks": held.chunks, "parents": list(held.parents)}
                for source, held in sorted(self.pending.items())
            },
        }


def _digest(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_state(root: Path, state: IngestState) -> None:
    """Replace ``root``'s record with ``state``, atomically."""
    body = state.to_json()
    body[DIGEST] = _digest(body)
    atomic_write_text(root / STATE, json.dumps(body, indent=1, sort_keys=True) + "\n")


def valid_source(source: object) -> bool:
    """Whether ``source`` is a name a folder run writes: a relative POSIX path, no ``..``, no
    empty or ``.`` segment, no NUL or backslash, valid UTF-8, at most 4096 characters.

    >>> valid_source("guides/install.md"), valid_source("../etc/passwd"), valid_source("/abs")
    (True, False, False)
    """
    if not isinstance(source, str) or not 0 < len(source) <= 4096:
        return False
    if "\x00" in source or "\\" in source:
        return False
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return all(part not in ("", ".", "..") for part in source.split("/"))


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_CHUNKS_PER_FILE


def read_state(root: Path) -> IngestState | None:
    """The record of the collection at ``root``, checked; ``None`` when there is none."""
    file = root / STATE
    if file.is_symlink():
        raise CorruptCollectionError(f"{file} is a symbolic link; a collection holds plain files")
    if not file.exists():
        return None
    if not file.is_file():
        raise CorruptCollectionError(f"{file} is not a plain file")
    if file.stat().st_size > MAX_STATE_BYTES:
        raise CorruptCollectionError(f"{file} is larger than {MAX_STATE_BYTES} bytes")
    return parse_state(file, file.read_bytes())


def parse_state(file: Path, raw: bytes) -> IngestState:
    """Check a record's bytes (see the module docstring); ``file`` names it in messages."""
    try:
        body = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise CorruptCollectionError(f"{file} is not valid JSON: {reason}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise CorruptCollectionError(f"{file} is not a rag-retrievers ingest record")
    if body.get("format_version") != FORMAT_VERSION or type(body["format_version"]) is not int:
        raise CorruptCollectionError(
            f"{file} has format version {body.get('format_version')!r}; this version of "
            f"rag-retrievers reads {FORMAT_VERSION}"
        )
    if set(body) != _KEYS:
        missing, extra = sorted(_KEYS - set(body)), sorted(set(body) - _KEYS)
        raise CorruptCollectionError(f"{file}: missing {missing}, unexpected {extra}")
    if body[DIGEST] != _digest({k: v for k, v in body.items() if k != DIGEST}):
        raise CorruptCollectionError(f"{file} does not match its own digest ({DIGEST})")
    problems = _problems(body)
    if problems:
        raise CorruptCollectionError(f"{file}: {'; '.join(problems[:3])}")
    files = {
        source: FileRecord(r["sha256"], r["chunks"], r["pages"], r["kind"], tuple(r["parents"]))
        for source, r in body["files"].items()
    }
    pending = {
        source: Held(held["chunks"], tuple(held["parents"]))
        for source, held in body["pending"].items()
    }
    return IngestState(body["manifest_sha256"], body["chunking"], files, pending)


def _problems(body: dict[str, Any]) -> list[str]:
    problems = []
    if not (
        isinstance(body["manifest_sha256"], str) and _SHA256.fullmatch(body["manifest_sha256"])
    ):
        problems.append("manifest_sha256 is not a sha256")
    chunking = body["chunking"]
    if not isinstance(chunking, dict) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in chunking.values()
    ):
        problems.append("chunking is not an object of strings and integers")
    files, pending = body["files"], body["pending"]
    if not isinstance(files, dict) or not isinstance(pending, dict):
        return [*problems, "files and pending must be objects"]
    for source, record in files.items():
        fields = {"sha256", "chunks", "pages", "kind", "parents"}
        good = (
            isinstance(record, dict)
            and set(record) == fields
            and isinstance(record["sha256"], str)
            and _SHA256.fullmatch(record["sha256"]) is not None
            and _count(record["chunks"])
            and _count(record["pages"])
            and isinstance(record["kind"], str)
            and len(record["kind"]) <= 32
            and _parents(source, record["parents"])
        )
        if not valid_source(source) or not good:
            problems.append(f"files entry {_shown(source)} is malformed")
    for source, held in pending.items():
        good = (
            isinstance(held, dict)
            and set(held) == {"chunks", "parents"}
            and _count(held["chunks"])
            and _parents(source, held["parents"])
        )
        if not valid_source(source) or not good:
            problems.append(f"pending entry {_shown(source)} is malformed")
    return problems


def _parents(source: object, parents: object) -> bool:
    """A list of parent ids of ``source``: itself, or ``source#...``, each at most 8192 long."""
    return (
        isinstance(source, str)
        and isinstance(parents, list)
        and len(parents) <= MAX_CHUNKS_PER_FILE
        and all(
            isinstance(p, str)
            and len(p) <= 8192
            and (p == source or p.startswith(source + "#"))
            and "\x00" not in p
            for p in parents
        )
    )


def _shown(source: str) -> str:
    return repr(source if len(source) <= 80 else source[:77] + "...")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} occurs twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")
