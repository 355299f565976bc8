"""Reaching Milvus: which ``uri`` names what, importing pymilvus, and retrying while it is down.

- ``uri``: a local path ending ``.db`` starts milvus-lite on that folder (in this process);
  ``http://host:19530`` (or ``https://``, ``tcp://``) connects to a Milvus server or cluster.
- Connecting is retried with exponential backoff; an unreachable server raises
  :class:`MilvusUnavailableError` naming the uri. A request Milvus refuses (not a connection
  failure) raises :class:`~rag_retrievers.errors.CollectionError` at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from rag_retrievers.errors import CollectionError, InvalidInputError, MissingDependencyError

T = TypeVar("T")


class MilvusUnavailableError(CollectionError):
    """No Milvus server answers at the uri (after retries), or milvus-lite cannot start."""


def import_pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError:
        raise MissingDependencyError("pymilvus", "milvus") from None
    return pymilvus


def check_uri(uri: object) -> str:
    """``uri`` if it names milvus-lite (a path ending ``.db``) or a server, else raise."""
    if not isinstance(uri, str) or not uri:
        raise InvalidInputError(f"uri must be a non-empty str, got {uri!r}")
    if is_server_uri(uri):
        return uri
    if not uri.endswith(".db"):
        raise InvalidInputError(
            f"uri must be a local path ending in '.db' (milvus-lite) or a server address "
            f"such as 'http://localhost:19530', got {uri!r}"
        )
    return uri


def is_server_uri(uri: str) -> bool:
    return urlparse(uri).scheme.lower() in ("http", "https", "tcp", "grpc", "unix")


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached (worth retrying), not a bad request."""
    pymilvus = import_pymilvus()
    from pymilvus import exceptions

    transient = (
        exceptions.ConnectError,
        exceptions.MilvusUnavailableException,
        exceptions.ConnectionNotExistException,
    )
    if isinstance(exc, transient):
        return True
    text = str(getattr(exc, "message", exc)).lower()
    return isinstance(exc, pymilvus.MilvusException) and (
        "connect" in text or "unavailable" in text
    )


def retrying(what: str, uri: str, retries: int, backoff: float, call: Callable[[], T]) -> T:
    """``call()``, retried with exponential backoff while the server cannot be reached."""
    pymilvus = import_pymilvus()
    delay = backoff
    for attempt in range(retries + 1):
        try:
            return call()
        except pymilvus.MilvusException as exc:
            message = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
            if not _transient(exc):
                raise CollectionError(f"Milvus at {uri!r} refused to {what} it: {message}") from exc
            if attempt == retries:
                hint = (
                    "start a server (e.g. `docker run -p 19530:19530 milvusdb/milvus "
                    "milvus run standalone`) or use a local 'PATH.db' uri for milvus-lite"
                    if is_server_uri(uri)
                    else "check that the folder is writable and not used by another process"
                )
                raise MilvusUnavailableError(
                    f"cannot {what} Milvus at {uri!r} after {retries + 1} attempts "
                    f"({message}); {hint}"
                ) from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
