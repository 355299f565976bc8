"""ColBERT with its candidates in Milvus (MUVERA encodings, milvus-lite on a file the test owns)
and exact MaxSim here, on the offline stand-in (minilm token embeddings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # a milvus-lite server and a model per test

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from milvus_fixtures import OnMilvus, milvus_uri  # noqa: E402, F401
from rag_retrievers.adapters.colbert import ColBERT  # noqa: E402
from test_colbert import HAVE_MINILM, minilm  # noqa: E402

from rag_retrievers.base import Retriever  # noqa: E402
from rag_retrievers.engines.milvus import SchemaMismatchError, close_stores  # noqa: E402
from rag_retrievers.engines.options import MilvusOptions  # noqa: E402
from rag_retrievers.errors import InvalidInputError  # noqa: E402
from rag_retrievers.records import Document  # noqa: E402
from rag_retrievers.scoring.muvera import FDESettings, document_fdes  # noqa: E402

if not HAVE_MINILM:
    pytest.skip("the minilm weights are not installed", allow_module_level=True)

#: a small encoding keeps milvus-lite quick: 4 x 2**3 x 16 = 512 dimensions
SMALL_FDE = {"k_sim": 3, "repetitions": 4, "d_proj": 16, "seed": 0, "fill_empty": True}


@pytest.fixture
def uri(milvus_uri: str) -> str:  # noqa: F811 (the fixture, by name)
    return milvus_uri


class TestColBERTOnMilvus(OnMilvus):
    """Every search goes to Milvus (mode="candidates"): 8 candidates of 12 documents from the
    encodings, then exact MaxSim."""

    def make_retriever(self) -> Retriever:
        return ColBERT(
            encoder=minilm(),  # type: ignore[arg-type]
            engine=MilvusOptions(self.uri, collection=self.collection()),
            mode="candidates",
            ndocs=8,
            fde=SMALL_FDE,
        )


def corpus() -> list[Document]:
    """40 short texts on eight subjects, two years, written here."""
    subjects = {
        "astro": ["stars", "a supernova", "the telescope", "dark matter", "a comet"],
        "bio": ["enzymes", "the cell membrane", "DNA repair", "a protein fold", "the ribosome"],
        "cook": ["sourdough", "caramel", "a slow braise", "fresh pasta", "the custard"],
        "sport": ["the marathon", "a penalty kick", "the tie-break", "a relay", "the sprint"],
        "geo": ["glaciers", "a volcano", "river deltas", "the fault line", "sand dunes"],
        "music": ["the violin", "a fugue", "jazz chords", "the choir", "a drum solo"],
        "law": ["the contract", "a verdict", "the appeal", "a patent", "the statute"],
        "code": ["the compiler", "a hash map", "the garbage collector", "a mutex", "recursion"],
    }
    verbs = ["explains", "changes", "depends on", "is shaped by", "surprises"]
    docs = []
    for s, (subject, things) in enumerate(subjects.items()):
        for t, thing in enumerate(things):
            other = things[(t + 2) % len(things)]
            docs.append(
                Document(
                    id=f"{subject}-{t}",
                    text=f"In {subject}, {thing} {verbs[(s + t) % 5]} {other} in a subtle way.",
                    metadata={"subject": subject, "year": 2020 + (s + t) % 2},
                )
            )
    return docs


QUERIES = [
    "how do stars explode",
    "protein folding in cells",
    "baking bread with sourdough",
    "who won the tennis tie-break",
    "ice shaping valleys",
    "chords in jazz",
    "appeal of a court verdict",
    "locks and threads in programs",
]


def test_candidates_covering_the_corpus_give_in_process_maxsim(uri: str) -> None:
    """With ndocs >= the corpus, Milvus's candidates are every matching document: the top 10
    (ids, ranks and scores) equal the in-process index's exact MaxSim, with and without a
    filter."""
    docs = corpus()
    here = ColBERT(encoder=minilm(), mode="exhaustive")  # type: ignore[arg-type]
    on_milvus = ColBERT(
        encoder=minilm(),  # type: ignore[arg-type]
        engine=MilvusOptions(uri, collection="parity"),
        mode="candidates",
        ndocs=len(docs),
    )
    for retriever in (here, on_milvus):
        retriever.add(docs)
    for filter in (None, {"year": 2021}, {"subject": {"$in": ["bio", "code", "law"]}}):
        expected = here.search_batch(QUERIES, k=10, filter=filter)
        got = on_milvus.search_batch(QUERIES, k=10, filter=filter)
        for e, g in zip(expected, got, strict=True):
            assert len(e) == 10
            assert [h.id for h in g] == [h.id for h in e]
            assert [h.score for h in g] == pytest.approx([h.score for h in e], rel=1e-6)


def test_few_candidates_come_from_milvus(uri: str) -> None:
    """ndocs=3: a query reaches only the 3 documents whose encodings Milvus ranks first, and a
    document's own text is among them."""
    docs = corpus()
    colbert = ColBERT(
        encoder=minilm(),  # type: ignore[arg-type]
        engine=MilvusOptions(uri, collection="few"),
        mode="candidates",
        ndocs=3,
        fde=SMALL_FDE,
    )
    colbert.add(docs)
    assert colbert.milvus is not None
    for doc in docs[::7]:
        hits = colbert.search(doc.text, k=10)
        assert len(hits) == 10  # k above ndocs: k candidates
        assert hits[0].id == doc.id
        assert len(colbert.search_vectors([colbert.query_vectors(doc.text)], k=2)[0]) == 2
    query = colbert.query_vectors("jazz chords")
    (rows,) = colbert.milvus.candidates([query], 3, None, colbert._docs)
    hits = colbert.search_vectors([query], k=3)[0]
    assert {h.id for h in hits} == {colbert._docs.live_document(int(r)).id for r in rows}
    # exhaustive still scores every document here
    assert len(colbert.search("jazz chords", k=40)) == 40
    assert len(colbert.search_vectors([query], k=40, mode="exhaustive")[0]) == 40


def stored_encodings(colbert: ColBERT) -> dict[str, np.ndarray]:
    assert colbert.milvus is not None
    store = colbert.milvus.store
    store._flush_lite()
    rows = store.client.query(
        store.collection, filter="", output_fields=["id", colbert.milvus.field.name], limit=1000
    )
    return {row["id"]: np.asarray(row[colbert.milvus.field.name], dtype=np.float32) for row in rows}


def expected_encodings(colbert: ColBERT) -> dict[str, np.ndarray]:
    assert colbert.milvus is not None
    docs = list(colbert._docs.live_documents())
    tokens = [colbert.index.row_vectors(colbert._docs.row(d.id)) for d in docs]  # type: ignore[arg-type]
    vectors = document_fdes(tokens, colbert.milvus.projections)
    return dict(zip([d.id for d in docs], vectors, strict=True))


def test_milvus_holds_the_encoding_of_every_live_document(uri: str, tmp_path: Path) -> None:
    """After adds, replacements, deletes and a reopen, Milvus holds exactly the live ids, each
    with the encoding of the tokens kept here."""
    docs = corpus()[:12]
    colbert = ColBERT(
        encoder=minilm(),  # type: ignore[arg-type]
        engine=MilvusOptions(uri, collection="sync"),
        fde=SMALL_FDE,
    )
    colbert.add(docs)
    colbert.add([docs[1].model_copy(update={"text": "A new text about volcanoes and ash."})])
    colbert.add([docs[2].model_copy(update={"metadata": {"subject": "moved"}})])  # same text
    colbert.delete([docs[3].id, "not-there"])

    def check(retriever: ColBERT) -> None:
        stored, expected = stored_encodings(retriever), expected_encodings(retriever)
        assert sorted(stored) == sorted(expected) == sorted(d.id for d in docs if d != docs[3])
        for doc_id, vector in expected.items():
            np.testing.assert_allclose(stored[doc_id], vector, rtol=1e-5, atol=1e-6)

    check(colbert)
    hits = colbert.search("volcanoes", k=1, filter={"subject": "moved"})
    assert [h.id for h in hits] == [docs[2].id]
    colbert.save(tmp_path / "c")
    colbert.delete([d.id for d in docs[:6]])  # Milvus drifts from the snapshot...
    reopened = ColBERT.open(tmp_path / "c", engine=MilvusOptions(uri, collection="sync"))
    check(reopened)  # ...and opening it synchronises the collection again
    assert reopened.fde == FDESettings(**SMALL_FDE)
    assert reopened.config()["fde"] == SMALL_FDE


def test_other_encoding_settings_are_refused_on_an_existing_collection(uri: str) -> None:
    ColBERT(encoder=minilm(), engine=MilvusOptions(uri, collection="docs"), fde=SMALL_FDE).add(  # type: ignore[arg-type]
        corpus()[:2]
    )
    close_stores(uri)  # a new process, as far as the store is concerned
    other = {**SMALL_FDE, "seed": 1}
    with pytest.raises(SchemaMismatchError, match="differs in identity"):
        ColBERT(encoder=minilm(), engine=MilvusOptions(uri, collection="docs"), fde=other)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="only with a Milvus engine"):
        ColBERT(encoder=minilm(), fde=SMALL_FDE)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="k_sim"):
        ColBERT(encoder=minilm(), engine=MilvusOptions(uri, collection="x"), fde={"k_sim": 0})  # type: ignore[arg-type]


def test_hybrid_with_colbert_in_a_shared_collection_fuses_here(uri: str) -> None:
    """BM25 and ColBERT as two fields of one collection: each member keeps its own results, and
    the hybrid (fused here: encodings only approximate MaxSim) equals the in-process one."""
    from rag_retrievers.adapters.hybrid import Hybrid

    from rag_retrievers import BM25

    docs = corpus()
    bm25 = BM25(engine=MilvusOptions(uri, collection="shared"))
    colbert = ColBERT(
        encoder=minilm(),  # type: ignore[arg-type]
        engine=MilvusOptions(uri, collection="shared"),
        mode="candidates",
        ndocs=len(docs),
        fde=SMALL_FDE,
    )
    on_milvus = Hybrid([bm25, colbert])
    here = Hybrid([BM25(), ColBERT(encoder=minilm(), mode="exhaustive")])  # type: ignore[arg-type]
    for hybrid in (on_milvus, here):
        hybrid.add(docs)
    assert bm25.milvus is not None
    assert colbert.milvus is not None
    assert bm25.milvus.store is colbert.milvus.store
    assert sorted(stored_encodings(colbert)) == sorted(d.id for d in docs)
    for query in QUERIES[:4]:
        expected = here.search(query, k=10, filter={"year": 2020})
        got = on_milvus.search(query, k=10, filter={"year": 2020})
        assert [h.id for h in got] == [h.id for h in expected]
        assert [h.score for h in got] == pytest.approx([h.score for h in expected])
