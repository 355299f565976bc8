"""LangChain pieces the LangChain tests share: deterministic embeddings, a MiniLM embedding."""

from __future__ import annotations

import hashlib
import math
import re
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from rag_retrievers.encoders.dense import DenseEncoder

_WORD = re.compile(r"\w+")


class HashingEmbeddings(Embeddings):
    """Words and character trigrams hashed into ``size`` buckets (md5, so the same in every
    process), L2 normalised: texts that share words are close, a text is closest to itself,
    and the trigrams make ties between unrelated texts rare."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.size
        words = _WORD.findall(text.lower())
        features = [(w, 2.0) for w in words]
        features += [(f"#{w[i : i + 3]}", 0.5) for w in words for i in range(len(w) - 2)]
        for feature, weight in features:
            bucket = int.from_bytes(hashlib.md5(feature.encode()).digest()[:4], "little")
            vector[bucket % self.size] += weight
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


class EncoderEmbeddings(Embeddings):
    """One of our dense encoders (MiniLM here) as LangChain embeddings, for langchain-chroma.

    Remembers what it encoded: the conformance tests embed the same short texts many times."""

    def __init__(self, encoder: DenseEncoder) -> None:
        self.encoder = encoder
        self.memo: dict[tuple[str, str], list[float]] = {}

    def _embed(self, kind: str, texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self.memo))
        if missing:
            encode = self.encoder.encode_queries if kind == "q" else self.encoder.encode_documents
            for text, row in zip(missing, encode(missing), strict=True):
                self.memo[kind, text] = [float(x) for x in row]
        return [self.memo[kind, t] for t in texts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed("d", texts)

    def embed_query(self, text: str) -> list[float]:
        return self._embed("q", [text])[0]
