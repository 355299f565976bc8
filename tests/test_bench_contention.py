"""``rag-retrievers bench contention``: the same searches idle and under a writer, one table."""

from __future__ import annotations

import json

import pytest
from rag_retrievers.evals.bench.contention import synthetic_documents

from rag_retrievers.cli import main


def test_synthetic_documents_are_deterministic_and_numbered_from_start() -> None:
    docs = synthetic_documents(5, start=10, seed=3)
    assert [d["id"] for d in docs] == [f"d{i}" for i in range(10, 15)]
    assert docs == synthetic_documents(5, start=10, seed=3)
    assert all(20 <= len(d["text"].split()) <= 60 for d in docs)


def test_contention_reports_both_runs_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "bench",
        "contention",
        "--docs",
        "300",
        "--queries",
        "60",
        "--batch",
        "20",
        "--adds",
        "5",
    ]
    assert main([*args, "--interval-ms", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["docs"] == 300
    assert report["added_during_run"] > 0  # the writer really ran during the searches
    for run in ("idle", "writer"):
        row = report[run]
        assert 0 < row["p50"] <= row["p95"] <= row["p99"] <= row["max"]


def test_contention_prints_the_ratio_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "contention", "--docs", "200", "--queries", "20", "--adds", "3"]) == 0
    out = capsys.readouterr().out
    assert "writer / idle" in out
    assert len(out.strip().splitlines()) == 5


def test_contention_refuses_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "contention", "--docs", "0"]) == 2
    assert "--docs must be >= 1" in capsys.readouterr().err
