"""Fine-tuning a cross-encoder judge (``--train-judge``): on a tiny BERT the test writes (fast) and
on MiniLM itself for a few steps (slow); the saved folder loads in the ``nli`` judge and scores
deterministically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rag_retrievers.evals.faithfulness.calibration import LabelledPair
from rag_retrievers.evals.faithfulness.train import (
    TrainConfig,
    sampling_weights,
    train_cross_encoder,
    training_premise,
)
from test_faithfulness_nli import CONTEXT, MNLI, write_checkpoint

from rag_retrievers.cli import main
from rag_retrievers.errors import InvalidInputError

SUPPORTED = [
    "The city of Lyon recorded heat deaths.",
    "Hospital admissions increased during the heat wave.",
    "The mayor announced new cooling centres.",
    "The football team won the league.",
]
UNSUPPORTED = [
    "The sky is not blue.",
    "The football team won the heat.",
    "Hospital admissions not increased.",
    "The mayor won the league.",
]


def labelled(n: int = 32) -> list[LabelledPair]:
    """``n`` pairs over two datasets, half supported."""
    out = []
    for i in range(n):
        good = i % 2 == 0
        answer = (SUPPORTED if good else UNSUPPORTED)[(i // 2) % 4]
        out.append(LabelledPair(str(i), CONTEXT, answer, int(good), str(i), "ab"[i % 4 // 2]))
    return out


def test_sampling_weights_balance_sets_and_classes() -> None:
    pairs = [*labelled(8), LabelledPair("x", "c", "r", None, "x", "c")]
    weights = sampling_weights(pairs)
    assert weights.sum() == pytest.approx(1.0)
    for dataset in "abc":
        total = sum(w for w, p in zip(weights, pairs, strict=True) if p.dataset == dataset)
        assert total == pytest.approx(1 / 3)
    supported_a = sum(
        w for w, p in zip(weights, pairs, strict=True) if p.dataset == "a" and p.label == 1
    )
    assert supported_a == pytest.approx(1 / 6)


def test_config_is_checked() -> None:
    for bad in ({"max_steps": 0}, {"batch_size": True}, {"learning_rate": 0}, {"warmup": 1.0}):
        with pytest.raises(InvalidInputError):
            TrainConfig(**bad)  # type: ignore[arg-type]


def test_training_needs_both_classes(tmp_path: Path) -> None:
    pairs = [p for p in labelled(8) if p.label == 1]
    with pytest.raises(InvalidInputError, match="both supported and unsupported"):
        train_cross_encoder(pairs, tmp_path / "m", TrainConfig(model=str(tmp_path)))


def test_a_long_context_is_cut_to_the_chunk_that_covers_the_answer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    folder = write_checkpoint(tmp_path / "tiny", MNLI, "input")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    answer = "The mayor announced new cooling centres."
    assert training_premise(CONTEXT, answer, tokenizer, 64) == CONTEXT
    premise = training_premise(CONTEXT * 2, answer, tokenizer, 24)
    assert "mayor announced new cooling centres" in premise
    assert len(premise) < len(CONTEXT)


def test_train_save_load_and_score_deterministically(tmp_path: Path) -> None:
    """A few steps on a tiny BERT: the folder loads in the nli judge as a single support logit,
    and two loads score alike; the same seed trains the same weights."""
    pytest.importorskip("transformers")
    from rag_retrievers.evals.faithfulness.nli import NLIJudge

    base = write_checkpoint(tmp_path / "tiny", MNLI, "input")
    config = TrainConfig(model=str(base), max_steps=4, batch_size=4, max_length=64)
    record = train_cross_encoder(labelled(), tmp_path / "a", config, progress=False)
    assert record["pairs"] == {"a": {"supported": 8, "not": 8}, "b": {"supported": 8, "not": 8}}
    assert record["seconds"] >= 0
    saved = json.loads((tmp_path / "a" / "training.json").read_text())
    assert saved["config"]["max_steps"] == 4
    train_cross_encoder(labelled(), tmp_path / "b", config, progress=False)
    pairs = [(CONTEXT, s) for s in SUPPORTED + UNSUPPORTED] + [("", "x y z w")]
    first = NLIJudge(tmp_path / "a").judge_batch(pairs)
    again = NLIJudge(tmp_path / "a").judge_batch(pairs)
    same_seed = NLIJudge(tmp_path / "b").judge_batch(pairs)
    assert [r.score for r in first] == [r.score for r in again] == [r.score for r in same_seed]
    assert all(0.0 <= r.score <= 1.0 for r in first)
    assert first[-1].abstained == "empty context"
    judge = NLIJudge(tmp_path / "a")
    assert judge.single_logit
    assert judge.max_length == 64  # the judge cuts contexts as training did


def test_cli_trains_a_judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    base = write_checkpoint(tmp_path / "tiny", MNLI, "input")
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"context": p.context, "response": p.response, "label": p.label}) + "\n"
            for p in labelled(24)
        )
    )
    argv = ["eval", "faithfulness", "--pairs", str(path), "--train-judge", str(tmp_path / "m")]
    argv += ["--steps", "3", "--train-param", f"model={base}", "--train-param", "batch_size=4"]
    assert main([*argv, "-q"]) == 0
    out = capsys.readouterr().out
    assert "trained on 24 pairs" in out
    assert (tmp_path / "m" / "config.json").is_file()
    assert main(["eval", "faithfulness", "--pairs", str(path), "--judge", "nli", "--param",
                 f"model={tmp_path / 'm'}", "--json", "-q"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 24


@pytest.mark.slow
def test_minilm_cross_encoder_trains_a_few_steps(tmp_path: Path) -> None:
    """MiniLM itself, 3 steps of 4 pairs: the saved model scores as the judge reloads it."""
    pytest.importorskip("transformers")
    from rag_retrievers.evals.faithfulness.nli import NLIJudge

    config = TrainConfig(max_steps=3, batch_size=4, max_length=64)
    train_cross_encoder(labelled(), tmp_path / "m", config, progress=False)
    pairs = [(CONTEXT, s) for s in SUPPORTED[:2] + UNSUPPORTED[:2]]
    first = [r.score for r in NLIJudge(tmp_path / "m").judge_batch(pairs)]
    assert first == [r.score for r in NLIJudge(tmp_path / "m").judge_batch(pairs)]
