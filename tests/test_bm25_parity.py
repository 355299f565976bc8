"""BM25 scores against the reference implementation rank-bm25 and against hand-computed values.

Our ``variant="okapi"`` must reproduce ``rank_bm25.BM25Okapi`` (same tokens, k1, b, epsilon) for
every document, not only for the top hits: both full score vectors are compared.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rag_retrievers import BM25, Document
from rag_retrievers.encoders.analysis import Analyzer

rank_bm25 = pytest.importorskip("rank_bm25")

# 30 documents. "data" occurs in 20 of them and "search" in 17 (both in more than half), so their
# Robertson-Sparck Jones idf is negative and the epsilon floor applies. Lengths vary from one
# term to ~25, some terms repeat within a document, and doc 29 has no terms at all after analysis.
TEXTS = [
    "data data data retrieval",
    "search engines index data",
    "neural ranking models for search",
    "BM25 is a bag of words ranking function used by search engines",
    "data search data search data search",
    "inverted index compression with variable byte codes",
    "dense retrieval with neural encoders and approximate nearest neighbour search over data",
    "query expansion with pseudo relevance feedback improves recall on data",
    "data",
    "search",
    "learning to rank with gradient boosted trees on click data",
    "the index stores postings lists; each posting holds a document id and a term frequency",
    "data cleaning and data validation before indexing data for search",
    "evaluation of search with nDCG and mean reciprocal rank on judged data",
    "zipf law describes term frequency distribution in natural language data",
    "search logs reveal user intent; query logs are data too",
    "a neural network trained on data to predict relevance of search results",
    "sparse lexical representations such as SPLADE expand documents",
    "data structures for fast search: tries, skip lists, bitmaps",
    "caching search results reduces latency for popular queries over data",
    "federated search merges ranked lists from several engines",
    "data data retrieval retrieval ranking ranking index index search search neural neural",
    "tokenization, stemming and stopword removal prepare text data",
    "the Okapi weighting scheme saturates term frequency and normalises document length "
    "so that long documents with many repeated words about data and search do not dominate "
    "every ranking of every query about data",
    "click models estimate examination bias in search data",
    "question answering retrieves passages from data then reads them",
    "colbert late interaction scores query and document token embeddings",
    "hybrid search fuses lexical and dense rankings of data with reciprocal rank fusion",
    "privacy of search data and query logs",
    "the and of to in",  # only stopwords: an empty document after analysis
]
IDS = [f"d{i:02d}" for i in range(len(TEXTS))]

# Query words: two frequent terms (negative raw idf), mid and rare terms, stemmed forms and two
# words no document has.
QUERY_WORDS = [
    "data",
    "search",
    "neural",
    "ranking",
    "index",
    "retrieval",
    "okapi",
    "zebra",
    "xyzzy",
]
REPEATED_QUERIES = [
    "data data",
    "search search search neural",
    "ranking ranked rank index",
    "retrieval retrieves retrieved zebra",
    "the data of the search",
]


def _queries() -> list[str]:
    combos = [" ".join(c) for size in (1, 2, 3) for c in itertools.combinations(QUERY_WORDS, size)]
    return [*combos, " ".join(QUERY_WORDS), *REPEATED_QUERIES]


def _docs(texts: list[str] = TEXTS, ids: list[str] = IDS) -> list[Document]:
    return [Document(id=i, text=t) for i, t in zip(ids, texts, strict=True)]


def _our_scores(bm25: BM25, query: str, ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Scores of every document for ``query`` (0 where our search returns no hit), and the ids
    our search left out."""
    hits = bm25.search(query, k=len(ids) + 5)
    by_id = {h.id: h.score for h in hits}
    assert len(by_id) == len(hits)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(h.score > 0 for h in hits)
    return np.array([by_id.get(i, 0.0) for i in ids]), [i for i in ids if i not in by_id]


def _assert_parity(bm25: BM25, docs: list[Document], *, rtol: float, atol: float) -> None:
    analyzer = Analyzer()
    ids = [d.id for d in docs]
    reference = rank_bm25.BM25Okapi(
        analyzer.analyze_many([d.text for d in docs]), k1=1.5, b=0.75, epsilon=0.25
    )
    # the corpus really exercises the epsilon floor
    assert any(v < 0 for v in _raw_idfs(reference).values())
    for query in _queries():
        ours, missing = _our_scores(bm25, query, ids)
        expected = reference.get_scores(analyzer.analyze(query))
        np.testing.assert_allclose(ours, expected, rtol=rtol, atol=atol, err_msg=query)
        # a document is absent from our results only if rank-bm25 also scores it 0
        for doc_id in missing:
            assert expected[ids.index(doc_id)] == 0.0, (query, doc_id)


def _raw_idfs(reference) -> dict[str, float]:
    n = reference.corpus_size
    df: dict[str, int] = {}
    for freqs in reference.doc_freqs:
        for word in freqs:
            df[word] = df.get(word, 0) + 1
    return {w: math.log(n - f + 0.5) - math.log(f + 0.5) for w, f in df.items()}


def test_okapi_float64_matches_rank_bm25_for_every_document_and_query() -> None:
    bm25 = BM25(variant="okapi", k1=1.5, b=0.75, epsilon=0.25, dtype="float64")
    docs = _docs()
    bm25.add(docs)
    _assert_parity(bm25, docs, rtol=0, atol=1e-6)


def test_okapi_query_weights_use_floored_idf_for_frequent_terms() -> None:
    bm25 = BM25(variant="okapi", k1=1.5, b=0.75, epsilon=0.25, dtype="float64")
    bm25.add(_docs())
    reference = rank_bm25.BM25Okapi(Analyzer().analyze_many(TEXTS), k1=1.5, b=0.75, epsilon=0.25)
    weights = bm25.query_weights("data data search zebra")
    assert set(weights) == {"data", "search"}  # the unknown term is dropped
    assert weights["data"] == pytest.approx(2 * reference.idf["data"], abs=1e-12)
    assert weights["search"] == pytest.approx(reference.idf["search"], abs=1e-12)
    assert reference.idf["data"] == pytest.approx(0.25 * reference.average_idf)
    assert reference.idf["data"] > 0


def test_okapi_parity_holds_after_incremental_adds_deletes_and_upserts() -> None:
    bm25 = BM25(variant="okapi", k1=1.5, b=0.75, epsilon=0.25, dtype="float64")
    docs = _docs()
    # several segments: a first batch, then small adds
    bm25.add(docs[:12])
    bm25.add(docs[12:20])
    bm25.add(docs[20:24])
    bm25.add(docs[24:])
    assert bm25.delete(["d03", "d08", "d17", "nope"]) == 3
    upserts = [
        Document(id="d05", text="search data search data neural index"),
        Document(id="d21", text="ranking"),
        Document(id="d99", text="a brand new document about okapi retrieval of data"),
    ]
    bm25.add(upserts)
    assert bm25.delete(["d99"]) == 1
    bm25.add([Document(id="d99", text="okapi okapi data search retrieval")])

    final = {d.id: d for d in docs if d.id not in {"d03", "d08", "d17"}}
    final.update({d.id: d for d in upserts})
    final["d99"] = Document(id="d99", text="okapi okapi data search retrieval")
    final_docs = list(final.values())
    assert len(bm25) == len(final_docs)
    _assert_parity(bm25, final_docs, rtol=0, atol=1e-6)


def test_okapi_float32_default_dtype_within_relative_tolerance() -> None:
    bm25 = BM25(variant="okapi", k1=1.5, b=0.75, epsilon=0.25)
    assert bm25.config()["dtype"] == "float32"
    docs = _docs()
    bm25.add(docs)
    _assert_parity(bm25, docs, rtol=1e-4, atol=0)


def test_lucene_variant_matches_hand_computed_scores() -> None:
    # Corpus (analyzed terms):  a = [cat, dog]   b = [cat, cat, fish]   c = [bird]
    # N = 3, avgdl = (2 + 3 + 1) / 3 = 2, k1 = 0.9, b = 0.4 (the defaults).
    bm25 = BM25(dtype="float64")
    assert (bm25.k1, bm25.b, bm25.variant) == (0.9, 0.4, "lucene")
    bm25.add(
        [
            Document(id="a", text="cat dog"),
            Document(id="b", text="cat cat fish"),
            Document(id="c", text="bird"),
        ]
    )
    # idf(cat) = ln(1 + (N - df + 0.5) / (df + 0.5)) = ln(1 + 1.5 / 2.5) = ln(1.6)
    # idf(dog) = idf(fish) = ln(1 + 2.5 / 1.5) = ln(8 / 3)
    idf_cat, idf_dog = math.log(1.6), math.log(8 / 3)
    # length norm = k1 (1 - b + b dl / avgdl):
    #   a: 0.9 (0.6 + 0.4 * 2 / 2) = 0.9     b: 0.9 (0.6 + 0.4 * 3 / 2) = 1.08
    # tf part = tf / (tf + norm):   a, cat: 1 / 1.9    b, cat: 2 / 3.08    a, dog: 1 / 1.9
    score_a_cat = idf_cat * 1 / 1.9  # 0.247370...
    score_b_cat = idf_cat * 2 / 3.08  # 0.305197...
    score_a_dog = idf_dog * 1 / 1.9  # 0.516226...

    hits = bm25.search("cat", k=10)
    assert [h.id for h in hits] == ["b", "a"]
    assert hits[0].score == pytest.approx(score_b_cat, rel=1e-12)
    assert hits[1].score == pytest.approx(score_a_cat, rel=1e-12)
    assert score_b_cat == pytest.approx(0.305197, abs=1e-6)

    hits = bm25.search("dog cat", k=10)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(score_a_cat + score_a_dog, rel=1e-12)
    assert hits[1].score == pytest.approx(score_b_cat, rel=1e-12)

    # a repeated query term counts twice
    hits = bm25.search("cat cats", k=10)
    assert hits[0].score == pytest.approx(2 * score_b_cat, rel=1e-12)

    # no query term known: no hits; stopwords-only query: no hits
    assert bm25.search("unicorn", k=10) == []
    assert bm25.search("the of", k=10) == []

    # float32 (the default) agrees to float32 precision
    bm25_32 = BM25()
    bm25_32.add(
        [
            Document(id="a", text="cat dog"),
            Document(id="b", text="cat cat fish"),
            Document(id="c", text="bird"),
        ]
    )
    assert bm25_32.search("cat", k=1)[0].score == pytest.approx(score_b_cat, rel=1e-6)
