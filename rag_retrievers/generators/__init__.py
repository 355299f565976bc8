"""Generators: turn a prompt or chat messages into text, from a local GGUF model, an
OpenAI-compatible server or a LangChain chat model, behind one small protocol; or answer a RAG
prompt without a model by quoting its passages (:class:`ExtractiveAnswerer`).

>>> from rag_retrievers.generators import generator_names, resolve_generator
>>> generator_names()
['extractive', 'langchain', 'llama-cpp', 'openai']
>>> resolve_generator("http://127.0.0.1:8000")
OpenAICompatible(base_url='http://127.0.0.1:8000/v1', model=None)
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
    GeneratorResponseError,
    GeneratorTimeoutError,
    Message,
    PromptOrMessages,
    check_params,
    to_messages,
)
from rag_retrievers.generators.extractive import ExtractiveAnswerer
from rag_retrievers.generators.langchain import LangChainChat
from rag_retrievers.generators.llama_cpp import LlamaCpp, resolve_gguf
from rag_retrievers.generators.openai import OpenAICompatible
from rag_retrievers.generators.prompts import NOT_FOUND, RagPrompt
from rag_retrievers.generators.redact import redact_text, redact_url
from rag_retrievers.generators.registry import (
    create_generator,
    generator_names,
    register_generator,
    resolve_generator,
)

__all__ = [
    "COMMON_PARAMS",
    "NOT_FOUND",
    "CountsTokens",
    "ExtractiveAnswerer",
    "Generator",
    "GeneratorBase",
    "GeneratorConnectionError",
    "GeneratorError",
    "GeneratorHTTPError",
    "GeneratorResponseError",
    "GeneratorTimeoutError",
    "LangChainChat",
    "LlamaCpp",
    "Message",
    "OpenAICompatible",
    "PromptOrMessages",
    "RagPrompt",
    "check_params",
    "create_generator",
    "generator_names",
    "redact_text",
    "redact_url",
    "register_generator",
    "resolve_generator",
    "resolve_gguf",
    "to_messages",
]
