"""Leave-one-dataset-out: the derived pair sets, the equal-weight combination, the rule that a
set is never scored by anything chosen or fitted on it, and the ``--lodo`` command (on a
deterministic fake embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rag_retrievers.evals.faithfulness import lodo
from rag_retrievers.evals.faithfulness.calibration import LabelledPair, auroc
from rag_retrievers.evals.faithfulness.combination import (
    Calibration,
    Combination,
    fit_calibration,
    fit_combination,
    quantile_of,
)
from rag_retrievers.evals.faithfulness.lodo import FAMILY, LabelledSet, lodo_report
from rag_retrievers.evals.faithfulness.pairsets import PAIR_SETS, load_pair_set
from test_faithfulness import BagOfWordsAligner, BagOfWordsEmbedder

from rag_retrievers.cli import main
from rag_retrievers.errors import InvalidInputError


def write_data(root: Path) -> Path:
    """A shared-data folder in miniature: the three labelled files and the two QA sets."""
    rows = {
        "faith_climate_fever/pairs.jsonl": [
            ("Lyon recorded 312 heat deaths in 2019.", "Lyon recorded 312 heat deaths.", 1),
            ("Lyon recorded 312 heat deaths in 2019.", "Paris recorded no deaths.", None),
            ("Ice sheets are melting fast.", "Ice sheets are melting.", 1),
            ("Ice sheets are melting fast.", "Ice sheets are growing.", 0),
        ],
        "scifact/claim_verification_pairs.jsonl": [
            ("Vitamin D lowers the risk of fractures.", "Vitamin D lowers fracture risk.", 1),
            ("Vitamin D lowers the risk of fractures.", "Vitamin C cures colds.", None),
            ("Aspirin reduces fever in children.", "Aspirin reduces fever.", 1),
            ("Aspirin reduces fever in children.", "Aspirin raises fever.", 0),
        ],
        "faith_faithbench/pairs.jsonl": [
            ("The film grossed 181 million dollars.", "The film grossed 181 million.", 1),
            ("The film grossed 181 million dollars.", "The film grossed 300 million.", 0),
            ("The team won the league in May.", "The team won the league.", 1),
            ("The team won the league in May.", "The team lost the cup final.", 0),
        ],
    }
    for relative, pairs in rows.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(
                json.dumps({"id": str(i), "context": c, "response": r, "label": y}) + "\n"
                for i, (c, r, y) in enumerate(pairs)
            )
        )
    qa = root / "qa_hotpotqa_halueval500"
    qa.mkdir()
    (qa / "corpus.jsonl").write_text(
        json.dumps({"_id": "k0", "title": "", "text": "The Oberoi Group has its office in Delhi."})
        + "\n"
        + json.dumps({"_id": "k1", "title": "", "text": "Arthur's Magazine began in 1844."})
        + "\n"
    )
    (qa / "answers.jsonl").write_text(
        json.dumps(
            {
                "_id": "q0",
                "question": "Where is the office?",
                "answer": "Delhi",
                "hallucinated_answer": "Mumbai, the financial capital.",
                "gold_context_ids": ["k0"],
            }
        )
        + "\n"
        + json.dumps(
            {
                "_id": "q1",
                "question": "When did it begin?",
                "answer": "1844",
                "hallucinated_answer": "It began in 1901.",
                "gold_context_ids": ["k1"],
            }
        )
        + "\n"
    )
    rgb = root / "qa_rgb_en_fact"
    rgb.mkdir()
    questions = [
        {
            "id": 0,
            "query": "Who won?",
            "answer": "Simona Halep",
            "fakeanswer": "Angelique Kerber",
            "positive": ["Simona Halep won the title.", "The winner was Simona Halep."],
            "positive_wrong": [
                "Angelique Kerber won the title.",
                "The winner was Angelique Kerber.",
            ],
        },
        {
            "id": 1,
            "query": "When was it released?",
            "answer": [["July 21 2017", "Jul 21, 2017", "July 21, 2017"]],
            "fakeanswer": "July 1, 2007",
            "positive": ["It was released on July 21, 2017.", "Released July 21, 2017 worldwide."],
            "positive_wrong": ["It was released on July 1, 2007.", "Released July 1, 2007."],
        },
    ]
    (rgb / "en_fact.json").write_text("".join(json.dumps(q) + "\n" for q in questions))
    return root


def test_derived_pair_sets(tmp_path: Path) -> None:
    root = write_data(tmp_path)
    name, halueval = load_pair_set("halueval_qa", root)
    assert name == "halueval_qa"
    assert [(p.response, p.label) for p in halueval[:2]] == [
        ("Delhi", 1),
        ("Mumbai, the financial capital.", 0),
    ]
    assert halueval[0].context == "The Oberoi Group has its office in Delhi."
    assert halueval[0].group == halueval[1].group != halueval[2].group
    _, rgb = load_pair_set("rgb_counterfactual", root)
    assert len(rgb) == 8
    assert [p.label for p in rgb[:4]] == [1, 1, 0, 0]
    assert {p.response for p in rgb[:4]} == {"Simona Halep"}
    assert rgb[2].context == "Angelique Kerber won the title."
    # a list of spellings: the one most positive passages hold
    assert {p.response for p in rgb[4:]} == {"July 21, 2017"}
    for set_name in PAIR_SETS:
        label, pairs = load_pair_set(set_name, root)
        assert all(p.group.startswith(f"{label}:") for p in pairs)
        assert {p.dataset for p in pairs} == {label}


def test_pair_set_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="neither a pair set"):
        load_pair_set("nope", tmp_path)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_pair_set("halueval_qa", tmp_path / "missing")


def test_quantiles_and_calibration_by_hand() -> None:
    assert quantile_of([0.0, 1.0, 2.0, 3.0], np.array([1.0, 1.5, 9.0])).tolist() == [
        0.375,
        0.5,
        1.0,
    ]
    x = [np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.3, 0.7])]
    y = [np.array([0, 0, 1, 1]), np.array([0, 1])]
    calibration = fit_calibration(x, y)
    assert calibration.slope > 0
    assert calibration.apply(np.array([0.9]))[0] > calibration.apply(np.array([0.1]))[0]
    with pytest.raises(InvalidInputError, match="both supported"):
        fit_calibration([np.array([0.1, 0.2])], [np.array([1, 1])])


def _columns(rng: np.random.Generator, y: np.ndarray, strength: float) -> dict[str, np.ndarray]:
    names = {f for features in FAMILY.values() for f in features} | set(lodo.RELATION)
    return {
        name: rng.normal(size=len(y)) + (strength if name == "answer_dense" else 0.0) * y
        for name in sorted(names)
    }


def test_combination_is_monotone_batch_independent_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sets = {}
    for name in ("a", "b"):
        y = rng.integers(0, 2, 200)
        sets[name] = (_columns(rng, y, 2.0), y)
    combination = fit_combination(("answer_dense", "align_recall"), sets)
    cols, y = sets["a"]
    scores = combination.predict(cols)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert auroc(y, scores) > 0.75
    one = combination.predict({k: v[:1] for k, v in cols.items()})
    assert one[0] == scores[0]  # a pair's score does not depend on its batch
    higher = {k: v.copy() for k, v in cols.items()}
    higher["answer_dense"] = higher["answer_dense"] + 1.0
    assert (combination.predict(higher) >= scores).all()
    combination.save(tmp_path / "c.json")
    again = Combination.from_dict(json.loads((tmp_path / "c.json").read_text()))
    assert (again.predict(cols) == scores).all()  # floats round-trip through JSON exactly
    assert again.features == ("answer_dense", "align_recall")
    with pytest.raises(InvalidInputError, match="slope"):
        Combination.from_dict(
            {**combination.to_dict(), "calibration": {"slope": -1, "intercept": 0}}
        )
    assert Calibration(1.0, 0.0).apply(np.array([0.0]))[0] == 0.5


def _labelled_set(name: str, rng: np.random.Generator, n: int, strength: float) -> LabelledSet:
    y = rng.integers(0, 2, n)
    pairs = [LabelledPair(str(i), "c", "r", int(v), f"{name}:{i}", name) for i, v in enumerate(y)]
    columns = _columns(rng, y, strength)
    baseline = rng.normal(size=n) + 0.5 * y
    return LabelledSet(name, pairs, columns, np.ones(n, dtype=bool), baseline, [])


def test_nothing_chosen_or_fitted_sees_the_left_out_set(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    sets = [_labelled_set(n, rng, 120, s) for n, s in (("a", 2.0), ("b", 1.0), ("c", 3.0))]
    seen: list[tuple[str, ...]] = []
    real_fit = lodo.fit_combination

    def spy(features: object, reference: dict, **kw: object) -> Combination:
        seen.append(tuple(sorted(reference)))
        return real_fit(features, reference, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(lodo, "fit_combination", spy)
    report = lodo_report(sets, learned=False)
    assert report["shipped"]["chosen"] in FAMILY
    assert set(report["rows"]["baseline"]) == {"a", "b", "c"}
    # every fit saw a strict subset of the sets: at most the two others
    assert seen
    assert all(len(names) <= 2 for names in seen)
    for test in ("a", "b", "c"):
        figures = report["rows"]["default, chosen without the set"][test]
        assert 0.5 < figures["supported vs not"] <= 1.0
        assert 0 <= report["default"][test]["ECE"] <= 1
    assert report["worst_gain"]["default as shipped"] > 0


def test_lodo_command_on_tiny_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag_retrievers.evals.faithfulness.baseline as baseline_module
    import rag_retrievers.evals.faithfulness.offline as offline_module

    monkeypatch.setattr(offline_module, "SentenceEmbedder", lambda *a, **k: BagOfWordsEmbedder())
    monkeypatch.setattr(baseline_module, "SentenceEmbedder", lambda *a, **k: BagOfWordsEmbedder())
    monkeypatch.setattr(offline_module, "TokenAligner", lambda *a, **k: BagOfWordsAligner())
    root = write_data(tmp_path / "data")
    argv = ["eval", "faithfulness", "--lodo", "all", "--data", str(root), "--no-cache", "-q"]
    saved = tmp_path / "default.json"
    assert main([*argv, "--no-learned", "--save-default", str(saved)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("leave-one-dataset-out AUROC")
    for name in PAIR_SETS:
        assert name in out
    assert "default as shipped:" in out
    combination = Combination.from_dict(json.loads(saved.read_text()))
    assert set(combination.fitted_on["sets"]) == set(PAIR_SETS)
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "learned: former default's recipe" in report["rows"]
    assert report["sets"]["climate_fever"]["views"] == [
        "supported vs not",
        "supported vs contradicted",
    ]
    assert report["sets"]["halueval_qa"]["views"] == ["supported vs not"]
    # the offline judge reads the saved default
    judge = offline_module.OfflineJudge(weights=saved)
    judge.embedder = BagOfWordsEmbedder()
    judge.aligner = BagOfWordsAligner()
    assert judge.default_threshold == combination.threshold
    assert 0 <= judge.judge("Ice sheets are melting.", "Ice sheets are melting.").score <= 1
    assert main([*argv[:3], "climate_fever", "--data", str(root)]) == 2
    assert "at least two" in capsys.readouterr().err


def test_pairs_by_set_name_and_argument_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import test_faithfulness  # noqa: F401 (registers the cheap test-overlap judge)

    root = write_data(tmp_path / "data")
    argv = ["eval", "faithfulness", "--data", str(root), "--judge", "test-overlap", "--json"]
    assert main([*argv, "--pairs", "halueval_qa"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 4
    assert report["file"] == "halueval_qa"
    assert main([*argv, "--pairs", "halueval_qa", "faithbench"]) == 2
    assert "several only with --train-judge" in capsys.readouterr().err
    assert main([*argv]) == 2
    assert "got 0" in capsys.readouterr().err
    assert main([*argv, "--lodo", "faithbench", "faithbench"]) == 2
    assert "names a set twice" in capsys.readouterr().err
    assert main([*argv, "--train-judge", str(tmp_path / "m")]) == 2
    assert "--train-judge needs --pairs" in capsys.readouterr().err
    bad = [*argv, "--pairs", "faithbench", "--train-judge", str(tmp_path / "m")]
    assert main([*bad, "--train-param", "nope=1"]) == 2
    assert "bad --train-param" in capsys.readouterr().err
    assert main([*bad, "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
