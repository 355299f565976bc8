"""The members of a composite retriever (a :class:`~rag_retrievers.adapters.hybrid.Hybrid`'s
members, a :class:`~rag_retrievers.adapters.prf.PRF`'s base): how a member appears in a config
and is built back from it, how a wrapper searches it, and running members concurrently under a
timeout, with the errors that name the member that failed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from typing import Any

from rag_retrievers.base import Retriever
from rag_retrievers.errors import InvalidInputError, RagRetrieversError
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.records import Hit
from rag_retrievers.registry import create_retriever

__all__ = [
    "MemberError",
    "MemberFailureWarning",
    "MemberTimeoutError",
    "build_retriever",
    "member_search",
    "retriever_spec",
    "run_concurrently",
]


# -- member errors ----------------------------------------------------------------------------


class MemberError(RagRetrieversError):
    """A member of a :class:`Hybrid` failed; ``member`` names it, ``__cause__`` is its error."""

    def __init__(self, member: str, message: str) -> None:
        self.member = member
        super().__init__(message)


class MemberTimeoutError(MemberError, TimeoutError):
    """A member of a :class:`Hybrid` did not answer within ``timeout`` seconds."""


class MemberFailureWarning(RuntimeWarning):
    """With ``on_error="skip"``, a member failed and the others were fused without it."""


# -- member specs: how a member appears in a config -------------------------------------------


def retriever_spec(retriever: Retriever) -> dict[str, Any]:
    """``{"retriever": name, "config": {...}}``: JSON that rebuilds an empty ``retriever``."""
    return {"retriever": retriever.name, "config": retriever.config()}


def build_retriever(spec: Retriever | Mapping[str, Any] | str, what: str) -> Retriever:
    """A Retriever as given, or built from a registered name or a :func:`retriever_spec`."""
    if isinstance(spec, Retriever):
        return spec
    if isinstance(spec, str):
        return create_retriever(spec)
    if isinstance(spec, Mapping) and isinstance(spec.get("retriever"), str):
        config = spec.get("config") or {}
        if not isinstance(config, Mapping) or not all(isinstance(key, str) for key in config):
            raise InvalidInputError(f"{what}: 'config' must be an object, got {config!r}")
        try:
            return create_retriever(spec["retriever"], **config)
        except TypeError as exc:  # an option the retriever does not take
            raise InvalidInputError(f"{what} {spec['retriever']!r}: {exc}") from None
    raise InvalidInputError(
        f"{what} must be a Retriever, a registered retriever name or "
        f"{{'retriever': name, 'config': {{...}}}}, got {spec!r}"
    )


def member_search(
    retriever: Retriever, queries: list[str], k: int, filter: CompiledFilter | None
) -> list[list[Hit]]:
    """Search a wrapped retriever with queries and a filter the wrapper already validated."""
    return retriever.search_compiled(queries, k, filter)


# -- running members concurrently -------------------------------------------------------------


def run_concurrently(
    tasks: Mapping[str, Callable[[], Any]], timeout: float | None
) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """Run each task in its own daemon thread; results and failures by name.

    Daemon threads, not a pool: a member that hangs past ``timeout`` keeps running in the
    background but never blocks later calls or interpreter exit.
    """
    futures: dict[str, Future[Any]] = {}
    for name, task in tasks.items():
        future: Future[Any] = Future()

        def run(future: Future[Any] = future, task: Callable[[], Any] = task) -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(task())
                except BaseException as exc:  # handed to the caller through the future
                    future.set_exception(exc)

        threading.Thread(target=run, name=f"hybrid-member-{name}", daemon=True).start()
        futures[name] = future
    wait(list(futures.values()), timeout=timeout)
    results: dict[str, Any] = {}
    failures: dict[str, BaseException] = {}
    for name, future in futures.items():
        if not future.done():
            failures[name] = MemberTimeoutError(
                name, f"member {name!r} did not answer within timeout={timeout} s"
            )
        elif (exc := future.exception()) is not None:
            failures[name] = exc
        else:
            results[name] = future.result()
    return results, failures
