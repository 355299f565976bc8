"""Files in, loaded units out: a PDF page, a Markdown or HTML section, a text file, a JSONL record.

A loader turns one file's bytes into :class:`Unit` records, each with the text a chunker splits
and where it came from (page, heading path, parent id). Loaders are registered by file suffix
(:data:`LOADERS`); the PDF and HTML ones import their library on first use and, without it,
raise :class:`~rag_retrievers.errors.MissingDependencyError` naming the ``ingest`` extra.

:func:`load_file` never lets a bad file escape as a traceback: an unreadable, unsupported,
corrupt or empty file raises :class:`UnreadableFileError` with one line saying why, which a
folder run reports and skips (:func:`list_files` finds the files; :mod:`.sync` runs them).

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "notes.txt").write_text("BM25 ranks documents.\\n", encoding="utf-8")
>>> loaded = load_file(root / "notes.txt", root)
>>> loaded.source, loaded.kind, [u.parent_id for u in loaded.units]
('notes.txt', 'text', ['notes.txt'])
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_retrievers.errors import InvalidInputError, MissingDependencyError
from rag_retrievers.name_registry import Registry
from rag_retrievers.records import METADATA_SCALARS

#: the largest file a folder run reads; larger ones are reported and skipped
MAX_FILE_BYTES = 256 << 20


class UnreadableFileError(InvalidInputError):
    """A file cannot be loaded: unsupported type, corrupt, encrypted, not UTF-8, no text."""


@dataclass(frozen=True)
class Unit:
    """One loaded unit of a file, the parent of the chunks cut from it.

    ``parent_id`` is ``source`` for a whole file, ``source#page-3`` for a PDF page,
    ``source#section-2`` for a Markdown or HTML section, ``source#record-ID`` for a JSONL record.
    ``metadata`` holds a JSONL record's own metadata (scalars), empty otherwise.
    """

    text: str
    parent_id: str
    page: int | None = None
    heading: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedFile:
    """A file's units, its kind (``pdf``, ``html``, ``markdown``, ``text``, ``jsonl``), the
    sha256 of its bytes and, for a PDF, its number of pages."""

    source: str
    kind: str
    sha256: str
    units: tuple[Unit, ...]
    pages: int = 0


#: a loader: (the file's bytes, its source name) -> (kind, units, pages)
Loader = Callable[[bytes, str], tuple[str, list[Unit], int]]

#: file suffix (lower case) -> loader; ``LOADERS.register(".rst", my_loader)`` adds one
LOADERS: Registry[Loader] = Registry(
    "file type",
    {
        ".pdf": "rag_retrievers.ingest.pdf:load_pdf",
        ".html": "rag_retrievers.ingest.markup:load_html",
        ".htm": "rag_retrievers.ingest.markup:load_html",
        ".xhtml": "rag_retrievers.ingest.markup:load_html",
        ".md": "rag_retrievers.ingest.markup:load_markdown",
        ".markdown": "rag_retrievers.ingest.markup:load_markdown",
        ".txt": "rag_retrievers.ingest.loaders:load_text",
        ".text": "rag_retrievers.ingest.loaders:load_text",
        ".jsonl": "rag_retrievers.ingest.loaders:load_jsonl",
    },
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with ``/`` separators: a chunk's ``source``."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise InvalidInputError(f"{path} is not inside {root}") from None
    name = relative.as_posix()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnreadableFileError("its name is not valid UTF-8") from None
    return name


def supported_suffixes() -> list[str]:
    """The file suffixes a loader is registered for."""
    return LOADERS.names()


def supported(path: Path) -> bool:
    """Whether a loader is registered for ``path``'s suffix."""
    return path.suffix.lower() in LOADERS


def list_files(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The files under ``folder`` a run loads (sorted), and ``(name, reason)`` for those it
    skips: unsupported suffixes and symbolic links (never followed). Hidden files and folders
    (``.git``, ``.DS_Store``) are left out silently."""
    if not folder.is_dir():
        raise InvalidInputError(f"--input {folder} is not a folder")
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []

    def walk(directory: Path) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            skipped.append((_relative(directory, folder), f"cannot list: {_reason(exc)}"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                skipped.append((_relative(path, folder), "a symbolic link (not followed)"))
            elif entry.is_dir(follow_symlinks=False):
                walk(path)
            elif not entry.is_file(follow_symlinks=False):
                skipped.append((_relative(path, folder), "not a regular file"))
            elif supported(path):
                found.append(path)
            else:
                suffix = path.suffix.lower() or "(no suffix)"
                skipped.append((_relative(path, folder), f"unsupported file type {suffix}"))

    walk(folder)
    return found, skipped


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc) or type(exc).__name__


def read_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """A file's bytes; :class:`UnreadableFileError` if it is too large or cannot be read."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnreadableFileError(f"larger than {max_bytes} bytes ({size})")
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"cannot be read: {_reason(exc)}") from None


def load_bytes(data: bytes, source: str, suffix: str) -> LoadedFile:
    """Load a file's ``data`` with the loader of ``suffix``; see :func:`load_file`."""
    key = suffix.lower()
    if key not in LOADERS:
        raise UnreadableFileError(f"unsupported file type {key or '(no suffix)'}")
    loader = LOADERS.get(key)
    try:
        kind, units, pages = loader(data, source)
    except (UnreadableFileError, MissingDependencyError):
        raise
    except RecursionError:
        raise UnreadableFileError("nested too deeply to parse") from None
    except Exception as exc:  # a parser's own error on a corrupt file: one line, the file skipped
        raise UnreadableFileError(f"cannot be parsed ({type(exc).__name__}: {exc})") from None
    if not any(unit.text.strip() for unit in units):
        hint = " (a scanned PDF needs OCR first)" if kind == "pdf" else ""
        raise UnreadableFileError(f"holds no text{hint}")
    return LoadedFile(source, kind, sha256_bytes(data), tuple(units), pages)


def load_file(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> LoadedFile:
    """Load the file ``path`` of the folder ``root`` (its ``source`` is the path relative to
    ``root``). :class:`UnreadableFileError` says in one line why a file cannot be loaded."""
    path, root = Path(path), Path(root)
    source = source_name(path, root)
    return load_bytes(read_bytes(path), source, path.suffix)


def decode_text(data: bytes) -> str:
    """UTF-8 text (a byte-order mark dropped, line ends made ``\\n``); binary data and other
    encodings raise :class:`UnreadableFileError`."""
    if b"\x00" in data[:8192]:
        raise UnreadableFileError("binary data, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 text (byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_text(data: bytes, source: str) -> tuple[str, list[Unit], int]:
    """A plain text file: one unit, the whole file."""
    return "text", [Unit(text=decode_text(data), parent_id=source)], 0


def load_jsonl(data: bytes, source: str) -> tuple[str, list[Unit], int]:
    """A JSONL corpus (the lines ``rag-retrievers index --input FILE.jsonl`` reads): one unit per
    record, ``_id`` or ``id``, ``text``, optional ``title`` (its heading) and ``metadata``
    (scalar values kept, others dropped)."""
    units: list[Unit] = []
    seen: set[str] = set()
    for number, record in _records(decode_text(data)):
        doc_id = record.get("_id", record.get("id"))
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or doc_id == "":
            raise UnreadableFileError(f"line {number}: needs an '_id' or 'id'")
        doc_id = str(doc_id)
        if doc_id in seen:
            raise UnreadableFileError(f"line {number}: duplicate id {doc_id!r}")
        seen.add(doc_id)
        text, title = record.get("text"), record.get("title")
        if not isinstance(text, str) or not (title is None or isinstance(title, str)):
            raise UnreadableFileError(f"line {number}: needs a string 'text' (and 'title')")
        metadata = record.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise UnreadableFileError(f"line {number}: 'metadata' must be an object")
        flat = {
            k: v
            for k, v in metadata.items()
            if isinstance(k, str)
            and k
            and not k.startswith("$")
            and isinstance(v, METADATA_SCALARS)
        }
        units.append(
            Unit(text=text, parent_id=f"{source}#record-{doc_id}", heading=title, metadata=flat)
        )
    return "jsonl", units, 0


def _records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            raise UnreadableFileError(f"line {number} is not valid JSON") from None
        if not isinstance(record, dict):
            raise UnreadableFileError(f"line {number} is not a JSON object")
        yield number, record
