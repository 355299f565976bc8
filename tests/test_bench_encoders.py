import json
from pathlib import Path

import pytest
from rag_retrievers.evals.bench.encoders import format_report, parse_models

from rag_retrievers.cli import main
from rag_retrievers.errors import InvalidInputError


def write_dataset(folder: Path, n_docs: int = 24) -> Path:
    folder.mkdir()
    words = "galaxies stars enzymes cells proteins bread dough onions".split()
    docs = [
        {"_id": f"d{i}", "title": f"T{i}", "text": " ".join(words[i % 8 :] * (1 + i % 3))}
        for i in range(n_docs)
    ]
    queries = [{"_id": "q1", "text": "stars"}, {"_id": "q2", "text": "bread dough"}]
    for name, rows in (("corpus.jsonl", docs), ("queries.jsonl", queries)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def test_models_default_per_retriever_and_take_overrides() -> None:
    assert parse_models([], ["dense", "splade"]) == {"dense": "minilm", "splade": "splade-tiny"}
    assert parse_models(["splade=./my-splade"], ["splade"]) == {"splade": "./my-splade"}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [(["minilm"], "expected RETRIEVER=NAME"), (["colbert=x"], "choose from dense")],
)
def test_bad_model_option_is_named(pairs: list[str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_models(pairs, ["dense"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--retrievers", "bm25"], "choose from dense, splade"),
        (["--docs", "0"], "--docs must be >= 1"),
        (["--repeats", "0"], "--repeats must be >= 1"),
    ],
)
def test_bad_options_fail_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    data = write_dataset(tmp_path / "data")
    assert main(["bench", "encoders", "--dataset", str(data), *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "encoders", "--dataset", str(tmp_path)]) == 2
    assert "no corpus.jsonl" in capsys.readouterr().err


def test_report_shows_ratio_of_our_time_to_raw_time() -> None:
    result = {
        "model": "minilm",
        "raw_call": "SentenceTransformer.encode",
        "batch_size": 32,
        "raw_docs_per_s": 100.0,
        "ours_docs_per_s": 80.0,
        "time_ratio": 1.25,
        "ours_p50_ms": 5.0,
        "ours_p99_ms": 9.0,
        "raw_query_p50_ms": 4.0,
        "saved_bytes_per_doc": 1700.0,
    }
    text = format_report("scifact", 2000, 100, 2, {"dense": result})
    row = next(line for line in text.splitlines() if line.startswith("| dense (minilm)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["dense (minilm)", "100.0", "80.0", "1.25x", "5.0", "9.0", "4.0", "1,700"]


@pytest.mark.slow
def test_benchmark_runs_both_adapters_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = write_dataset(tmp_path / "data")
    out = tmp_path / "bench.json"
    args = ["bench", "encoders", "--dataset", str(data), "--queries", "2", "--repeats", "1"]
    assert main([*args, "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| dense (minilm)" in printed
    assert "| splade (splade-tiny)" in printed
    systems = json.loads(out.read_text())["systems"]
    for result in systems.values():
        assert result["raw_s"] > 0
        assert result["ours_s"] > 0
        assert result["time_ratio"] == pytest.approx(result["ours_s"] / result["raw_s"])
        assert result["saved_bytes_per_doc"] > 0
    # a dense vector alone is 384 float32s; the saved collection holds it and the text
    assert systems["dense"]["saved_bytes_per_doc"] > 384 * 4
