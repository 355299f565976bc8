"""Approximate learned-sparse search without a model: the build steps (scoring/blocks.py) on
hand-computed inputs, the block index against the exact index on random vectors, and the lazy
upkeep (tail, deletes, filters, rebuilds, persistence) of ApproximateIndex."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.index import sparse_approx
from rag_retrievers.index.sparse import SparseIndex
from rag_retrievers.index.sparse_approx import ApproximateIndex
from rag_retrievers.index.sparse_blocks import ApproximateSearch, BlockIndex
from rag_retrievers.scoring.blocks import (
    block_summaries,
    cluster_lists,
    prune_columns,
    ranges,
    segment_sums,
    sketch,
    top_per_row,
)

# -- the build steps, by hand -----------------------------------------------------------------


def test_ranges_and_segment_sums() -> None:
    assert ranges(np.array([3, 7]), np.array([2, 1])).tolist() == [3, 4, 7]
    assert ranges(np.array([1]), np.array([0])).tolist() == []
    assert segment_sums(np.array([1, 2, 3]), np.array([0, 0, 3, 3])).tolist() == [0, 6, 0]


def test_prune_columns_keeps_the_largest_per_column_in_row_order() -> None:
    m = sp.csc_matrix(np.array([[1.0, 9.0], [5.0, 0.0], [3.0, 2.0], [4.0, 1.0]]))
    pruned = prune_columns(m, 2)
    assert pruned.toarray().tolist() == [[0, 9], [5, 0], [0, 2], [4, 0]]
    assert pruned.indices.tolist() == [1, 3, 0, 2]  # rows ascending within a column
    assert prune_columns(m, 10).toarray().tolist() == m.toarray().tolist()


def test_top_per_row_cuts_each_row() -> None:
    m = sp.csr_matrix(np.array([[1.0, 4.0, 2.0, 3.0], [0.0, 0.0, 7.0, 0.0]]))
    assert top_per_row(m, 2).toarray().tolist() == [[0, 4, 0, 3], [0, 0, 7, 0]]


def test_summaries_are_term_maxima_quantised_up_and_energy_pruned() -> None:
    # block 0: rows 0 and 1; block 1: row 2
    v = sp.csr_matrix(np.array([[8.0, 1.0, 0.0, 1.0], [2.0, 3.0, 0.0, 0.0], [0.0, 0.0, 5.0, 5.0]]))
    starts, terms, levels, scales = block_summaries(
        v, np.array([0, 1, 2]), np.array([0, 2, 3]), energy=1.0
    )
    assert starts.tolist() == [0, 3, 5]
    assert terms.tolist() == [0, 1, 3, 2, 3]
    values = levels.astype(np.float64) * np.repeat(scales, np.diff(starts))
    maxima = np.array([8.0, 3.0, 1.0, 5.0, 5.0])
    assert (values >= maxima - 1e-5).all()  # rounded up: never below the maximum
    assert values == pytest.approx(maxima, abs=8.0 / 255)
    # energy 0.7 of block 0's mass (12): 8 alone holds 2/3, so the 3 is kept, the 1 is not
    starts, terms, _, _ = block_summaries(v, np.array([0, 1, 2]), np.array([0, 2, 3]), 0.7)
    assert terms[starts[0] : starts[1]].tolist() == [0, 1]
    # a block keeps the term of its own posting list whatever its share (block 0: term 3)
    starts, terms, _, _ = block_summaries(
        v, np.array([0, 1, 2]), np.array([0, 2, 3]), 0.7, block_terms=np.array([3, 2])
    )
    assert terms[starts[0] : starts[1]].tolist() == [0, 1, 3]
    assert terms[starts[1] : starts[2]].tolist() == [2, 3]


def test_near_duplicates_share_a_block() -> None:
    rng = np.random.default_rng(0)
    base = sp.random(6, 50, density=0.2, random_state=1, format="csr", dtype=np.float32)
    base.data += 0.5
    copies = sp.vstack([base] * 8, format="csr")  # row r is a copy of base row r % 6
    copies.data *= rng.uniform(0.97, 1.03, copies.nnz).astype(np.float32)
    postings = sp.csc_matrix(np.ones((48, 1), dtype=np.float32))  # one list holding every row
    rows, list_blocks, block_starts = cluster_lists(
        postings, sketch(copies, 32), fraction=6 / 48, min_size=1
    )
    assert sorted(rows.tolist()) == list(range(48))
    blocks = [set(rows[a:b] % 6) for a, b in itertools.pairwise(block_starts)]
    assert list_blocks.tolist() == [0, len(blocks)]
    # a copy goes with its siblings: no source is split over more blocks than there are copies
    pure = sum(len(b) == 1 for b in blocks)
    assert pure >= len(blocks) - 2


# -- the block index against exact search -----------------------------------------------------


def random_index(n: int = 3000, width: int = 400, seed: int = 0) -> SparseIndex:
    """Rows of ~30 Zipf-distributed terms with gamma weights, 20 near-duplicate families."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, width + 1)
    p /= p.sum()
    families = []
    for _ in range(n // 20):
        terms = np.unique(rng.choice(width, 30, p=p))
        families.append((terms, rng.gamma(1.0, 1.0, len(terms))))
    rows = []
    for i in range(n):
        terms, values = families[i % len(families)]
        keep = rng.random(len(terms)) > 0.1
        rows.append({f"t{t}": float(v) for t, v in zip(terms[keep], values[keep], strict=True)})
    index = SparseIndex()
    index.add_rows(rows)
    return index


def random_queries(n: int, width: int = 400, seed: int = 1) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, width + 1)
    p /= p.sum()
    return [
        {f"t{t}": float(rng.gamma(1.0, 1.0)) for t in np.unique(rng.choice(width, 15, p=p))}
        for _ in range(n)
    ]


def recall(index: SparseIndex, approximate: ApproximateIndex, queries: list, k: int = 10) -> float:
    shares = []
    for q in queries:
        exact = index.search(q, k)[0]
        found = approximate.search(q, k, None, index.n_live)
        assert found is not None
        shares.append(len(set(exact) & set(found[0])) / len(exact))
    return float(np.mean(shares))


def test_nothing_pruned_or_skipped_is_exact_search() -> None:
    index = random_index()
    settings = ApproximateSearch(
        postings=10**6, query_terms=1000, heap_factor=1e-9, min_documents=0
    )
    approximate = ApproximateIndex(index, settings)
    for q in random_queries(20):
        rows, scores = index.search(q, 10)
        found = approximate.search(q, 10, None, index.n_live)
        assert found is not None
        assert found[0].tolist() == rows.tolist()
        assert found[1] == pytest.approx(scores, rel=1e-5)


def test_default_settings_find_the_exact_top_10() -> None:
    index = random_index()
    settings = ApproximateSearch(postings=300, min_documents=0)
    approximate = ApproximateIndex(index, settings)
    assert recall(index, approximate, random_queries(40)) >= 0.95
    blocks = approximate.blocks
    assert blocks is not None
    assert len(blocks.rows) < index.raw_csr(0, index.n_rows).nnz  # lists were pruned


def test_scores_are_exact_and_ranked() -> None:
    index = random_index()
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    forward = index.raw_csr(0, index.n_rows).toarray()
    for q in random_queries(10):
        found = approximate.search(q, 10, None, index.n_live)
        assert found is not None
        rows, scores = found
        dense = np.zeros(forward.shape[1], dtype=np.float32)
        ids, values = index.query_vector(q)
        dense[ids] = values
        assert scores == pytest.approx(forward[rows] @ dense, rel=1e-5)
        assert list(scores) == sorted(scores, reverse=True)


def test_small_collections_and_negative_weights_go_to_the_exact_index() -> None:
    index = random_index(200)
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=1000))
    assert approximate.search({"t1": 1.0}, 5, None, index.n_live) is None
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    assert approximate.search({"t1": 1.0, "t2": -0.5}, 5, None, index.n_live) is None
    rows, scores = approximate.search({"never seen": 1.0}, 5, None, index.n_live)  # type: ignore[misc]
    assert len(rows) == len(scores) == 0


def test_fewer_than_k_found_falls_back() -> None:
    index = SparseIndex()
    index.add_rows([{"a": 1.0}, {"a": 2.0, "b": 1.0}, {"c": 1.0}])
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    assert approximate.search({"a": 1.0}, 5, None, 3) is None  # 2 rows match: exact answers
    found = approximate.search({"a": 1.0}, 2, None, 3)
    assert found is not None
    assert found[0].tolist() == [1, 0]


# -- upkeep: tail, deletes, filters, rebuilds --------------------------------------------------


def test_rows_added_after_the_build_are_found() -> None:
    index = random_index(2000)
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    approximate.prepare()
    built = approximate.blocks
    index.add_rows([{"t3": 50.0, "t5": 50.0}])  # beats every row on these terms
    found = approximate.search({"t3": 1.0, "t5": 1.0}, 3, None, index.n_live)
    assert found is not None
    assert found[0][0] == 2000
    assert approximate.blocks is built  # a small tail is scored, not indexed


def test_a_large_tail_or_many_deletes_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    index = random_index(1000)
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    first = approximate.prepare()[1]
    index.add_rows([{"t1": 1.0}] * 200)  # tail of 200 > 1000 / 8
    second = approximate.prepare()[1]
    assert second is not first
    assert second.n_rows == 1200
    index.delete_rows(list(range(400)))  # a third of the covered rows
    third = approximate.prepare()[1]
    assert third is not second
    assert not set(third.rows.tolist()) & set(range(400))


def test_deleted_rows_are_never_returned() -> None:
    index = random_index()
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    q = random_queries(1)[0]
    first = approximate.search(q, 10, None, index.n_live)
    assert first is not None
    index.delete_rows(first[0][:5].tolist())
    again = approximate.search(q, 10, None, index.n_live)
    assert again is not None
    assert not set(again[0].tolist()) & set(first[0][:5].tolist())
    assert set(first[0][5:].tolist()) <= set(again[0].tolist())


@pytest.mark.parametrize("admitted", [50, 2500])  # scored one by one; or through the blocks
def test_a_filter_admits_only_its_rows(admitted: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sparse_approx, "FILTERED_ROWS", 100)
    index = random_index()
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    mask = np.zeros(index.n_rows, dtype=bool)
    mask[np.random.default_rng(3).choice(index.n_rows, admitted, replace=False)] = True
    for q in random_queries(10):
        exact = index.search(q, 10, mask)[0]
        found = approximate.search(q, 10, mask, index.n_live)
        rows = exact if found is None else found[0]
        assert mask[rows].all()
        if admitted == 50:
            assert found is not None
            assert found[0].tolist() == exact.tolist()


# -- persistence --------------------------------------------------------------------------------


def test_a_compacted_block_index_round_trips(tmp_path: Path) -> None:
    index = random_index(1000)
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    approximate.prepare()
    index.delete_rows([0, 10, 500])
    write = approximate.snapshot()
    assert write is not None
    write(tmp_path)
    read = BlockIndex.read(tmp_path, 997, len(index.terms))
    assert read is not None
    assert read.n_rows == 997
    assert read.rows.max() < 997
    blocks = approximate.blocks
    assert blocks is not None
    assert len(read.rows) == len(blocks.rows) - int(np.isin(blocks.rows, [0, 10, 500]).sum())
    assert BlockIndex.read(tmp_path / "nothing-here", 997, len(index.terms)) is None


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("rows", lambda a: a + 10_000),
        ("list_blocks", lambda a: a[::-1].copy()),
        ("block_starts", lambda a: a[:-1].copy()),
        ("pair_terms", lambda a: a - 100_000),
        ("pair_terms", lambda a: a[::-1].copy()),
        ("entry_blocks", lambda a: a + 1),
        ("pair_starts", lambda a: a * 2),
        ("scales", lambda a: np.full_like(a, np.nan)),
        ("entry_levels", lambda a: a.astype(np.float64)),
    ],
)
def test_damaged_block_arrays_are_refused(tmp_path: Path, name: str, damage) -> None:  # type: ignore[no-untyped-def]
    index = random_index(500)
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    approximate.prepare()
    write = approximate.snapshot()
    assert write is not None
    write(tmp_path)
    file = tmp_path / f"blocks_{name}.npy"
    np.save(file, damage(np.load(file)))
    with pytest.raises(CorruptCollectionError):
        BlockIndex.read(tmp_path, 500, len(index.terms))


def test_a_damaged_header_is_refused(tmp_path: Path) -> None:
    index = random_index(500)
    approximate = ApproximateIndex(index, ApproximateSearch(min_documents=0))
    approximate.prepare()
    write = approximate.snapshot()
    assert write is not None
    write(tmp_path)
    for text in ("{ not json", '{"format": 1, "n_rows": 10000, "settings": {}}', "[]"):
        (tmp_path / "blocks.json").write_text(text, encoding="utf-8")
        with pytest.raises(CorruptCollectionError):
            BlockIndex.read(tmp_path, 500, len(index.terms))


def test_blocks_built_with_other_settings_are_not_adopted() -> None:
    index = random_index(500)
    built = ApproximateIndex(index, ApproximateSearch(postings=50, min_documents=0))
    built.prepare()
    other = ApproximateIndex(index, ApproximateSearch(postings=60, min_documents=0))
    assert built.blocks is not None
    other.adopt(built.blocks)
    assert other.blocks is None
    same = ApproximateIndex(index, ApproximateSearch(postings=50, query_terms=3))
    same.adopt(built.blocks)  # query-time settings do not change what is built
    assert same.blocks is built.blocks


# -- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"postings": 0},
        {"query_terms": 1.5},
        {"heap_factor": 0},
        {"heap_factor": 1.5},
        {"summary_energy": float("nan")},
        {"block_fraction": "0.1"},
        {"min_documents": -1},
        {"postings": True},
    ],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(kwargs))):
        ApproximateSearch(**kwargs)


def test_settings_from_config() -> None:
    assert ApproximateSearch.from_config("approximate") == ApproximateSearch()
    custom = ApproximateSearch(query_terms=5)
    assert ApproximateSearch.from_config(custom.config()) == custom
    assert ApproximateSearch().config() == "approximate"
    with pytest.raises(InvalidInputError, match="colour"):
        ApproximateSearch.from_config({"colour": 1})
    with pytest.raises(InvalidInputError, match="search must be"):
        ApproximateSearch.from_config("fast")
