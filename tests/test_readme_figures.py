"""Figures of the documentation against the commands that produce them (the fast ones: BM25).

The figures are read from the pages' text (docs/results/retrieval.md, docs/results/speed.md; the
README's headline figures are checked against these pages by tests/test_docs.py), so the test
fails when a page and the command disagree, whichever of the two changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rag_retrievers.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
RETRIEVAL = RESULTS / "retrieval.md"
SPEED = RESULTS / "speed.md"


def readme_table(first_cell: str) -> list[dict[str, str]]:
    """The table of docs/results/retrieval.md whose header row starts with ``| first_cell |``."""
    lines = RETRIEVAL.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:  # past the |---| row
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)))
    return rows


@pytest.mark.slow
def test_bm25_retrieval_quality_table(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rag-retrievers eval retrieval --dataset ../shared/data/<name> --retriever bm25` (test
    split; cranfield with --split test_binary), as "Retrieval quality" says."""
    rows = readme_table("dataset (BM25, defaults)")
    assert [row["dataset (BM25, defaults)"] for row in rows] == [
        "scifact",
        "vaswani_npl",
        "cranfield (test_binary)",
        "adi",
    ]
    for row in rows:
        name, _, split = row.pop("dataset (BM25, defaults)").partition(" ")
        argv = ["eval", "retrieval", "--dataset", str(shared_data / name), "--retriever", "bm25"]
        argv += ["--split", split.strip("()") or "test", "--json", "--no-cache", "-q"]
        assert main([*argv, "--output", str(tmp_path / name)]) == 0
        metrics = json.loads(capsys.readouterr().out)["metrics"]
        assert {m: f"{metrics[m]:.4f}" for m in row} == row, name


@pytest.mark.slow
def test_bench_bm25_correctness_line(shared_data: Path, tmp_path: Path) -> None:
    """`rag-retrievers bench bm25` on SciFact: the same hits as bm25s and the nDCG@10 of each
    system, as "Speed" says (about 30 s: every system answers the 300 queries)."""
    text = " ".join(SPEED.read_text(encoding="utf-8").split())
    line = re.search(
        r"Same results, checked in the same run \(SciFact, ours vs bm25s\): ([\d.]+)% of hits "
        r"shared, ([\d.]+)% of (\d+) queries with identical top-10 sets; nDCG@10 "
        r"rag_retrievers\.BM25 ([\d.]+), bm25s \(numpy\) ([\d.]+), rank_bm25\.BM25Okapi ([\d.]+)\.",
        text,
    )
    assert line, "docs/results/speed.md no longer has the bench bm25 correctness line"
    shared, identical, queries, ours, bm25s, rank_bm25 = line.groups()
    out = tmp_path / "bench.json"
    argv = ["bench", "bm25", "--data", str(shared_data), "--corpora", "scifact"]
    assert main([*argv, "--json", str(out), "--quiet"]) == 0
    check = json.loads(out.read_text(encoding="utf-8"))["corpora"]["scifact"]["correctness"]
    overlap, ndcg = check["overlap"]["bm25s"], check["nDCG@10"]
    assert (f"{overlap['mean']:.1%}", f"{overlap['identical']:.1%}", overlap["n_queries"]) == (
        f"{shared}%",
        f"{identical}%",
        int(queries),
    )
    assert [f"{ndcg[s]:.4f}" for s in ("ours", "bm25s", "rank-bm25")] == [ours, bm25s, rank_bm25]


FAITHFULNESS = RESULTS / "faithfulness.md"


def lodo_table() -> dict[str, dict[str, str]]:
    """docs/results/faithfulness.md's leave-one-dataset-out table: judge -> set -> cell."""
    lines = FAITHFULNESS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| judge (LODO) |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
    return table


@pytest.mark.slow
def test_faithfulness_lodo_rows_that_need_no_fitting(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rag-retrievers eval faithfulness --lodo rgb_counterfactual halueval_qa --no-learned`
    (the two small derived sets, about 2 minutes of MiniLM): the baseline and the unfitted
    signals do not depend on which other sets are in the run, so their figures for these two
    sets must be the page's (and the README's, which tests/test_docs.py ties to the page)."""
    table = lodo_table()
    argv = ["eval", "faithfulness", "--lodo", "rgb_counterfactual", "halueval_qa"]
    argv += ["--data", str(shared_data), "--no-learned", "--cache", str(tmp_path), "--json", "-q"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    checked = ["baseline", "claim cosine", "word overlap", "token alignment"]
    for judge in checked:
        for name in ("rgb_counterfactual", "halueval_qa"):
            column = next(c for c in table[judge] if c.startswith(name))
            figure = rows[judge][name]["supported vs not"]
            assert f"{figure:.3f}" == table[judge][column], (judge, name)
