"""The package's exceptions.

Every error a caller can cause derives from :class:`RagRetrieversError`; the input errors are also
``ValueError``/``TypeError`` so generic handlers keep working. Each is raised before any state
changes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable


class RagRetrieversError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(RagRetrieversError, ValueError):
    """An argument has a value that is not allowed; the message names it and what is allowed."""


class InvalidQueryError(InvalidInputError):
    """A query is empty, blank or not a string."""


class InvalidDocumentError(InvalidInputError):
    """A document lacks an id, has non-string text or metadata that cannot be stored."""


class DuplicateIdError(InvalidInputError):
    """The same document id occurs more than once in one batch."""


class FilterError(InvalidInputError):
    """A metadata filter names an unknown field or operator, or is malformed."""


class UnknownNameError(InvalidInputError):
    """A registered name (retriever, fusion, metric, model...) does not exist."""

    def __init__(self, kind: str, name: object, valid: Iterable[str]) -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid names: {', '.join(self.valid)}")


class CollectionError(RagRetrieversError):
    """A collection directory cannot be opened or written."""


class CorruptCollectionError(CollectionError):
    """A collection directory's manifest or data files are damaged or incomplete."""


class ForeignCollectionError(CollectionError):
    """A directory is not a rag-retrievers collection, or belongs to another retriever or model."""


class CollectionWriteError(CollectionError, OSError):
    """A save failed (a full disk, a permission); the previously saved state is unchanged."""


class MilvusUnavailableError(CollectionError, ConnectionError):
    """No Milvus answers at the uri: a server that stayed unreachable through every retry (the
    message names the uri and the last error), or a milvus-lite that cannot start. A retried
    write that raises this may have been applied in part; writes upsert by id, so repeating it
    is safe."""


class ChromaUnavailableError(CollectionError, ConnectionError):
    """No Chroma server answers at ``host:port``: it stayed unreachable through every retry (the
    message names the address and the last error). A retried write that raises this may have
    been applied in part; writes upsert by id, so repeating it is safe."""


class MissingDependencyError(RagRetrieversError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is required for this feature: pip install 'rag-retrievers[{extra}]'"
        )


def check_k(k: object, name: str = "k") -> int:
    """Return ``k`` as an ``int`` if it is an integer >= 1 (``numpy.int64`` too, never a bool),
    else raise :class:`InvalidInputError`."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidInputError(f"{name} must be an int >= 1, got {k!r}")
    if k < 1:
        raise InvalidInputError(f"{name} must be >= 1, got {k}")
    return int(k)


def check_query(query: object) -> str:
    """Return ``query`` if it is a non-blank string, else raise :class:`InvalidQueryError`."""
    if not isinstance(query, str):
        raise InvalidQueryError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidQueryError("query must not be empty or blank")
    return query


def is_finite_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (never a bool): what a numeric option takes."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
