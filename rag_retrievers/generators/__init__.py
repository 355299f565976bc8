"""Generators: turn a prompt or chat messages into text, from a local GGUF model, an
OpenAI-compatible server or a LangChain chat model, behind one small protocol.

>>> from rag_retrievers.generators import Generator, to_messages
>>> to_messages("hello")[0]["role"]
'user'
"""

from __future__ import annotations

from rag_retrievers.generators.base import (
    COMMON_PARAMS,
    CountsTokens,
    Generator,
    GeneratorBase,
    GeneratorConnectionError,
    GeneratorError,
    GeneratorHTTPError,
    GeneratorTimeoutError,
    Message,
    PromptOrMessages,
    check_params,
    to_messages,
)

__all__ = [
    "COMMON_PARAMS",
    "CountsTokens",
    "Generator",
    "GeneratorBase",
    "GeneratorConnectionError",
    "GeneratorError",
    "GeneratorHTTPError",
    "GeneratorTimeoutError",
    "Message",
    "PromptOrMessages",
    "check_params",
    "to_messages",
]
