"""The NLI judge on tiny sequence-classification checkpoints the tests write (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rag_retrievers.evals.faithfulness.nli import against_indices, support_index

from rag_retrievers.errors import InvalidInputError

WORDS = (
    "the city of lyon recorded heat deaths in hospital admissions increased during wave mayor "
    "announced new cooling centres football team won league sky is blue not"
).split()


def write_checkpoint(folder: Path, id2label: dict[int, str], favour: str) -> Path:
    """A 1-layer BERT classifier whose bias makes ``favour`` win, with a word-level vocab."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        if favour == "input":  # a support logit that depends on the input, to see chunks differ
            model.classifier.weight.normal_(0, 1.0)
        else:
            index = next(i for i, label in id2label.items() if label == favour)
            model.classifier.bias[index] = 6.0
    model.save_pretrained(folder)
    return folder


MNLI = {0: "entailment", 1: "neutral", 2: "contradiction"}
CONTEXT = (
    "The city of Lyon recorded heat deaths. Hospital admissions increased during the heat wave. "
    "The mayor announced new cooling centres. The football team won the league. "
)


def test_label_mapping_from_config() -> None:
    assert support_index(MNLI) == 0
    assert support_index({0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}) == 2
    assert support_index({0: "hallucinated", 1: "consistent"}) == 1
    assert support_index({0: "inconsistent", 1: "consistent"}) == 1
    assert support_index({0: "LABEL_0", 1: "LABEL_1"}, "label_1") == 1
    assert against_indices({0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}) == [0]
    with pytest.raises(InvalidInputError, match="LABEL_0"):
        support_index({0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(InvalidInputError, match="not a label"):
        support_index(MNLI, "yes")


@pytest.mark.slow
def test_nli_judge_reads_labels_from_the_config(tmp_path: Path) -> None:
    from rag_retrievers.evals.faithfulness.nli import NLIJudge

    entails = NLIJudge(write_checkpoint(tmp_path / "a", MNLI, "entailment"))
    result = entails.judge(CONTEXT, "Hospital admissions increased. The mayor announced it.")
    assert result.score > 0.9
    assert len(result.claims) == 2
    assert result.claims[0].flags == ()

    reordered = {0: "CONTRADICTION", 1: "ENTAILMENT"}
    contradicts = NLIJudge(write_checkpoint(tmp_path / "b", reordered, "CONTRADICTION"))
    result = contradicts.judge(CONTEXT, "hospital admissions increased.")
    assert result.score < 0.1
    assert result.claims[0].flags[0].startswith("contradiction:")
    assert "ENTAILMENT" in contradicts.describe()


@pytest.mark.slow
def test_nli_chunks_long_contexts_and_is_deterministic(tmp_path: Path) -> None:
    from rag_retrievers.evals.faithfulness.nli import NLIJudge

    judge = NLIJudge(write_checkpoint(tmp_path / "m", MNLI, "input"), max_length=32)
    claim = "Hospital admissions increased."
    chunks = judge.chunks(CONTEXT * 3, claim)
    assert len(chunks) > 3
    for chunk in chunks:  # every chunk fits beside the claim, unless it is a single sentence
        n = len(judge.tokenizer(chunk, claim)["input_ids"])
        assert n <= 32 or "." not in chunk.rstrip(".")
    # neighbours overlap by one sentence
    assert chunks[1].startswith(chunks[0].split(". ")[-1])
    pairs = [(CONTEXT * 3, claim), (CONTEXT, "The sky is blue. Not the league."), ("", "x y z w")]
    first = judge.judge_batch(pairs)
    second = NLIJudge(tmp_path / "m", max_length=32).judge_batch(pairs)
    assert [r.score for r in first] == [r.score for r in second]
    assert first[2].abstained == "empty context"
    # a pair's score is its weakest claim's and a claim's is its best chunk's support
    # probability: the model's own figures, which JudgeResult's [0, 1] clamp left as they were
    assert len(first[1].claims) == 2
    assert first[1].score == min(c.score for c in first[1].claims)
    probs = judge._probabilities(chunks, [claim] * len(chunks))[:, judge.support]
    assert first[0].claims[0].score == pytest.approx(float(probs.max()))
    assert first[0].score == first[0].claims[0].score


def test_nli_needs_a_model() -> None:
    from rag_retrievers.evals.faithfulness.nli import NLIJudge

    with pytest.raises(InvalidInputError, match="model=PATH_OR_HUB_ID"):
        NLIJudge()
