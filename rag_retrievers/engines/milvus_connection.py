"""Reaching Milvus: which ``uri`` names what, importing pymilvus, retrying while a server is away,
and what a server's version can do.

- ``uri``: a local path ending ``.db`` starts milvus-lite on that folder (in this process);
  ``http://host:19530`` (or ``https://``, ``tcp://``) connects to a Milvus server or cluster.
- Every request is retried with exponential backoff (``backoff``, doubling, at most
  ``max_backoff`` apart) while the server cannot be reached or is still recovering (a restarted
  server answers "collection not loaded" until it has reloaded its collections); then
  :class:`~rag_retrievers.errors.MilvusUnavailableError` names the uri and the last error. A
  request Milvus refuses (not a connection failure) raises
  :class:`~rag_retrievers.errors.CollectionError` at once.
- :class:`Feature`: what our stores use that older servers lack (sparse vectors and
  ``hybrid_search`` came with Milvus 2.4, partial upserts with 2.6). A store asks
  :func:`server_version` once and refuses a field this server cannot hold with
  :class:`MilvusFeatureError`, at the retriever's construction. milvus-lite has them all.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from rag_retrievers.errors import (
    CollectionError,
    InvalidInputError,
    MilvusUnavailableError,
    MissingDependencyError,
)

__all__ = [
    "HYBRID_SEARCH",
    "SHARED_COLLECTION",
    "SPARSE_VECTORS",
    "Feature",
    "MilvusFeatureError",
    "MilvusUnavailableError",
    "check_uri",
    "import_pymilvus",
    "is_server_uri",
    "parse_version",
    "retrying",
]

T = TypeVar("T")


class MilvusFeatureError(CollectionError):
    """The Milvus server is too old for what a retriever asks of it; the message names the
    server's version, the missing feature and the Milvus version that brought it."""


@dataclass(frozen=True)
class Feature:
    """Something a store uses that Milvus servers have had since ``since``."""

    name: str
    since: tuple[int, int]

    @property
    def since_text(self) -> str:
        return f"Milvus {self.since[0]}.{self.since[1]}"


SPARSE_VECTORS = Feature("sparse vectors (SPARSE_FLOAT_VECTOR fields)", (2, 4))
HYBRID_SEARCH = Feature("hybrid_search (fusion of several vector fields inside Milvus)", (2, 4))
#: several retrievers in one collection: several vector fields (2.4), each written without
#: touching the others by partial upserts (2.6)
SHARED_COLLECTION = Feature(
    "several vector fields in one collection, each written by its own retriever (partial upserts)",
    (2, 6),
)


def parse_version(text: object) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a version string such as ``v2.3.5-lite``, or ``None``."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", str(text or ""))
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


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


#: what Milvus says while it is away or recovering (lower case); worth another try
_TRANSIENT_TEXT = (
    "connect",  # "Fail connecting to server", "connection refused", "failed to connect"
    "unavailable",
    "collection not loaded",  # a restarted server reloads its collections (~ a session TTL)
    "channel not available",
    "channel not found",
    "not healthy",
    "service not ready",
    "is stopping",
    "node not match",
    "no available shard",
    "stream removed",
    "socket closed",
)


def _grpc() -> Any:
    """grpc, which pymilvus brings (imported by name: it ships no type information)."""
    return importlib.import_module("grpc")


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the server cannot be reached or is recovering (worth retrying),
    not that it refused the request."""
    from pymilvus import exceptions

    grpc = _grpc()
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    transient = (
        exceptions.ConnectError,
        exceptions.MilvusUnavailableException,
        exceptions.ConnectionNotExistException,
    )
    if isinstance(exc, transient):
        return True
    text = str(getattr(exc, "message", exc)).lower()
    return isinstance(exc, exceptions.MilvusException) and any(t in text for t in _TRANSIENT_TEXT)


def retrying(
    what: str,
    uri: str,
    retries: int,
    backoff: float,
    call: Callable[[], T],
    *,
    max_backoff: float = 8.0,
) -> T:
    """``call()``, retried ``retries`` times with exponential backoff (``backoff`` seconds,
    doubling, at most ``max_backoff``) while the server cannot be reached or is recovering."""
    pymilvus = import_pymilvus()
    grpc = _grpc()
    delay = backoff
    for attempt in range(retries + 1):
        try:
            return call()
        except (pymilvus.MilvusException, grpc.RpcError) as exc:
            message = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
            if not _transient(exc):
                raise CollectionError(f"Milvus at {uri!r} refused to {what} it: {message}") from exc
            if attempt == retries:
                hint = (
                    "start the server (or wait for it to come back) and repeat the call: writes "
                    "upsert by id, so repeating one is safe; or use a local 'PATH.db' uri for "
                    "milvus-lite"
                    if is_server_uri(uri)
                    else "check that the folder is writable and not used by another process"
                )
                raise MilvusUnavailableError(
                    f"cannot {what} Milvus at {uri!r} after {retries + 1} attempts "
                    f"({message}); {hint}"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, max_backoff)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
