"""ColBERT checkpoints in both formats, written by the tests with tiny random weights.

Each test writes a 2-layer BERT (hidden size 16) with a 40-word vocab.txt, and the projection in
the format's own files: PyLate (``modules.json`` + ``1_Dense/``) or Stanford (``HF_ColBERT``,
``linear.weight`` next to ``bert.*`` in one weight file, ``artifact.metadata``). The expected
scores are computed by hand from the raw weights: token ids laid out as ColBERT lays them out
(marker after ``[CLS]``, queries padded with ``[MASK]``, punctuation dropped from documents), the
reference ``BertModel`` run on them, the projection applied in numpy, rows normalised, MaxSim.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers")

from rag_retrievers.encoders.colbert import ColBERTEncoder
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.scoring.maxsim import maxsim

SPECIAL = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = [".", ",", "!", "?"]
WORDS = (
    "the a of and in star stars galaxy light bread dough yeast rise enzyme energy cell gene "
    "dna edit tennis set match goal runner pace heat onion sweet brown neutron explosion"
).split()
VOCAB = SPECIAL + PUNCTUATION + WORDS
IDS = {token: i for i, token in enumerate(VOCAB)}
QUERY_LENGTH, DOCUMENT_LENGTH = 8, 12


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_bert(folder: Path, seed: int) -> Any:
    """A tiny BertModel and its tokenizer in ``folder``; returns the model (the reference)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    BertTokenizer.from_pretrained(folder).save_pretrained(folder)  # reads vocab.txt
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    model = BertModel(config).eval()
    return model


def write_pylate(folder: Path, seed: int = 0, *, bias: bool = True) -> tuple[Any, np.ndarray, Any]:
    from safetensors.numpy import save_file

    model = write_bert(folder, seed)
    model.save_pretrained(folder)
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(6, 16)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32) if bias else None
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": DOCUMENT_LENGTH - 1, "do_lower_case": False}),
        encoding="utf-8",
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "query_prefix": "[unused0]",
                "document_prefix": "[unused1]",
                "query_length": QUERY_LENGTH,
                "document_length": DOCUMENT_LENGTH,
                "do_query_expansion": True,
                "attend_to_expansion_tokens": False,
                "skiplist_words": PUNCTUATION,
                "similarity_fn_name": "MaxSim",
            }
        ),
        encoding="utf-8",
    )
    dense = folder / "1_Dense"
    dense.mkdir()
    (dense / "config.json").write_text(
        json.dumps(
            {
                "in_features": 16,
                "out_features": 6,
                "bias": bias,
                "activation_function": "torch.nn.modules.linear.Identity",
            }
        ),
        encoding="utf-8",
    )
    tensors = {"linear.weight": weight}
    if b is not None:
        tensors["linear.bias"] = b
    save_file(tensors, str(dense / "model.safetensors"))
    return model, weight, b


def write_stanford(folder: Path, seed: int = 1) -> tuple[Any, np.ndarray]:
    """BERT weights under ``bert.``, ``linear.weight`` beside them, as colbert-ir saves them."""
    from safetensors.numpy import save_file

    model = write_bert(folder, seed)
    model.config.architectures = ["HF_ColBERT"]
    model.config.save_pretrained(folder)
    weight = np.random.default_rng(seed).normal(size=(5, 16)).astype(np.float32)
    state = {f"bert.{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}
    state["linear.weight"] = weight
    save_file(state, str(folder / "model.safetensors"))
    metadata = {
        "query_maxlen": QUERY_LENGTH,
        "doc_maxlen": DOCUMENT_LENGTH,
        "dim": 5,
        "similarity": "cosine",
        "attend_to_mask_tokens": False,
        "mask_punctuation": True,
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
    }
    (folder / "artifact.metadata").write_text(json.dumps(metadata), encoding="utf-8")
    return model, weight


def by_hand(
    model: Any,
    weight: np.ndarray,
    bias: np.ndarray | None,
    words: list[str],
    kind: str,
) -> np.ndarray:
    """Token vectors of ``words`` computed from the raw weights, ColBERT's way."""
    import torch

    marker = "[unused0]" if kind == "query" else "[unused1]"
    tokens = ["[CLS]", marker, *words, "[SEP]"]
    attention = [1] * len(tokens)
    if kind == "query":  # augmentation: [MASK] up to the fixed length, not attended
        pad = QUERY_LENGTH - len(tokens)
        tokens, attention = tokens + ["[MASK]"] * pad, attention + [0] * pad
    ids = torch.tensor([[IDS[t] for t in tokens]])
    with torch.no_grad():
        hidden = (
            model(
                input_ids=ids,
                attention_mask=torch.tensor([attention]),
                token_type_ids=torch.zeros_like(ids),
            )
            .last_hidden_state[0]
            .numpy()
        )
    vectors = hidden @ weight.T + (0 if bias is None else bias)
    if kind == "document":
        vectors = vectors[[t not in PUNCTUATION for t in tokens]]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


QUERY = "neutron star explosion ?"
DOCUMENTS = ["the neutron star , a galaxy of light .", "bread dough and yeast rise !"]


@pytest.mark.parametrize("fmt", ["pylate", "stanford"])
def test_checkpoint_scores_as_computed_by_hand(tmp_path: Path, fmt: str) -> None:
    if fmt == "pylate":
        model, weight, bias = write_pylate(tmp_path / "m")
    else:
        (model, weight), bias = write_stanford(tmp_path / "m"), None
    encoder = ColBERTEncoder(str(tmp_path / "m"))
    assert encoder.settings.format == fmt
    assert not encoder.stand_in
    assert encoder.dimension == weight.shape[0]

    query = encoder.encode_queries([QUERY])[0]
    expected_query = by_hand(model, weight, bias, QUERY.split(), "query")
    assert query.shape == (QUERY_LENGTH, weight.shape[0])
    np.testing.assert_allclose(query, expected_query, rtol=1e-4, atol=1e-5)
    for text in DOCUMENTS:
        document = encoder.encode_documents([text])[0]
        expected = by_hand(model, weight, bias, text.split(), "document")
        np.testing.assert_allclose(document, expected, rtol=1e-4, atol=1e-5)
        assert maxsim(query, document) == pytest.approx(maxsim(expected_query, expected), 1e-5)


def test_batches_equal_single_texts(tmp_path: Path) -> None:
    write_pylate(tmp_path / "m")
    encoder = ColBERTEncoder(str(tmp_path / "m"), batch_size=2)
    texts = [*DOCUMENTS, "tennis", "the runner and a steady pace in the heat of the match"]
    together = encoder.encode_documents(texts)
    for text, vectors in zip(texts, together, strict=True):
        np.testing.assert_allclose(vectors, encoder.encode_documents([text])[0], atol=1e-5)


def test_long_texts_are_truncated_to_the_model_lengths(tmp_path: Path) -> None:
    write_stanford(tmp_path / "m")
    encoder = ColBERTEncoder(str(tmp_path / "m"))
    long = " ".join(WORDS)
    assert len(encoder.encode_queries([long])[0]) == QUERY_LENGTH
    assert len(encoder.encode_documents([long])[0]) == DOCUMENT_LENGTH
    shorter = ColBERTEncoder(str(tmp_path / "m"), document_length=6)
    assert len(shorter.encode_documents([long])[0]) == 6


def test_identity_tells_checkpoints_apart(tmp_path: Path) -> None:
    write_pylate(tmp_path / "a", seed=0)
    write_pylate(tmp_path / "b", seed=5)
    a, b = ColBERTEncoder(str(tmp_path / "a")), ColBERTEncoder(str(tmp_path / "b"))
    assert a.identity()["weights"]["sha256"] != b.identity()["weights"]["sha256"]
    assert a.identity()["format"] == "pylate"


def test_a_marker_missing_from_the_vocabulary_is_refused(tmp_path: Path) -> None:
    write_pylate(tmp_path / "m")
    config = tmp_path / "m" / "config_sentence_transformers.json"
    settings = json.loads(config.read_text(encoding="utf-8"))
    config.write_text(json.dumps({**settings, "query_prefix": "[Q] "}), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"\[Q\]"):
        ColBERTEncoder(str(tmp_path / "m"))


def test_a_plain_transformer_is_a_labelled_stand_in(tmp_path: Path) -> None:
    model = write_bert(tmp_path / "m", seed=3)
    model.save_pretrained(tmp_path / "m")
    encoder = ColBERTEncoder(str(tmp_path / "m"))
    assert encoder.stand_in
    assert "stand-in" in repr(encoder)
    vectors = encoder.encode_queries(["the star ."])[0]
    assert len(vectors) == 5  # [CLS] the star . [SEP]: no marker, no expansion
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
