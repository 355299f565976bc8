"""The ColBERT index's fast search path against straightforward references (issue 21).

The fast path scores residual tokens without decoding them (``(q . c + q . r) / |c + r|``, one
matrix product per batch of candidates, a segmented max per row) and finds candidates with
array operations over all probed list entries. Checked here on small random data the tests make:
against :mod:`rag_retrievers.evals.bench.colbert_reference` (the search as it was before, which
decodes every token), and against MaxSim computed one document at a time on decoded vectors;
with filters, deletes, aliases, exact ties, empty documents, several segments, retraining and
tiny batch sizes (so every batch and cache boundary is crossed).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from rag_retrievers.evals.bench.colbert_reference import ReferenceSearch, decode

from rag_retrievers.index import multivector
from rag_retrievers.index.multivector import IndexSettings, MultiVectorIndex
from rag_retrievers.index.token_codecs import TokenCodec, _pack, _unpack, byte_table
from rag_retrievers.scoring.kmeans import train_centroids
from rag_retrievers.scoring.maxsim import maxsim

DIM = 24


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def documents(n: int, seed: int, empty_every: int = 0) -> list[np.ndarray]:
    """Documents of 0 to 40 tokens around a few shared topics (every ``empty_every``-th empty)."""
    rng = np.random.default_rng(seed)
    topics = unit(rng, 12)
    docs = []
    for i in range(n):
        if empty_every and i % empty_every == 0:
            docs.append(np.empty((0, DIM), dtype=np.float32))
            continue
        tokens = topics[rng.choice(12, size=rng.integers(1, 40))] + 0.4 * unit(rng, 1)
        docs.append((tokens / np.linalg.norm(tokens, axis=1, keepdims=True)).astype(np.float32))
    return docs


def queries(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit(rng, int(rng.integers(1, 9))) for _ in range(n)]


SETTINGS = [
    {"compression": "residual", "nbits": 2},
    {"compression": "residual", "nbits": 1, "pool_factor": 1},
    {"compression": "residual", "nbits": 4},
    {"compression": "fp16", "pool_factor": 1},
    {"compression": "int8"},
]


@pytest.fixture(params=[False, True], ids=["default-batches", "tiny-batches"])
def tiny_batches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """With tiny batches, candidates span many score batches and inverse-norm cache blocks."""
    if request.param:
        monkeypatch.setattr(multivector, "_SCORE_CHUNK_TOKENS", 37)
        monkeypatch.setattr(multivector, "_NORM_BLOCK", 11)
    return bool(request.param)


def build(options: dict[str, object], docs: list[np.ndarray], parts: int = 3) -> MultiVectorIndex:
    settings = IndexSettings(mode="candidates", ndocs=20, nprobe=2, n_centroids=16, **options)  # type: ignore[arg-type]
    index = MultiVectorIndex(DIM, settings)
    for part in np.array_split(np.arange(len(docs)), parts):  # several segments
        index.add_rows([docs[i] for i in part.tolist()])
    return index


def assert_same(
    got: list[tuple[np.ndarray, np.ndarray]], expected: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    for (rows, scores), (rows_e, scores_e) in zip(got, expected, strict=True):
        np.testing.assert_allclose(scores, scores_e, rtol=1e-5, atol=1e-6)
        assert rows.tolist() == rows_e.tolist()


@pytest.mark.parametrize("options", SETTINGS, ids=lambda o: "-".join(map(str, o.values())))
def test_candidates_and_scores_equal_the_reference(
    options: dict[str, object], tiny_batches: bool
) -> None:
    docs = documents(150, seed=1, empty_every=17)
    index = build(options, docs)
    reference = ReferenceSearch(index)
    allowed = index._live.copy()
    qs = queries(12, seed=2)
    for q in qs:
        assert index.candidates(q, allowed).tolist() == reference.candidates(q, allowed).tolist()
    assert_same(index.search(qs, 7), reference.search(qs, 7))


@pytest.mark.parametrize("options", SETTINGS[:1] + SETTINGS[3:4], ids=["residual", "fp16"])
def test_filters_deletes_and_aliases_equal_the_reference(
    options: dict[str, object], tiny_batches: bool
) -> None:
    docs = documents(120, seed=3, empty_every=13)
    index = build(options, docs)
    index.delete_rows([5, 6, 40, 77])
    alias = index.add_row_alias(41)  # the same tokens as row 41, under another row
    index.delete_rows([41])
    rng = np.random.default_rng(4)
    mask = rng.random(index.n_rows) < 0.5
    mask[alias] = True
    reference = ReferenceSearch(index)
    qs = queries(10, seed=5)
    for use in (None, mask):
        got, expected = index.search(qs, 6, use), reference.search(qs, 6, use)
        assert_same(got, expected)
        for rows, _ in got:
            assert not {5, 6, 40, 41, 77} & set(rows.tolist())
            if use is not None:
                assert use[rows].all()
    for mode in ("candidates", "exhaustive"):  # the alias's own tokens find it first
        own = index.row_vectors(alias)
        assert index.search([own], 1, mode=mode)[0][0].tolist() == [alias]  # type: ignore[arg-type]
    # a filter allowing fewer rows than k: every allowed row is scored, empty ones too
    few = np.zeros(index.n_rows, dtype=bool)
    few[[0, 2, 13, alias]] = True  # rows 0 and 13 are empty documents
    got, expected = index.search(qs[:3], 10, few), reference.search(qs[:3], 10, few)
    assert_same(got, expected)
    assert all(sorted(rows.tolist()) == [0, 2, 13, alias] for rows, _ in got)


@pytest.mark.parametrize("mode", ["exhaustive", "candidates"])
def test_scores_equal_maxsim_one_document_at_a_time(mode: str, tiny_batches: bool) -> None:
    docs = documents(80, seed=6, empty_every=9)
    index = build({"compression": "residual", "nbits": 2}, docs)
    qs = queries(5, seed=7)
    stored = [index.row_vectors(r) for r in range(index.n_rows)]  # decoded as stored
    for q, (rows, scores) in zip(qs, index.search(qs, 80, mode=mode), strict=True):  # type: ignore[arg-type]
        expected = [maxsim(q, stored[r]) for r in rows.tolist()]
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
        if mode == "exhaustive":
            order = sorted(range(len(stored)), key=lambda r: (-maxsim(q, stored[r]), r))
            assert rows.tolist() == order


def test_exact_ties_rank_by_row_and_empty_documents_score_zero(tiny_batches: bool) -> None:
    """Exactly representable vectors: tied documents tie exactly and come in row order."""
    e = np.eye(4, dtype=np.float32)
    docs = [e[[0]], e[[1, 2]], e[[0]], np.empty((0, 4), np.float32), e[[0, 1]], e[[3]], e[[0]]]
    settings = IndexSettings(
        compression="fp16", pool_factor=1, n_centroids=2, ndocs=3, mode="candidates"
    )
    index = MultiVectorIndex(4, settings)
    index.add_rows(docs[:4])
    index.add_rows(docs[4:])
    query = e[[0, 1]]
    for mode in ("candidates", "exhaustive"):
        ((rows, scores),) = index.search([query], 7, mode=mode)  # type: ignore[arg-type]
        assert rows.tolist() == [4, 0, 1, 2, 6, 3, 5][: len(rows)]
        assert scores.tolist() == [2.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0][: len(rows)]
    # candidate selection among tied rows is arbitrary (np.argpartition), as it was before
    assert_same(index.search([query], 3), ReferenceSearch(index).search([query], 3))


def test_norm_cache_follows_retraining(tiny_batches: bool) -> None:
    """New centroids re-encode every token: the inverse norms cached before are not reused."""
    docs = documents(200, seed=8)
    index = MultiVectorIndex(DIM, IndexSettings(mode="candidates", ndocs=15))
    index.add_rows(docs[:10])
    qs = queries(4, seed=9)
    index.search(qs, 3)  # fills the cache of the first segment
    index.add_rows(docs[10:])  # 4x growth: retrained
    assert_same(index.search(qs, 5), ReferenceSearch(index).search(qs, 5))


@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
@pytest.mark.parametrize("dim", [16, 20, 13])
def test_byte_table_decodes_as_unpacking(nbits: int, dim: int) -> None:
    rng = np.random.default_rng(nbits * dim)
    buckets = rng.integers(0, 2**nbits, size=(9, dim)).astype(np.uint8)
    weights = rng.normal(size=2**nbits).astype(np.float32)
    packed = _pack(buckets, nbits)
    table = byte_table(weights, nbits)
    decoded = table[packed].view(np.float32).reshape(len(packed), -1)[:, :dim]
    np.testing.assert_array_equal(decoded, weights[_unpack(packed, nbits, dim)])


@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
def test_decode_is_unchanged_bit_for_bit(nbits: int) -> None:
    rng = np.random.default_rng(nbits)
    vectors = unit(rng, 300, 20)
    centroids = train_centroids(vectors, 8)
    codes = (vectors @ centroids.T).argmax(axis=1)
    codec = TokenCodec("residual", 20, nbits, centroids).fit_residuals(vectors, codes)
    arrays = codec.encode(vectors, codes)
    np.testing.assert_array_equal(codec.decode(arrays, codes), decode(codec, arrays, codes))
    terms = codec.scoring_terms(arrays, codec.inverse_norms(arrays, codes))
    q = unit(rng, 3, 20)
    fast = (q @ terms.matrix.T + (q @ centroids.T)[:, codes]) * terms.scale
    np.testing.assert_allclose(fast, q @ decode(codec, arrays, codes).T, rtol=1e-5, atol=1e-6)


def test_alias_rows_keep_their_tokens_across_segments_and_saves(tmp_path: Path) -> None:
    """An alias row (an upsert of unchanged text) points at tokens of an earlier segment; its
    tokens are read in row order, not grouped by segment, when scored and when saved."""
    docs = documents(30, seed=10)
    index = build({"compression": "residual", "nbits": 2}, docs, parts=3)
    alias = index.add_row_alias(2)  # tokens in the first segment, after rows of the third
    index.delete_rows([2])
    before = [index.row_vectors(r) for r in range(index.n_rows) if index._live[r]]
    index.snapshot()(tmp_path, "tokens")
    reopened = MultiVectorIndex.read(tmp_path, "tokens", index.n_live)
    after = [reopened.row_vectors(r) for r in range(reopened.n_rows)]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    rows = np.flatnonzero(index._live)
    qs = queries(4, seed=11)
    np.testing.assert_allclose(
        index._exact(qs, rows), reopened._exact(qs, np.arange(len(rows))), rtol=1e-5, atol=1e-6
    )
    assert index.search([index.row_vectors(alias)], 1)[0][0].tolist() == [alias]


def test_concurrent_searches_fill_the_norm_cache_safely(monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches share the index under a read lock: several may fill (and complete) the inverse
    norm cache at once, and all get the same results as one search alone."""
    monkeypatch.setattr(multivector, "_NORM_BLOCK", 5)
    docs = documents(150, seed=12)
    qs = queries(16, seed=13)
    alone = build({"compression": "residual"}, docs).search(qs, 5)
    index = build({"compression": "residual"}, docs)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda q: index.search([q], 5)[0], qs))
        assert_same(results, alone)
        # exhaustive searches touch every block: several threads complete the caches at once
        every = list(pool.map(lambda q: index.search([q], 5, mode="exhaustive")[0], qs))
    assert all("done" not in s.cache for s in index._segments)
    assert_same(every, index.search(qs, 5, mode="exhaustive"))
