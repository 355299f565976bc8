"""How long a chunk may be: the token limits of the models a retriever encodes documents with.

A neural retriever truncates what its model cannot read: MiniLM reads 256 tokens (its special
tokens and the document prompt included) and drops the rest without a word. :func:`token_limits`
finds each model behind a retriever (the members of a Hybrid, the base of a wrapper) with its own
tokenizer and limit, so a chunker can measure chunks as the model will. A retriever without a
model (BM25) has none: its chunks are measured in words (:func:`count_words`).

>>> from rag_retrievers import BM25
>>> token_limits(BM25())
[]
>>> count_words("BM25 ranks documents, word by word.")
6
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"\S+")


def count_words(text: str) -> int:
    """The number of whitespace-separated words: the length of a chunk for BM25."""
    return sum(1 for _ in _WORD.finditer(text))


@dataclass(frozen=True)
class TokenLimit:
    """A model that reads a chunk: its name, the most tokens it reads (special tokens and the
    document prompt included), and how many tokens a text takes in it (the same way)."""

    model: str
    max_tokens: int
    count: Callable[[str], int]
    #: tokens the model adds around any text (special tokens, the document prompt)
    overhead: int = 0

    def __repr__(self) -> str:
        return f"TokenLimit(model={self.model!r}, max_tokens={self.max_tokens})"


def _tokenizer_counter(tokenizer: Any, prefix: str = "") -> Callable[[str], int]:
    def count(text: str) -> int:
        encoded = tokenizer(prefix + text, add_special_tokens=True, verbose=False)
        return len(encoded["input_ids"])

    return count


def _limit_of_encoder(encoder: Any) -> TokenLimit | None:
    """The limit of one encoder: a sentence-transformers model (dense, SPLADE) or a
    late-interaction encoder (ColBERT: its tokenizer and document length)."""
    name = str(getattr(encoder, "name", None) or getattr(encoder, "reference", "") or "model")
    model = getattr(encoder, "model", None)
    settings = getattr(encoder, "settings", None)
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is not None and settings is not None and hasattr(settings, "document_length"):
        marker = 1 if getattr(settings, "document_marker", None) else 0
        count = _tokenizer_counter(tokenizer)
        return TokenLimit(name, int(settings.document_length) - marker, count, overhead=count(""))
    if model is not None and getattr(model, "tokenizer", None) is not None:
        length = getattr(model, "max_seq_length", None) or getattr(encoder, "max_length", None)
        if not isinstance(length, int) or length < 1:
            return None
        prompt = getattr(encoder, "document_prompt", "") or ""
        count = _tokenizer_counter(model.tokenizer, prompt if isinstance(prompt, str) else "")
        return TokenLimit(name, length, count, overhead=count(""))
    return None


def token_limits(retriever: object) -> list[TokenLimit]:
    """The models behind ``retriever`` that read document text, each with its limit: the
    retriever's own encoder, its members' (Hybrid), its base's (PRF, parent documents). Empty
    for a retriever without a model (BM25)."""
    found: list[TokenLimit] = []
    seen: set[int] = set()

    def visit(node: object) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        encoder = getattr(node, "encoder", None)
        if encoder is not None:
            limit = _limit_of_encoder(encoder)
            if limit is not None:
                found.append(limit)
        members = getattr(node, "retrievers", None)
        if isinstance(members, list | tuple):
            for member in members:
                visit(member)
        for attribute in ("base", "retriever", "inner"):
            inner = getattr(node, attribute, None)
            if inner is not None and hasattr(inner, "search"):
                visit(inner)

    visit(retriever)
    return found
