"""The generator protocol: a prompt or chat messages in, text out (whole, streamed or async).

Every backend (llama.cpp, an OpenAI-compatible server, a LangChain chat model) implements three
methods with the same parameters::

    generate(prompt_or_messages, **params) -> str
    stream(prompt_or_messages, **params) -> Iterator[str]
    agenerate(prompt_or_messages, **params) -> str          # async

``prompt_or_messages`` is a plain string (sent as one user message) or a list of
``{"role": "system" | "user" | "assistant", "content": str}`` dicts. The parameters every backend
understands are ``max_tokens``, ``temperature``, ``top_p``, ``stop`` and ``seed``; a backend
rejects names it does not know, so a typo never silently does nothing.

A backend that can count tokens with its own tokenizer also implements :class:`CountsTokens`;
the RAG pipeline uses it to pack passages into a context budget.

>>> class Echo(GeneratorBase):
...     def generate(self, prompt_or_messages, **params):
...         return to_messages(prompt_or_messages)[-1]["content"].upper()
>>> gen = Echo()
>>> isinstance(gen, Generator), gen.generate("hi"), "".join(gen.stream("ok"))
(True, 'HI', 'OK')
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from rag_retrievers.errors import InvalidInputError, RagRetrieversError

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")


class Message(TypedDict):
    """One chat message."""

    role: Role
    content: str


PromptOrMessages = str | Sequence[Mapping[str, str]]

#: generation parameters every backend understands (each maps them to its own names)
COMMON_PARAMS: frozenset[str] = frozenset({"max_tokens", "temperature", "top_p", "stop", "seed"})
#: the parameters of a backend that can also constrain its reply to a JSON Schema
#: (``json_schema={...}``: llama.cpp by a grammar, an OpenAI-compatible server by its
#: ``response_format``); a backend without it refuses the parameter by name
STRUCTURED_PARAMS: frozenset[str] = COMMON_PARAMS | {"json_schema"}


class GeneratorError(RagRetrieversError):
    """A generator failed to produce text (backend error, bad response)."""


class GeneratorTimeoutError(GeneratorError, TimeoutError):
    """A generator did not answer within its timeout."""


class GeneratorConnectionError(GeneratorError, ConnectionError):
    """A generation server could not be reached."""


class GeneratorResponseError(GeneratorError):
    """A generation server answered, but not with a reply of the expected form: a body that is not
    JSON (an HTML error page from a proxy...), JSON of the wrong shape, or a malformed stream
    event. The message names the URL and quotes the start of the reply."""


class GeneratorHTTPError(GeneratorError):
    """A generation server answered with an HTTP error status (after any retries)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@runtime_checkable
class Generator(Protocol):
    """What the RAG pipeline and the LLM judges call. See the module docstring."""

    def generate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        """The full completion."""
        ...

    def stream(self, prompt_or_messages: PromptOrMessages, **params: Any) -> Iterator[str]:
        """The completion in pieces, as they are produced; joined they equal ``generate``."""
        ...

    async def agenerate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        """:meth:`generate` without blocking the event loop."""
        ...


@runtime_checkable
class CountsTokens(Protocol):
    """Optional ability: count tokens with the model's own tokenizer."""

    def count_tokens(self, text: str) -> int: ...


class GeneratorBase:
    """Defaults for backends: ``stream`` yields the whole completion once, ``agenerate`` runs
    ``generate`` in a worker thread. A backend overrides what it does natively."""

    def generate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        raise NotImplementedError

    def stream(self, prompt_or_messages: PromptOrMessages, **params: Any) -> Iterator[str]:
        yield self.generate(prompt_or_messages, **params)

    async def agenerate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        return await asyncio.to_thread(self.generate, prompt_or_messages, **params)


def to_messages(prompt_or_messages: PromptOrMessages) -> list[Message]:
    """Check the input and return it as a list of messages (a string becomes one user message).

    >>> to_messages("What is BM25?")
    [{'role': 'user', 'content': 'What is BM25?'}]
    """
    if isinstance(prompt_or_messages, str):
        if not prompt_or_messages.strip():
            raise InvalidInputError("prompt must not be empty or blank")
        return [{"role": "user", "content": prompt_or_messages}]
    if not isinstance(prompt_or_messages, Sequence) or not prompt_or_messages:
        raise InvalidInputError(
            "expected a prompt string or a non-empty list of {'role', 'content'} messages, "
            f"got {type(prompt_or_messages).__name__}"
        )
    messages: list[Message] = []
    for i, message in enumerate(prompt_or_messages):
        if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
            raise InvalidInputError(
                f"messages[{i}] must be a dict with exactly the keys 'role' and 'content', "
                f"got {message!r}"
            )
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise InvalidInputError(
                f"messages[{i}]['role'] must be one of {', '.join(ROLES)}, got {role!r}"
            )
        if not isinstance(content, str):
            raise InvalidInputError(
                f"messages[{i}]['content'] must be a str, got {type(content).__name__}"
            )
        messages.append({"role": role, "content": content})
    if not any(m["content"].strip() for m in messages if m["role"] == "user"):
        raise InvalidInputError("messages need at least one non-blank 'user' message")
    return messages


def check_params(params: Mapping[str, Any], allowed: frozenset[str] = COMMON_PARAMS) -> None:
    """Raise :class:`InvalidInputError` naming any parameter a backend does not understand."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise InvalidInputError(
            f"unknown generation parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(allowed))}"
        )
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidInputError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
    temperature = params.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or isinstance(temperature, bool) or temperature < 0
    ):
        raise InvalidInputError(f"temperature must be a number >= 0, got {temperature!r}")
    schema = params.get("json_schema")
    if schema is not None and not (isinstance(schema, Mapping) and schema):
        raise InvalidInputError(f"json_schema must be a non-empty JSON Schema dict, got {schema!r}")
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str)
        or (isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidInputError(f"stop must be a str or a list of str, got {stop!r}")
