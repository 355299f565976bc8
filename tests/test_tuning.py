"""Fusion tuning: the settings tried, the choice on one split, the command's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rag_retrievers.evals.retrieval import per_query_metrics
from rag_retrievers.evals.tuning import FusionSetting, fused_metric, fusion_settings, tune

from rag_retrievers.cli import main
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.scoring.fusion import fuse_runs


def test_settings_cover_every_k_and_weight_vector_with_the_first_weight_fixed() -> None:
    settings = fusion_settings([60, 10, 10], [1, 2], n_members=3)
    assert len(settings) == 2 * 2 * 2  # 2 distinct k values x 2 weights for each of 2 members
    assert {s.k for s in settings} == {10.0, 60.0}
    assert all(s.weights[0] == 1.0 and len(s.weights) == 3 for s in settings)
    assert FusionSetting(60.0, (1.0, 2.0, 1.0)) in settings


@pytest.mark.parametrize(
    ("k_values", "weights", "n", "message"),
    [([60], [1], 1, "two or more members"), ([-1], [1], 2, "k values"), ([60], [0], 2, "weights")],
)
def test_bad_settings_are_named(k_values: list, weights: list, n: int, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        fusion_settings(k_values, weights, n)


# "good" ranks the relevant document first, "bad" ranks it last of three
QRELS = {f"q{i}": {f"rel{i}": 1} for i in range(4)}
RUNS = {
    "bad": {f"q{i}": {"x": 3.0, "y": 2.0, f"rel{i}": 1.0} for i in range(4)},
    "good": {f"q{i}": {f"rel{i}": 3.0, "x": 2.0, "y": 1.0} for i in range(4)},
}


def test_fused_metric_is_the_metric_of_the_fused_run() -> None:
    setting = FusionSetting(10.0, (1.0, 2.0))
    fused = fuse_runs(RUNS, "rrf", weights={"bad": 1.0, "good": 2.0}, k=10.0)
    expected = per_query_metrics(fused, QRELS, ["nDCG@10"])["nDCG@10"]
    assert fused_metric(RUNS, setting, QRELS, "nDCG@10", depth=100) == expected


def test_a_setting_without_k_is_a_score_fusion() -> None:
    settings = fusion_settings(None, [1, 2], n_members=3)
    assert len(settings) == 4
    assert {s.k for s in settings} == {None}
    assert settings[0].describe(["a", "b", "c"]) == "weights a 1, b 1, c 1"
    setting = FusionSetting(None, (1.0, 2.0))
    fused = fuse_runs(RUNS, "combsum", weights={"bad": 1.0, "good": 2.0}, normalization="z-score")
    expected = per_query_metrics(fused, QRELS, ["nDCG@10"])["nDCG@10"]
    assert fused_metric(RUNS, setting, QRELS, "nDCG@10", 100, "z-score") == expected
    # the normalisation reaches the fusion: scores in "bad" far apart make min-max and z differ
    skewed = {"bad": {"q0": {"x": 100.0, "y": 1.0, "rel0": 0.0}}, "good": RUNS["good"]}
    one = {"q0": QRELS["q0"]}
    by_norm = {
        n: fused_metric(skewed, setting, one, "nDCG@10", 100, n) for n in ("none", "z-score")
    }
    assert by_norm["none"] != by_norm["z-score"]


def test_tuning_weights_the_better_member_up() -> None:
    settings = fusion_settings([60], [0.5, 1, 2], n_members=2)
    trials = tune(RUNS, QRELS, settings, metric="nDCG@10", depth=100)
    assert trials[0].setting.weights == (1.0, 2.0)  # "good" (second) weighted up
    assert trials[0].mean == pytest.approx(1.0)
    assert trials[-1].mean < trials[0].mean
    assert [t.mean for t in trials] == sorted((t.mean for t in trials), reverse=True)


def test_among_equal_settings_the_default_is_kept() -> None:
    same = {"a": RUNS["good"], "b": RUNS["good"]}  # every setting scores the same
    settings = fusion_settings([5, 60], [0.5, 1], n_members=2)
    default = FusionSetting(60.0, (1.0, 1.0))
    trials = tune(same, QRELS, settings, metric="nDCG@10", depth=100, prefer=default)
    assert trials[0].setting == default


def write_dataset(folder: Path) -> Path:
    words = "galaxy star enzyme cell protein bread dough onion river mountain".split()
    docs = [
        {"_id": f"d{i}", "text": " ".join([words[i % 10], words[(i * 3 + 1) % 10]] * 2)}
        for i in range(30)
    ]
    queries = [
        {"_id": f"q{i}", "text": f"{words[i % 10]} {words[(i * 3 + 1) % 10]}"} for i in range(12)
    ]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, ids in (("train", range(6)), ("test", range(6, 12))):
        lines = ["query-id\tcorpus-id\tscore"] + [f"q{q}\td{q}\t1" for q in ids]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_command_tunes_on_train_and_reports_on_test(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = write_dataset(tmp_path / "data")
    args = ["eval", "tune-fusion", "--dataset", str(data), "--members", "bm25,bm25/rm3"]
    assert (
        main([*args, "--k-values", "10,60", "--weights", "1,2", "--no-cache", "-q", "--json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["settings_tried"] == 4
    assert (report["tune_queries"], report["report_queries"]) == (6, 6)
    assert report["members"] == ["bm25", "bm25/rm3"]
    assert report["tuned"]["tune"] == max(t["tune"] for t in report["top"])
    assert set(report["members_report"]) == {"bm25", "bm25/rm3"}
    assert 0.0 <= report["tuned_vs_default"]["randomization"] <= 1.0


def test_command_tunes_the_weights_of_a_score_fusion(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = write_dataset(tmp_path / "data")
    args = ["eval", "tune-fusion", "--dataset", str(data), "--members", "bm25,bm25/rm3"]
    options = ["--fusion", "combsum", "--normalization", "z-score", "--weights", "0.5,1,2"]
    assert main([*args, *options, "--no-cache", "-q"]) == 0
    out = capsys.readouterr().out
    assert "CombSUM of z-score scores of bm25 + bm25/rm3" in out
    assert "3 settings tuned" in out
    assert "k=" not in out
    assert "use it: --fusion combsum --param normalization=z-score --param weights=[1.0," in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--members", "bm25"], "two or more different"),
        (
            ["--members", "bm25,bm25/rm3", "--fusion", "combsum", "--normalization", "z"],
            "unknown normalization 'z'",
        ),
        (["--members", "bm25,bm25/rm3", "--report-split", "train"], "must differ"),
        (["--members", "bm25,bm25/rm3", "--k-values", "ten"], "comma-separated numbers"),
        (["--members", "bm25,bm25/rm3", "--tune-split", "dev"], "available: test, train"),
    ],
)
def test_bad_options_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    data = write_dataset(tmp_path / "data")
    assert main(["eval", "tune-fusion", "--dataset", str(data), "--no-cache", *extra]) == 2
    assert message in capsys.readouterr().err
