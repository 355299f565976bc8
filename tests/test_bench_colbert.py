"""bench colbert's token cache: keyed by the corpus's content, reused across paths."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from rag_retrievers.evals.bench.colbert import corpus_tokens


class CountingEncoder:
    def __init__(self) -> None:
        self.settings = SimpleNamespace(format="test")
        self.calls = 0

    def identity(self) -> dict[str, Any]:
        return {"name": "counting"}

    def encode_documents(self, texts: list[str], show_progress: bool | None = None) -> Any:
        self.calls += 1
        return [np.full((len(t), 2), len(t), dtype=np.float32) for t in texts]


def test_token_cache_is_reused_for_the_same_content_anywhere(tmp_path: Path) -> None:
    corpus = tmp_path / "a" / "scifact" / "corpus.jsonl"
    corpus.parent.mkdir(parents=True)
    corpus.write_text('{"_id": "1", "text": "ab"}\n', encoding="utf-8")
    encoder, cache = CountingEncoder(), tmp_path / "cache"
    first = corpus_tokens(encoder, ["ab", "xyz"], corpus, cache, False)
    moved = tmp_path / "b" / "scifact" / "corpus.jsonl"  # another path and mtime, same bytes
    moved.parent.mkdir(parents=True)
    shutil.copy(corpus, moved)
    again = corpus_tokens(encoder, ["ab", "xyz"], moved, cache, False)
    assert encoder.calls == 1
    assert {t: v.tolist() for t, v in again.items()} == {t: v.tolist() for t, v in first.items()}
    moved.write_text('{"_id": "1", "text": "changed"}\n', encoding="utf-8")
    corpus_tokens(encoder, ["ab", "xyz"], moved, cache, False)
    assert encoder.calls == 2  # other content: encoded again
