"""SparseIndex: exact top-k against brute-force dense dot products, persistence, and top_k."""

from __future__ import annotations

import numpy as np
import pytest

from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.index.sparse import SparseIndex
from rag_retrievers.scoring.topk import top_k

VOCAB = [f"t{i}" for i in range(40)]


def _random_rows(
    rng: np.random.Generator, n: int, vocab: list[str] = VOCAB
) -> list[dict[str, float]]:
    """Rows of 0-6 terms with small integer values: sums are exact in float32, so ties are real
    ties and the expected order is exact."""
    rows = []
    for _ in range(n):
        size = int(rng.integers(0, 7))
        terms = rng.choice(len(vocab), size=size, replace=False)
        rows.append({vocab[t]: float(rng.integers(1, 4)) for t in terms})
    return rows


def _random_query(rng: np.random.Generator, vocab: list[str] = VOCAB) -> dict[str, float]:
    size = int(rng.integers(1, 6))
    terms = rng.choice(len(vocab), size=size, replace=False)
    query = {vocab[t]: float(rng.integers(1, 3)) for t in terms}
    if rng.random() < 0.3:
        query["never-seen"] = 5.0
    return query


class Dense:
    """The brute-force reference: a dense matrix, a live mask, dot products, and a sort by
    (-score, row)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.live: list[bool] = []

    def add(self, rows: list[dict[str, float]]) -> None:
        self.rows.extend(rows)
        self.live.extend([True] * len(rows))

    def delete(self, rows: list[int]) -> None:
        for r in rows:
            self.live[r] = False

    def matrix(self, vocab: list[str]) -> np.ndarray:
        col = {t: i for i, t in enumerate(vocab)}
        m = np.zeros((len(self.rows), len(vocab)))
        for r, row in enumerate(self.rows):
            for t, v in row.items():
                m[r, col[t]] = v
        return m

    def scores(self, query: dict[str, float], vocab: list[str]) -> np.ndarray:
        q = np.array([query.get(t, 0.0) for t in vocab])
        return np.where(self.live, self.matrix(vocab) @ q, 0.0) if self.rows else np.zeros(0)

    def top(
        self, query: dict[str, float], k: int, vocab: list[str], mask=None
    ) -> list[tuple[int, float]]:
        scores = self.scores(query, vocab)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        ranked = sorted((-s, r) for r, s in enumerate(scores) if s > 0)
        return [(r, -s) for s, r in ranked[:k]]

    def df(self, vocab: list[str]) -> np.ndarray:
        m = self.matrix(vocab)[np.asarray(self.live, dtype=bool)]
        return (m != 0).sum(axis=0)


def _result(
    index: SparseIndex, query: dict[str, float], k: int, mask=None
) -> list[tuple[int, float]]:
    rows, scores = index.search(query, k, mask)
    assert rows.dtype.kind == "i"
    assert scores.dtype == index.dtype
    return list(zip(rows.tolist(), scores.tolist(), strict=True))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_top_k_matches_brute_force_over_many_segments_and_deletes(dtype: str) -> None:
    rng = np.random.default_rng(7)
    index, dense = SparseIndex(dtype=dtype), Dense()
    # batch sizes that both merge segments (small after large) and keep them apart
    for size in (50, 3, 40, 1, 1, 0, 25, 200, 7, 2, 60):
        rows = _random_rows(rng, size)
        assigned = index.add_rows(rows)
        assert assigned.tolist() == list(range(len(dense.rows), len(dense.rows) + size))
        dense.add(rows)
        if dense.rows and rng.random() < 0.6:
            victims = rng.choice(
                len(dense.rows), size=min(5, len(dense.rows)), replace=False
            ).tolist()
            index.delete_rows(victims)
            dense.delete(victims)
        np.testing.assert_array_equal(index.document_frequency, dense.df(index.terms))
        assert index.n_live == sum(dense.live)
        for _ in range(15):
            query = _random_query(rng)
            for k in (1, 3, 10, 1000):
                assert _result(index, query, k) == dense.top(query, k, index.terms), (query, k)
    assert len(index._segments) > 1  # several segments really were searched
    assert index.n_rows == len(dense.rows)


def test_full_score_vector_matches_dense_dot_products() -> None:
    rng = np.random.default_rng(1)
    index, dense = SparseIndex(dtype="float64"), Dense()
    for size in (30, 10, 5, 100):
        rows = [
            {t: float(v) * rng.random() for t, v in row.items()} for row in _random_rows(rng, size)
        ]
        index.add_rows(rows)
        dense.add(rows)
    index.delete_rows([0, 31, 44, 139])
    dense.delete([0, 31, 44, 139])
    for _ in range(20):
        query = {t: w * rng.random() for t, w in _random_query(rng).items()}
        ids, weights = index.query_vector(query)
        np.testing.assert_allclose(
            index.scores(ids, weights), dense.scores(query, index.terms), rtol=1e-12
        )
        # random real values: no ties, so the ranking is the brute-force one
        assert [r for r, _ in _result(index, query, 10)] == [
            r for r, _ in dense.top(query, 10, index.terms)
        ]


def test_doc_weighting_is_applied_with_live_statistics() -> None:
    """The doc weighting sees each posting's raw value, its row length and the mean length over
    live rows, and is recomputed after deletes and adds."""

    def weighting(raw: np.ndarray, doc_len: np.ndarray, avg: float) -> np.ndarray:
        return raw / (raw + doc_len / avg)

    rng = np.random.default_rng(3)
    index, dense = SparseIndex(weighting, dtype="float64"), Dense()

    def expected(query: dict[str, float]) -> np.ndarray:
        raw = dense.matrix(index.terms)
        live = np.asarray(dense.live, dtype=bool)
        lengths = raw.sum(axis=1)
        avg = lengths[live].mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            weighted = np.where(raw > 0, raw / (raw + lengths[:, None] / avg), 0.0)
        q = np.array([query.get(t, 0.0) for t in index.terms])
        return np.where(live, weighted @ q, 0.0)

    for step in range(4):
        rows = _random_rows(rng, 40)
        index.add_rows(rows)
        dense.add(rows)
        if step:
            victims = rng.choice(len(dense.rows), size=6, replace=False).tolist()
            index.delete_rows(victims)
            dense.delete(victims)
        np.testing.assert_allclose(index.row_lengths(), dense.matrix(index.terms).sum(axis=1))
        live_lengths = dense.matrix(index.terms).sum(axis=1)[np.asarray(dense.live)]
        assert index.mean_length == pytest.approx(live_lengths.mean())
        for _ in range(10):
            query = _random_query(rng)
            ids, weights = index.query_vector(query)
            np.testing.assert_allclose(index.scores(ids, weights), expected(query), rtol=1e-12)


def test_mask_restricts_candidates() -> None:
    rng = np.random.default_rng(11)
    index, dense = SparseIndex(), Dense()
    for size in (60, 20, 20):
        rows = _random_rows(rng, size)
        index.add_rows(rows)
        dense.add(rows)
    index.delete_rows([1, 2, 3])
    dense.delete([1, 2, 3])
    for _ in range(20):
        mask = rng.random(index.n_rows) < 0.4
        query = _random_query(rng)
        got = _result(index, query, 7, mask)
        assert got == dense.top(query, 7, index.terms, mask)
        assert all(mask[r] for r, _ in got)
    nothing = np.zeros(index.n_rows, dtype=bool)
    assert _result(index, {"t1": 1.0, "t2": 1.0}, 5, nothing) == []


def test_ties_are_broken_by_row_across_segments() -> None:
    index = SparseIndex()
    index.add_rows([{"x": 1.0}] * 10)  # rows 0-9
    index.add_rows([{"x": 2.0}, {"x": 1.0}])  # rows 10, 11: a separate, smaller segment
    index.add_rows([{"y": 1.0}, {"x": 1.0}])  # rows 12, 13
    assert _result(index, {"x": 1.0}, 4) == [(10, 2.0), (0, 1.0), (1, 1.0), (2, 1.0)]
    index.delete_rows([0, 2])
    assert _result(index, {"x": 1.0}, 4) == [(10, 2.0), (1, 1.0), (3, 1.0), (4, 1.0)]
    rows, _ = index.search({"x": 1.0}, k=100)
    assert rows.tolist() == [10, 1, 3, 4, 5, 6, 7, 8, 9, 11, 13]


def test_k_larger_than_matches_returns_only_positive_rows() -> None:
    index = SparseIndex()
    index.add_rows([{"a": 1.0}, {"b": 1.0}, {"a": 2.0, "b": 1.0}, {}])
    assert _result(index, {"a": 1.0}, 50) == [(2, 2.0), (0, 1.0)]
    # a zero query weight contributes nothing and is not a match
    assert _result(index, {"a": 0.0, "b": 1.0}, 50) == [(1, 1.0), (2, 1.0)]


def test_empty_index_and_unknown_terms() -> None:
    index = SparseIndex()
    assert index.n_rows == index.n_live == 0
    assert index.mean_length == 0.0
    assert _result(index, {"a": 1.0}, 5) == []
    index.add_rows([])
    assert _result(index, {"a": 1.0}, 5) == []

    index.add_rows([{"a": 1.0}, {"b": 3.0}])
    assert _result(index, {"zzz": 1.0}, 5) == []
    ids, weights = index.query_vector({"zzz": 1.0, "b": 2.0, "a": 0.0})
    assert ids.tolist() == [index.term_ids["b"]]
    assert weights.tolist() == [2.0]
    assert _result(index, {"zzz": 10.0, "b": 1.0}, 5) == [(1, 3.0)]

    index.delete_rows([0, 1])
    assert index.n_live == 0
    assert index.mean_length == 0.0
    assert _result(index, {"a": 1.0, "b": 1.0}, 5) == []


def test_terms_first_seen_in_a_later_segment_are_searchable() -> None:
    index = SparseIndex()
    index.add_rows([{"old": 1.0}] * 20)
    index.add_rows([{"new": 2.0, "old": 1.0}])  # too small to merge into the first segment
    assert len(index._segments) == 2
    assert _result(index, {"new": 1.0}, 3) == [(20, 2.0)]
    assert _result(index, {"new": 1.0, "old": 1.0}, 2) == [(20, 3.0), (0, 1.0)]


def test_document_frequency_after_deletes() -> None:
    index = SparseIndex()
    index.add_rows([{"a": 1.0, "b": 2.0}, {"a": 3.0}, {"b": 1.0}])
    assert index.document_frequency.tolist() == [2, 2]
    index.delete_rows([0])
    assert index.document_frequency.tolist() == [1, 1]
    index.delete_rows([0])  # already deleted: no change
    assert index.document_frequency.tolist() == [1, 1]


def test_deleting_the_same_row_twice_in_one_call_counts_it_once() -> None:
    index = SparseIndex()
    index.add_rows([{"a": 1.0, "b": 2.0}, {"a": 3.0}, {"b": 1.0}])
    index.delete_rows([0, 0])
    assert index.n_live == 2
    assert index.document_frequency.tolist() == [1, 1]


def test_bad_dtype_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="dtype"):
        SparseIndex(dtype="float16")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_write_read_round_trip_compacts_deleted_rows(tmp_path, dtype: str) -> None:
    rng = np.random.default_rng(5)
    index = SparseIndex(dtype=dtype)
    for size in (40, 15, 5):
        index.add_rows(_random_rows(rng, size))
    deleted = [0, 7, 41, 59]
    index.delete_rows(deleted)
    live = [r for r in range(index.n_rows) if r not in deleted]

    index.write(tmp_path, prefix="idx")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "idx_data.npy",
        "idx_indices.npy",
        "idx_indptr.npy",
        "idx_terms.json",
    ]
    restored = SparseIndex.read(tmp_path, n_rows=len(live), prefix="idx", dtype=dtype)
    assert restored.terms == index.terms
    assert restored.n_rows == restored.n_live == len(live)
    assert restored.dtype == index.dtype
    np.testing.assert_array_equal(restored.document_frequency, index.document_frequency)
    assert restored.mean_length == pytest.approx(index.mean_length)
    for _ in range(30):
        query = _random_query(rng)
        before = [(live.index(r), s) for r, s in _result(index, query, 10)]
        assert _result(restored, query, 10) == before


def test_read_of_damaged_files_raises_corrupt(tmp_path) -> None:
    index = SparseIndex()
    index.add_rows([{"a": 1.0}, {"b": 1.0}, {"a": 1.0, "c": 2.0}])
    index.write(tmp_path)
    with pytest.raises(CorruptCollectionError):
        SparseIndex.read(tmp_path, n_rows=2)  # row indices beyond the declared rows
    (tmp_path / "sparse_indptr.npy").write_bytes(b"not an npy file")
    with pytest.raises(CorruptCollectionError):
        SparseIndex.read(tmp_path, n_rows=3)
    (tmp_path / "sparse_indptr.npy").unlink()
    with pytest.raises(CorruptCollectionError):
        SparseIndex.read(tmp_path, n_rows=3)


# -- top_k, by hand -------------------------------------------------------------------------------

SCORES = np.array([1.0, 3.0, 3.0, 0.0, 2.0, 3.0, -1.0, 2.0])
# positives by (-score, index): 1 (3.0), 2 (3.0), 5 (3.0), 4 (2.0), 7 (2.0), 0 (1.0)


@pytest.mark.parametrize(
    ("k", "rows"),
    [
        (1, [1]),
        (2, [1, 2]),
        (3, [1, 2, 5]),
        (4, [1, 2, 5, 4]),
        (5, [1, 2, 5, 4, 7]),
        (6, [1, 2, 5, 4, 7, 0]),
        (100, [1, 2, 5, 4, 7, 0]),  # never the zero or the negative score
    ],
)
def test_top_k_by_hand(k: int, rows: list[int]) -> None:
    got_rows, got_scores = top_k(SCORES, k)
    assert got_rows.tolist() == rows
    assert got_scores.tolist() == SCORES[rows].tolist()


def test_top_k_with_mask_by_hand() -> None:
    mask = np.array([True, False, True, True, False, True, True, True])
    # left: 0 (1.0), 2 (3.0), 5 (3.0), 7 (2.0)
    rows, scores = top_k(SCORES, 3, mask)
    assert rows.tolist() == [2, 5, 7]
    assert scores.tolist() == [3.0, 3.0, 2.0]
    assert SCORES.tolist() == [1.0, 3.0, 3.0, 0.0, 2.0, 3.0, -1.0, 2.0]  # input not mutated


def test_top_k_large_tie_at_the_cut() -> None:
    scores = np.array([5.0] + [1.0] * 50 + [4.0])
    rows, _ = top_k(scores, 4)
    assert rows.tolist() == [0, 51, 1, 2]


def test_top_k_nothing_positive() -> None:
    rows, scores = top_k(np.array([0.0, -2.0, 0.0]), 2)
    assert rows.tolist() == []
    assert scores.tolist() == []
    rows, scores = top_k(np.zeros(0), 3)
    assert rows.tolist() == []
    assert scores.tolist() == []


def test_negative_query_weights_still_return_the_rows_they_touch() -> None:
    index = SparseIndex()
    index.add_rows([{"a": 1.0, "b": 1.0}, {"b": 2.0}, {"c": 1.0}])
    rows, scores = index.search({"a": 1.0, "b": -1.0}, k=5)
    # row 0: 1 - 1 = 0, row 1: -2; row 2 shares no term and is not returned
    assert rows.tolist() == [0, 1]
    assert scores.tolist() == [0.0, -2.0]


def test_negative_weights_skip_deleted_and_masked_rows() -> None:
    index = SparseIndex()
    index.add_rows([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}])
    index.delete_rows([0])
    rows, _ = index.search({"a": -1.0}, k=5, mask=np.array([True, True, False]))
    assert rows.tolist() == [1]


def test_okapi_with_a_negative_mean_idf_matches_rank_bm25() -> None:
    rank_bm25 = pytest.importorskip("rank_bm25")  # the test extra

    from rag_retrievers import BM25, Document

    texts = ["apple pear", "apple pear plum", "apple pear", "apple pear fig"]
    bm25 = BM25(variant="okapi", k1=1.5, b=0.75, dtype="float64")
    bm25.add([Document(id=str(i), text=t) for i, t in enumerate(texts)])
    oracle = rank_bm25.BM25Okapi(bm25.analyzer.analyze_many(texts), k1=1.5, b=0.75)
    assert oracle.average_idf < 0
    hits = bm25.search("apple", k=10)
    assert len(hits) == 4
    expected = oracle.get_scores(["appl"])
    assert {h.id: h.score for h in hits} == pytest.approx(
        {str(i): s for i, s in enumerate(expected)}, abs=1e-9
    )


def test_searches_right_after_a_write_equal_the_reweighted_index() -> None:
    """After a write, searches weight only their own postings (the mean length changed); once
    that adds up to the index's size the whole index is reweighted. Both give identical scores."""
    from rag_retrievers import BM25

    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{w}" for w in rng.integers(0, 50, size=12)) for _ in range(300)]
    bm25 = BM25(variant="okapi")  # okapi: negative idf, so signed scores are exercised too
    bm25.add([{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    queries = ["w1 w2 w3", "w0", "w7 w7 w49", "w3 w11 w20 w33"]
    for step, query in enumerate(queries):
        bm25.add([{"id": f"n{step}", "text": "w1 w5 w5 w9"}])
        bm25.delete([f"d{step}"])
        fresh = [(h.id, h.score) for h in bm25.search(query, k=20)]
        assert bm25._index._segments[0].scored is None  # weighted per query so far
        searches = 0
        while bm25._index._segments[0].scored is None:  # until the weighting adds up
            bm25.search("w1 w2 w3 w4 w5 w6", k=1)
            searches += 1
        assert 5 < searches < 100  # weighting per query until it cost about a full reweight
        assert [(h.id, h.score) for h in bm25.search(query, k=20)] == fresh
