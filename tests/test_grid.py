"""The experiment grid: entry parsing, the comparison with Holm, the table and its JSON."""

import argparse
import json
from pathlib import Path

import pytest
from rag_retrievers.evals.grid import (
    EntryResult,
    GridEntryError,
    add_grid_arguments,
    compare_to_baseline,
    entry_name,
    format_table,
    main_grid,
    parse_entry,
    parse_grid,
)
from rag_retrievers.evals.significance import holm, paired_t_test

from rag_retrievers.errors import InvalidInputError, UnknownNameError
from rag_retrievers.spec import RetrieverSpec

# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bm25", RetrieverSpec(name="bm25")),
        (" bm25 / rm3 ", RetrieverSpec(name="bm25", prf="rm3")),
        ("bm25/rocchio", RetrieverSpec(name="bm25", prf="rocchio")),
        ("hybrid:bm25+bm25", RetrieverSpec(name="hybrid", members=("bm25", "bm25"))),
        (
            "hybrid:bm25+bm25+bm25~combsum/rm3",
            RetrieverSpec(
                name="hybrid", members=("bm25", "bm25", "bm25"), fusion="combsum", prf="rm3"
            ),
        ),
        (
            "hybrid: bm25 + bm25 ~ rrf",
            RetrieverSpec(name="hybrid", members=("bm25", "bm25"), fusion="rrf"),
        ),
        (
            "hybrid:bm25+bm25~combsum:z-score/rm3",
            RetrieverSpec(
                name="hybrid",
                members=("bm25", "bm25"),
                fusion="combsum",
                prf="rm3",
                params={"normalization": "z-score"},
            ),
        ),
    ],
)
def test_parse_valid_entries(text: str, expected: RetrieverSpec) -> None:
    spec = parse_entry(text)
    assert spec == expected
    assert parse_entry(entry_name(spec)) == spec  # the canonical name parses back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bm2", "unknown retriever 'bm2'; valid names:"),
        ("bm25/rm4", "unknown PRF method 'rm4'; valid names: colbert-prf, rm3, rocchio"),
        ("bm25/", "unknown PRF method ''"),
        ("hybrid:bm25+bm2", "unknown retriever 'bm2'; valid names:"),
        ("hybrid:bm25+bm25~rfr", "unknown fusion 'rfr'; valid names: combmnz, combsum"),
        ("hybrid:bm25+bm25~rrf:z-score", "fusion 'rrf' has no option 'normalization'"),
        ("hybrid:bm25+bm25~combsum:z", "unknown normalization 'z'; valid names:"),
        ("hybrid:bm25", "two or more members"),
        ("hybrid:bm25+", "two or more members"),
        ("hybrid", "needs members"),
        ("prf", "BASE/METHOD"),
        ("bm25:bm25+bm25", "only hybrid takes members"),
        ("bm25+bm25", "expected NAME, NAME/PRF or hybrid:"),
        ("hybrid:bm25+hybrid", "cannot be 'hybrid'"),
    ],
)
def test_parse_invalid_entries_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(GridEntryError) as info:
        parse_entry(text)
    assert f"--grid entry {text.strip()!r}: " in str(info.value)
    assert message in str(info.value)


def test_unknown_name_keeps_the_registry_error() -> None:
    with pytest.raises(GridEntryError) as info:
        parse_entry("nope/rm3")
    assert isinstance(info.value.__cause__, UnknownNameError)
    assert "bm25" in info.value.__cause__.valid


def test_parse_grid() -> None:
    specs = parse_grid("bm25, bm25/rm3, ,hybrid:bm25+bm25~rrf")
    assert [entry_name(s) for s in specs] == ["bm25", "bm25/rm3", "hybrid:bm25+bm25~rrf"]
    with pytest.raises(GridEntryError, match="listed twice"):
        parse_grid("bm25, bm25 ")
    with pytest.raises(InvalidInputError, match="at least one entry"):
        parse_grid(" , ")
    with pytest.raises(InvalidInputError, match="no grid entry takes"):
        parse_grid("bm25, bm25/rm3", model="minilm")  # BM25 takes no model


# -- comparisons and the table -----------------------------------------------------------------


def test_compare_to_baseline_applies_holm_over_the_grid() -> None:
    base = {"q1": 0.1, "q2": 0.2, "q3": 0.3, "q4": 0.4}
    per_query = {
        "base": base,
        "same": dict(base),
        "better": {"q1": 0.5, "q2": 0.5, "q3": 0.8, "q4": 0.8},
        "worse": {"q1": 0.0, "q2": 0.1, "q3": 0.2, "q4": 0.25},
    }
    result = compare_to_baseline(per_query, "base", metric="nDCG@10", tests=["t"], alpha=0.05)
    assert list(result) == ["same", "better", "worse"]
    raw = [paired_t_test(per_query[n], base).p_value for n in result]
    assert [c.tests["t"].p_holm for c in result.values()] == pytest.approx(holm(raw))
    assert result["same"].difference == 0.0
    assert result["same"].tests["t"].result.p_value == 1.0
    assert result["better"].difference == pytest.approx(0.4)
    assert result["worse"].difference == pytest.approx(-0.1125)
    for comparison in result.values():
        outcome = comparison.tests["t"]
        assert outcome.significant == (outcome.p_holm < 0.05)
    with pytest.raises(InvalidInputError, match="baseline"):
        compare_to_baseline(per_query, "nope", metric="nDCG@10")


def _result(entry: str, value: float) -> EntryResult:
    return EntryResult(
        entry=entry,
        label=entry,
        retriever=entry,
        metrics={"nDCG@10": value, "MRR@10": value / 2},
        per_query={},
        latency_ms=1.5,
        index_seconds=0.0,
        index_reused=False,
        run_file="",
    )


def test_format_table_is_aligned_and_marks_significance() -> None:
    per_query = {
        "bm25": {f"q{i}": 0.1 for i in range(10)},
        "bm25/rm3": {f"q{i}": 0.9 - i / 100 for i in range(10)},
    }
    comparisons = compare_to_baseline(
        per_query, "bm25", metric="nDCG@10", tests=["t", "randomization"], trials=200
    )
    table = format_table(
        [_result("bm25", 0.1), _result("bm25/rm3", 0.855)],
        comparisons,
        metrics=["nDCG@10", "MRR@10"],
        baseline="bm25",
        tests=["t", "randomization"],
    )
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # every line as wide: aligned
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        "retriever",
        "nDCG@10",
        "MRR@10",
        "ms/query",
        "Δ nDCG@10",
        "p (t)",
        "p Holm (t)",
        "p (rand)",
        "p Holm (rand)",
    ]
    assert lines[1].startswith("|---")
    assert lines[1].endswith(":|")
    assert "baseline" in lines[2]
    assert "*" not in lines[2]
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells[:5] == ["bm25/rm3", "0.8550", "0.4275", "1.50", "+0.7550"]
    assert cells[6].endswith("*")
    assert cells[8].endswith("*")


# -- a grid on a tiny dataset ------------------------------------------------------------------


def _write_dataset(root: Path) -> Path:
    docs = {
        "d1": "apple pie with cinnamon and sugar",
        "d2": "pear tart with almond cream",
        "d3": "cinnamon rolls need yeast and butter",
        "d4": "marathon runners keep a steady pace",
        "d5": "tennis players practise the serve",
        "d6": "sourdough bread needs a starter and time",
        "d7": "a steady pace wins the long race",
        "d8": "almond milk and oat milk in coffee",
    }
    queries = {
        "q1": "cinnamon pastry",
        "q2": "running pace",
        "q3": "almond dessert",
        "q4": "bread yeast",
        "q5": "tennis serve",
    }
    qrels = [("q1", "d1"), ("q1", "d3"), ("q2", "d4"), ("q2", "d7"), ("q3", "d2")]
    qrels += [("q4", "d6"), ("q4", "d3"), ("q5", "d5")]
    root.mkdir()
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items())
    )
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels)
    )
    return root


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_grid_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _write_dataset(tmp_path / "tiny")


def _grid_args(tiny: Path, tmp_path: Path, *extra: str) -> argparse.Namespace:
    return _args(
        "--dataset",
        str(tiny),
        "--grid",
        "bm25, bm25/rm3, hybrid:bm25+bm25",
        "--trials",
        "200",
        "--output",
        str(tmp_path / "out"),
        "--cache",
        str(tmp_path / "cache"),
        "-q",
        *extra,
    )


def test_grid_prints_one_table(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_grid(_grid_args(tiny, tmp_path, "--baseline", "bm25")) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 3
    assert "Recall@100" in table[0]
    assert "p Holm (rand)" in table[0]
    assert table[2].startswith("| bm25 ")
    assert "baseline" in table[2]
    assert table[3].startswith("| bm25/rm3 ")
    assert table[4].startswith("| hybrid:bm25+bm25 ")
    # a Hybrid of two copies of one BM25 ranks as BM25 does
    cells = [c.strip() for c in table[4].strip("|").split("|")]
    assert cells[5] == "+0.0000"
    assert cells[6] == "1.0000"
    assert "5 queries" in out
    assert "Holm-adjusted over 2 comparison(s)" in out
    # one BM25 index, shared by all three entries
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_grid_json_and_files(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_grid(_grid_args(tiny, tmp_path, "--json", "--test", "t")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads((tmp_path / "out" / "grid.json").read_text())
    assert report["baseline"] == "bm25"  # the first entry by default
    assert report["metrics"] == ["nDCG@10", "Recall@100", "MRR@10"]
    assert report["primary_metric"] == "nDCG@10"
    assert report["tests"] == ["t"]
    assert (report["queries"], report["documents"]) == (5, 8)
    entries = {e["entry"]: e for e in report["entries"]}
    assert list(entries) == ["bm25", "bm25/rm3", "hybrid:bm25+bm25"]
    base = entries["bm25"]
    assert base["baseline"] is True
    assert base["comparison"] is None
    assert set(base["per_query"]["nDCG@10"]) == {"q1", "q2", "q3", "q4", "q5"}
    mean = sum(base["per_query"]["nDCG@10"].values()) / 5
    assert base["metrics"]["nDCG@10"] == pytest.approx(mean)
    assert base["latency_ms"] > 0
    # the BM25 index is built once, for the first entry, then shared or opened from the cache
    assert [e["index_reused"] for e in entries.values()] == [False, True, True]
    rm3 = entries["bm25/rm3"]["comparison"]
    assert rm3["metric"] == "nDCG@10"
    assert set(rm3["tests"]) == {"t"}
    assert set(rm3["tests"]["t"]) == {"result", "p_holm", "significant"}
    assert rm3["tests"]["t"]["result"]["queries"] == 5
    for entry in entries.values():
        run = Path(entry["run_file"])
        assert run.parent == tmp_path / "out"
        assert run.suffix == ".trec"
        assert run.read_text().split("\n", 1)[0].split()[1] == "Q0"


def test_grid_passes_a_normalization_to_the_hybrid(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = "bm25, hybrid:bm25+bm25~combsum:min-max, hybrid:bm25+bm25~combsum:z-score"
    args = _grid_args(tiny, tmp_path, "--json", "--test", "t")
    args.grid = grid
    assert main_grid(args) == 0
    entries = {e["entry"]: e for e in json.loads(capsys.readouterr().out)["entries"]}
    assert list(entries) == [e.strip() for e in grid.split(",")]
    files = {name: Path(e["run_file"]) for name, e in entries.items()}
    assert len(set(files.values())) == 3  # one file per entry, none overwritten
    scores = {
        n: [float(line.split()[4]) for line in f.read_text().splitlines()] for n, f in files.items()
    }
    min_max, z = (
        scores["hybrid:bm25+bm25~combsum:min-max"],
        scores["hybrid:bm25+bm25~combsum:z-score"],
    )
    # min-max puts each copy's scores in [0, 1]; z-scores of a list sum to 0, so some are < 0
    assert all(0 <= s <= 2 for s in min_max)
    assert min(z) < 0


def test_grid_adds_a_missing_baseline_first(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(
        "--dataset",
        str(tiny),
        "--grid",
        "bm25/rocchio",
        "--baseline",
        "bm25",
        "--test",
        "randomization",
        "--trials",
        "100",
        "--output",
        str(tmp_path / "out"),
        "--no-cache",
        "--json",
        "-q",
    )
    assert main_grid(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["entry"] for e in report["entries"]] == ["bm25", "bm25/rocchio"]
    assert report["entries"][0]["baseline"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--metrics", "nDCG@10,bogus"], "unknown metric 'bogus'"),
        (["--trials", "0"], "--trials must be >= 1"),
        (["--alpha", "1.5"], "--alpha"),
        (["--baseline", "bm25/rm9"], "unknown PRF method"),
    ],
)
def test_grid_rejects_bad_options_before_work(
    tiny: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        main_grid(_grid_args(tiny, tmp_path, *extra))
    assert not (tmp_path / "out").exists()
