"""Generators registered by name, and the resolver behind ``--generator NAME_OR_URL``.

Built-in backends are import paths, imported on first use: naming one never imports llama_cpp.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rag_retrievers.errors import InvalidInputError, UnknownNameError
from rag_retrievers.generators.base import Generator
from rag_retrievers.generators.redact import redact_text
from rag_retrievers.name_registry import Registry

T = TypeVar("T", bound=Callable[..., Any])

#: the default answers offline in milliseconds and quotes its sources: measured beside SmolLM2-135M
#: on the QA suites (docs: Generate answers), it wins on containment, token F1 and faithfulness
DEFAULT_GENERATOR = "extractive"

_GENERATORS: Registry[Callable[..., Generator]] = Registry(
    "generator",
    {
        "llama-cpp": "rag_retrievers.generators.llama_cpp:LlamaCpp",
        "openai": "rag_retrievers.generators.openai:OpenAICompatible",
        "langchain": "rag_retrievers.generators.langchain:LangChainChat",
        "extractive": "rag_retrievers.generators.extractive:ExtractiveAnswerer",
    },
)


def register_generator(name: str) -> Callable[[T], T]:
    """Decorator: make a generator class (or factory) creatable by ``name``."""

    def decorate(factory: T) -> T:
        _GENERATORS.register(name, factory)
        return factory

    return decorate


def generator_names() -> list[str]:
    return _GENERATORS.names()


def generator_factory(name: str) -> Callable[..., Generator]:
    """The class registered as ``name``; :class:`UnknownNameError` lists the valid names."""
    return _GENERATORS.get(name)


def create_generator(name: str = DEFAULT_GENERATOR, *args: Any, **options: Any) -> Generator:
    """Build the generator registered as ``name`` with the backend's own arguments.

    >>> create_generator("openai", "http://127.0.0.1:8000").url
    'http://127.0.0.1:8000/v1/chat/completions'
    """
    return generator_factory(name)(*args, **options)


def resolve_generator(spec: str | Generator | None = None, **options: Any) -> Generator:
    """What ``--generator`` accepts, most specific first:

    - ``None`` or ``""``: the default, the extractive answerer (quotes the passages' best
      sentences with citations; no language model)
    - an ``http://`` or ``https://`` URL: an OpenAI-compatible server (``/v1`` added to a bare
      host); ``NAME@URL`` also names the model, e.g. ``gpt-4o-mini@https://api.openai.com/v1``
    - a path to a ``.gguf`` file, or a GGUF short name (``smollm2``): llama.cpp
    - a registered generator name (``llama-cpp``, ``openai``, ``extractive``...): that backend,
      with ``options`` (``extractive`` quotes the passages, no model: see
      :mod:`~rag_retrievers.generators.extractive`)
    - a :class:`Generator` object: returned as is

    >>> resolve_generator("http://127.0.0.1:9/v1").base_url
    'http://127.0.0.1:9/v1'
    >>> resolve_generator("gpt-4o-mini@https://api.openai.com/v1").model
    'gpt-4o-mini'
    """
    from rag_retrievers.generators.llama_cpp import GGUF_SHORT_NAMES

    if spec is None or spec == "":
        return create_generator(DEFAULT_GENERATOR, **options)
    if not isinstance(spec, str):
        if isinstance(spec, Generator):
            return spec
        raise InvalidInputError(
            f"generator must be a name, a URL, a .gguf path or a Generator, got "
            f"{type(spec).__name__}"
        )
    model, at, url = spec.partition("@")
    if at and url.startswith(("http://", "https://")):
        return create_generator("openai", url, **{"model": model or None, **options})
    if spec.startswith(("http://", "https://")):
        return create_generator("openai", spec, **options)
    if spec in GGUF_SHORT_NAMES or spec.lower().endswith(".gguf"):
        return create_generator("llama-cpp", spec, **options)
    if spec == "openai" and "base_url" not in options:
        raise InvalidInputError(
            "the openai generator needs the server's URL: give the URL itself "
            "(e.g. http://127.0.0.1:8000/v1 or MODEL@https://api.openai.com/v1)"
        )
    if spec == "langchain" and "chat_model" not in options:
        raise InvalidInputError(
            "the langchain generator wraps a chat model object: use LangChainChat(model) in Python"
        )
    if spec in _GENERATORS:
        return create_generator(spec, **options)
    if Path(spec).exists():
        raise InvalidInputError(f"generator {redact_text(spec)!r} is a path but not a .gguf file")
    raise UnknownNameError(
        "generator (a name, an http(s) URL, MODEL@URL, a .gguf path or a GGUF short name)",
        redact_text(spec),
        [*_GENERATORS.names(), *GGUF_SHORT_NAMES],
    )
