"""How every encoder walks a list of texts: longest first, in batches, with a progress bar."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.progress import progress_bar

__all__ = ["check_texts", "longest_first"]


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refused unless it is a sequence of ``str`` (a lone ``str`` too)."""
    if isinstance(texts, str):
        raise InvalidInputError("encode takes a list of texts, got a single str")
    texts = list(texts)
    if any(not isinstance(t, str) for t in texts):
        raise InvalidInputError("encode takes a list of str")
    return texts


def longest_first(
    texts: Sequence[str], size: int, label: str, progress: bool | None
) -> Iterator[list[int]]:
    """The rows of ``texts`` in batches of ``size``, longest first: similar lengths share a
    batch (little padding), and an out-of-memory error shows up in the first batch rather than
    the last. A progress bar over the texts moves as each batch is done.

    >>> list(longest_first(["a", "abc", "ab"], 2, "encoding", False))
    [[1, 2], [0]]
    """
    order = np.argsort(-np.fromiter(map(len, texts), np.int64, len(texts)), kind="stable")
    bar = progress_bar(len(texts), label, "text", progress)
    try:
        for start in range(0, len(texts), size):
            rows = order[start : start + size].tolist()
            yield rows
            if bar is not None:
                bar.update(len(rows))
    finally:
        if bar is not None:
            bar.close()
