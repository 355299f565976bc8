"""A registry of factories by name, the shape the retriever, generator and judge registries share.

A built-in can be given as an import path ``"module:attribute"``, imported on first use, so
naming a variant does not import its heavy dependencies (torch, llama_cpp) until it is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, overload

from rag_retrievers.errors import UnknownNameError

F = TypeVar("F")


class Registry(Generic[F]):
    """Factories (classes or functions) of one ``kind``, registered by name.

    :meth:`get` raises :class:`~rag_retrievers.errors.UnknownNameError` listing the valid names.

    >>> shapes = Registry[type]("shape", {"ordered": "collections:OrderedDict"})
    >>> @shapes.register("plain")
    ... class Plain(dict): ...
    >>> shapes.names()
    ['ordered', 'plain']
    >>> shapes.get("ordered").__name__
    'OrderedDict'
    >>> shapes.get("round")
    Traceback (most recent call last):
    ...
    rag_retrievers.errors.UnknownNameError: unknown shape 'round'; valid names: ordered, plain
    """

    def __init__(self, kind: str, builtins: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str | F] = dict(builtins or {})

    @overload
    def register(self, name: str) -> Callable[[F], F]: ...
    @overload
    def register(self, name: str, factory: F) -> F: ...
    def register(self, name: str, factory: F | None = None) -> F | Callable[[F], F]:
        """Register ``factory`` as ``name`` (replacing an earlier entry); without ``factory``, a
        decorator that does so."""
        if factory is not None:
            self._entries[name] = factory
            return factory

        def decorate(factory: F) -> F:
            self._entries[name] = factory
            return factory

        return decorate

    def unregister(self, name: str) -> None:
        self._check(name)
        del self._entries[name]

    def get(self, name: str) -> F:
        """The factory registered as ``name``, importing it on first use."""
        entry = self._check(name)
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"

    def _check(self, name: object) -> str | F:
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise UnknownNameError(self.kind, name, self._entries)
        return entry
