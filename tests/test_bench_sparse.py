"""``bench sparse`` end to end on tiny corpora the tests write (never the shared data), and the
learned-sparse scale corpus's rule for copies: the dropped words' terms leave the copy's vector."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("sentence_transformers")

from rag_retrievers.evals.bench.scale_corpus import DROP, base_documents, corpus_batches
from rag_retrievers.evals.bench.sparse_corpus import (
    SourceVectors,
    collection,
    copy_vectors,
    kept_words,
)
from test_bench_commands import write_scale_data

from rag_retrievers.cli import main


def test_kept_words_are_the_scale_corpus_draws() -> None:
    n_words = np.array([3, 0, 5, 1])
    kept = kept_words(n_words, copy=2)
    rng = random.Random(2)
    draws = [rng.random() >= DROP for _ in range(9)]
    expected = list(draws)
    for start, n in ((0, 3), (3, 5), (8, 1)):  # a document that would lose every word keeps one
        if n and not any(draws[start : start + n]):
            expected[start] = True
    assert kept.tolist() == expected


def source_vectors() -> SourceVectors:
    # two documents over a vocabulary of 6 terms; words are "w0 w1 w2" and "w3 w1"
    vectors = sp.csr_matrix(
        np.array([[1.0, 2.0, 3.0, 0.0, 0.0, 0.5], [0.0, 4.0, 0.0, 5.0, 0.0, 0.0]]),
        dtype=np.float32,
    )
    return SourceVectors(
        ids=["s/a", "s/b"],
        vectors=vectors,
        word_starts=np.array([0, 3]),
        n_words=np.array([3, 2]),
        # word 0 -> terms 0 and 2, word 1 -> term 1, word 2 -> term 2, word 3 -> 3, word 4 -> 1
        piece_word=np.array([0, 0, 1, 2, 3, 4]),
        piece_id=np.array([0, 2, 1, 2, 3, 1]),
        terms=[f"t{i}" for i in range(6)],
    )


def test_a_copy_loses_the_terms_only_its_dropped_words_had() -> None:
    sources = source_vectors()
    for copy in range(1, 40):
        kept = kept_words(sources.n_words, copy)
        out = copy_vectors(sources, copy, 2).toarray()
        # doc a: term 0 goes with word 0; term 2 stays while word 0 or word 2 is kept
        assert (out[0, 0] > 0) == kept[0]
        assert (out[0, 2] > 0) == (kept[0] or kept[2])
        assert (out[0, 1] > 0) == kept[1]
        assert out[0, 5] == 0.5  # an expansion term no word produced stays
        assert (out[1, 3] > 0) == kept[3]
        assert (out[1, 1] > 0) == kept[4]
    vectors, ids = collection(sources, 5)
    assert ids == ["s/a", "s/b", "s/a#1", "s/b#1", "s/a#2"]
    assert vectors.shape == (5, 6)
    assert (vectors[:2].toarray() == sources.vectors.toarray()).all()


def test_copies_drop_the_same_words_as_the_scale_corpus(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_scale_data(data)
    base = [t for _, t in base_documents(data)]
    texts = [t for batch in corpus_batches(data, 2 * len(base)) for _, t in batch]
    words = [t.split() for t in base]
    n_words = np.array([len(w) for w in words])
    kept = kept_words(n_words, copy=1)
    flat = [w for ws in words for w in ws]
    start = 0
    for i, ws in enumerate(words):
        mine = [w for w, k in zip(flat[start : start + len(ws)], kept[start:], strict=False) if k]
        assert " ".join(mine) == texts[len(base) + i]
        start += len(ws)


@pytest.mark.slow
def test_bench_sparse_with_tiny_docs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_scale_data(data)
    out = tmp_path / "sparse.json"
    argv = ["bench", "sparse", "--data", str(data), "--docs", "400", "--queries", "6"]
    argv += ["--cache", str(tmp_path / "cache"), "--json", str(out), "--quiet"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| exact (SparseIndex)" in table
    assert "| approximate (ours)" in table
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["docs"] == 400
    assert report["queries"] == 6
    systems = report["systems"]
    assert systems["exact"]["recall_at_10"] == 1.0
    for figures in systems.values():
        for key in ("build_s", "p50_ms", "p99_ms", "p50_cpu_ms", "recall_at_10"):
            assert math.isfinite(figures[key]), key
        assert figures["p99_ms"] >= figures["p50_ms"]
    assert 0 < systems["approximate"]["recall_at_10"] <= 1
    assert systems["exact"]["tie_recall_at_10"] == 1.0
    ties = systems["approximate"]["tie_recall_at_10"]
    assert systems["approximate"]["recall_at_10"] <= ties <= 1
    assert report["encode_s_recorded"] is not None  # the sources were encoded and timed
    assert main(argv) == 0  # a second run reads the cached vectors
    again = json.loads(out.read_text(encoding="utf-8"))
    assert again["entries"] == report["entries"]
