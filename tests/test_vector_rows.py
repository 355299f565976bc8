"""Documents and dense vectors in row order, searched exactly (hand-computed scores)."""

import numpy as np
import pytest

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.index.vector_rows import VectorRows, best_rows, similarities
from rag_retrievers.records import Document


def docs(*ids: str) -> list[Document]:
    return [Document(id=i, text=f"text of {i}") for i in ids]


def test_similarities_dot_and_cosine_with_a_zero_vector() -> None:
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]])
    queries = np.array([[2.0, 0.0]])
    assert similarities(vectors, queries, cosine=False).tolist() == [[6.0, 0.0, 2.0]]
    cosines = similarities(vectors, queries, cosine=True)
    assert cosines[0] == pytest.approx([0.6, 0.0, 1 / np.sqrt(2)])


def test_best_rows_keeps_ties_at_the_cut_and_orders_them_by_row() -> None:
    rows = np.array([9, 4, 6, 1])
    scores = np.array([0.5, 0.5, 0.9, 0.5])
    best, best_scores = best_rows(rows, scores, 3)
    assert best.tolist() == [6, 1, 4]
    assert best_scores.tolist() == [0.9, 0.5, 0.5]
    assert best_rows(rows, scores, 10)[0].tolist() == [6, 1, 4, 9]


def test_replaced_document_gets_a_new_row_and_old_rows_are_compacted() -> None:
    rows = VectorRows(2)
    rows.append(docs("a", "b"), np.array([[1, 0], [0, 1]], dtype=np.float32))
    rows.append(docs("a"), np.array([[2, 2]], dtype=np.float32))
    assert len(rows) == 2
    assert rows.docs.n_rows == 3
    assert rows.live_rows().tolist() == [1, 2]
    assert rows.vectors(["a", "b"]).tolist() == [[2, 2], [0, 1]]
    assert rows.live_matrix().tolist() == [[0, 1], [2, 2]]
    rows.compact_if_sparse(min_dead=1)  # one dead row is not more than min_dead: kept
    assert rows.docs.n_rows == 3
    rows.docs.remove("b")
    rows.compact_if_sparse(min_dead=0)  # two dead rows, one live: compacted
    assert rows.docs.n_rows == 1
    assert rows.vectors(["a"]).tolist() == [[2, 2]]
    with pytest.raises(InvalidInputError, match="no stored vector for 'b'"):
        rows.vectors(["a", "b"])


def test_top_k_scores_every_row_in_blocks_of_queries() -> None:
    rows = VectorRows(2, cosine=True)
    rows.append(docs("a", "b", "c"), np.array([[3, 4], [1, 0], [0, 2]], dtype=np.float32))
    queries = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    one_block = rows.top_k(rows.live_rows(), queries, 2)
    # a block of one query at a time gives the same answers
    many_blocks = rows.top_k(rows.live_rows(), queries, 2, block_scores=1)
    for found in (one_block, many_blocks):
        assert [r.tolist() for r, _ in found] == [[1, 0], [2, 0], [0, 1]]
        assert found[0][1] == pytest.approx([1.0, 0.6])
        assert found[2][1] == pytest.approx([7 / (5 * np.sqrt(2)), 1 / np.sqrt(2)])
    only_c = rows.top_k(np.array([2]), queries[:1], 2)
    assert [(r.tolist(), s.tolist()) for r, s in only_c] == [([2], [0.0])]
