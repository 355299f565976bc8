"""Index parameters of dense Milvus fields: FLAT (exact, the default), HNSW (M, efConstruction;
ef at search), IVF_FLAT (nlist; nprobe at search), recorded in the collection's properties and
checked on reopen like the model identity. The spec itself (pure), then milvus-lite, then a real
server, where the index is built on sealed segments and its approximation shows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rag_retrievers.engines.milvus_index import MilvusIndex
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.records import Document

# -- the spec ----------------------------------------------------------------------------------


def test_defaults_fill_the_parameters_of_each_type() -> None:
    assert MilvusIndex() == MilvusIndex.coerce(None) == MilvusIndex.coerce("flat")
    assert MilvusIndex().params() == {}
    hnsw = MilvusIndex.coerce("HNSW")
    assert (hnsw.M, hnsw.efConstruction, hnsw.ef) == (16, 200, 64)
    ivf = MilvusIndex.coerce({"type": "ivf_flat", "nlist": 256})
    assert (ivf.nlist, ivf.nprobe) == (256, 16)
    assert MilvusIndex("IVF_FLAT", nlist=8).nprobe == 8  # never more cells than there are
    assert repr(ivf) == "MilvusIndex(type='IVF_FLAT', nlist=256, nprobe=16)"
    assert MilvusIndex.coerce(hnsw) is hnsw


def test_build_and_search_parameters_are_apart() -> None:
    hnsw = MilvusIndex("HNSW", M=32, efConstruction=100, ef=40)
    assert hnsw.build_params() == {"type": "HNSW", "M": 32, "efConstruction": 100}
    assert hnsw.index_params() == {"M": 32, "efConstruction": 100}
    assert hnsw.search_params(10) == {"ef": 40}
    assert hnsw.search_params(100) == {"ef": 100}  # Milvus refuses ef < k
    ivf = MilvusIndex("IVF_FLAT", nlist=64, nprobe=8)
    assert ivf.build_params() == {"type": "IVF_FLAT", "nlist": 64}
    assert ivf.search_params(10) == {"nprobe": 8}
    assert MilvusIndex().search_params(10) == {}
    assert [i.exact for i in (MilvusIndex(), hnsw, ivf)] == [True, False, False]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("IVF_PQ", "index type must be one of FLAT, HNSW, IVF_FLAT"),
        ({"type": "HNSW", "nlist": 8}, "index HNSW takes M, efConstruction, ef, not nlist=8"),
        ({"type": "FLAT", "ef": 8}, "index FLAT takes no parameters, not ef=8"),
        ({"type": "HNSW", "M": 1}, r"M must be an int in 2\.\.2048, got 1"),
        ({"type": "HNSW", "ef": 2.5}, r"ef must be an int in 1\.\.32768, got 2\.5"),
        ({"type": "HNSW", "ef": True}, "ef must be an int"),
        ({"type": "IVF_FLAT", "nlist": 8, "nprobe": 9}, r"nprobe \(9\) cannot exceed nlist"),
        ({"type": "HNSW", "m": 8}, "unknown: m"),
        (7, "index must be None, an index type name"),
    ],
)
def test_bad_specs_are_refused_naming_what_is_allowed(value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MilvusIndex.coerce(value)


def test_the_recorded_description_holds_the_build_parameters() -> None:
    pytest.importorskip("pymilvus")
    from rag_retrievers.engines.milvus import VectorField

    spec = VectorField("dense", dim=4, index=MilvusIndex("HNSW", M=8, ef=99))
    described = json.loads(spec.describe())
    assert described["index"] == {"type": "HNSW", "M": 8, "efConstruction": 200}
    assert VectorField.from_description(spec.describe()).describe() == spec.describe()
    # a field recorded before indexes were: a FLAT dense field
    old = json.dumps({"dim": 4, "identity": {}, "kind": "dense", "metric": "IP"})
    assert VectorField.from_description(old).index == MilvusIndex()
    assert VectorField("dense", dim=4).index == MilvusIndex()
    assert "index" not in json.loads(VectorField("sparse").describe())
    with pytest.raises(InvalidInputError, match="sparse fields are searched exactly"):
        VectorField("sparse", index=MilvusIndex("HNSW"))


# -- milvus-lite and a server ------------------------------------------------------------------


def vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def exact_top(docs: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    scores = queries @ docs.T
    return [list(np.argsort(-row, kind="stable")[:k]) for row in scores]


def documents(n: int) -> list[Document]:
    return [Document(id=f"v{i:05d}", text=f"vector {i}", metadata={"i": i}) for i in range(n)]


def field(uri: str, collection: str, index: Any, *, adopt: bool = False, dim: int = 32) -> Any:
    from rag_retrievers.engines.milvus import VectorField
    from rag_retrievers.engines.milvus_search import MilvusField

    spec = VectorField("dense", "IP", dim, {"retriever": "test"})
    return MilvusField(uri, collection, "v", spec, index=index, adopt=adopt)


@pytest.fixture
def lite_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from rag_retrievers.engines.milvus import close_stores

    uri = str(tmp_path_factory.mktemp("milvus") / "index.db")
    yield uri
    close_stores(uri)


@pytest.mark.slow
def test_the_index_is_recorded_and_checked_on_reopen(lite_uri: str) -> None:
    """milvus-lite: the collection records the index; reopening asks for the same build
    parameters (another type, M or nlist is refused) but may search with another ef."""
    from rag_retrievers.engines.milvus import SchemaMismatchError, close_stores
    from rag_retrievers.index.docstore import DocumentStore

    hnsw = {"type": "HNSW", "M": 8, "efConstruction": 64, "ef": 16}
    f = field(lite_uri, "docs", hnsw)
    docs = documents(50)
    data = vectors(50, 32, seed=1)
    f.upsert(docs, data.tolist())
    properties = f.store.client.describe_collection("docs")["properties"]
    recorded = json.loads(properties["rag_retrievers.field.v"])
    assert recorded["index"] == {"type": "HNSW", "M": 8, "efConstruction": 64}
    assert f.index == MilvusIndex("HNSW", M=8, efConstruction=64, ef=16)
    assert not f.exact
    store = DocumentStore()
    store.append(docs)
    ((rows, _),) = f.search(data[:1].tolist(), 3, None, store)
    assert rows[0] == 0
    close_stores(lite_uri)  # another process, as far as the stores are concerned
    for other in ("FLAT", {**hnsw, "M": 16}, {"type": "IVF_FLAT", "nlist": 8}):
        with pytest.raises(SchemaMismatchError, match="field 'v' is indexed") as err:
            field(lite_uri, "docs", other, adopt=True)
        assert "is indexed HNSW (M=8, efConstruction=64); this retriever asks for" in str(err.value)
    again = field(lite_uri, "docs", {**hnsw, "ef": 40}, adopt=True)  # ef: a search setting
    assert again.index.ef == 40


@pytest.mark.slow
def test_search_asks_for_the_fields_parameters(
    lite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each field searches with its own ef / nprobe (at least k for HNSW)."""
    from rag_retrievers.index.docstore import DocumentStore

    docs, data = documents(30), vectors(30, 32, seed=2)
    store = DocumentStore()
    store.append(docs)
    seen: list[dict[str, Any]] = []
    for collection, index, k, expected in [
        ("h", {"type": "HNSW", "ef": 20}, 5, {"ef": 20}),
        ("h", {"type": "HNSW", "ef": 20}, 25, {"ef": 25}),
        ("i", {"type": "IVF_FLAT", "nlist": 4, "nprobe": 3}, 5, {"nprobe": 3}),
        ("f", None, 5, {}),
    ]:
        f = field(lite_uri, collection, index, adopt=True)
        f.upsert(docs, data.tolist())
        original = f.store.client.search

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            seen.append(kwargs["search_params"])
            return _original(*args, **kwargs)

        monkeypatch.setattr(f.store.client, "search", spy)
        f.search(data[:2].tolist(), k, None, store)
        assert seen[-1] == {"metric_type": "IP", "params": expected}


@pytest.mark.slow
@pytest.mark.milvus_server
def test_approximate_indexes_on_a_server(server_collections: Any) -> None:
    """On a Milvus 2.3 server, with the rows flushed into a sealed segment (indexed; a growing
    segment is searched by brute force): HNSW finds nearly every exact top-10 hit, IVF_FLAT
    with nprobe = nlist finds exactly them and with nprobe = 1 fewer, FLAT is exact. The
    server's index description shows the recorded parameters."""
    from rag_retrievers.index.docstore import DocumentStore

    uri = server_collections.uri
    n, dim, k = 3000, 32, 10
    docs, data = documents(n), vectors(n, dim, seed=3)
    queries = vectors(20, dim, seed=4)
    exact = exact_top(data, queries, k)
    store = DocumentStore()
    store.append(docs)

    def recall(f: Any) -> float:
        found = [rows for rows, _ in f.search(queries.tolist(), k, None, store)]
        return float(np.mean([len(set(g) & set(e)) / k for g, e in zip(found, exact, strict=True)]))

    built = {}
    for label, index in [
        ("flat", None),
        ("hnsw", {"type": "HNSW", "M": 8, "efConstruction": 40, "ef": 64}),
        ("ivf", {"type": "IVF_FLAT", "nlist": 16, "nprobe": 16}),
    ]:
        f = field(uri, server_collections(label), index, dim=dim)
        f.upsert(docs, data.tolist())
        f.store.client.flush(f.store.collection)
        built[label] = f
    for label, f in built.items():
        client, name = f.store.client, f.store.collection
        deadline = time.monotonic() + 120
        while True:
            described = client.describe_index(name, "v")
            if int(described.get("indexed_rows", 0)) >= n or label == "flat":
                break
            assert time.monotonic() < deadline, described
            time.sleep(1)
        assert described["index_type"] == f.index.type
        for key, value in f.index.index_params().items():
            assert str(described[key]) == str(value)
    assert recall(built["flat"]) == 1.0
    assert recall(built["ivf"]) == 1.0  # every cell probed
    assert recall(built["hnsw"]) >= 0.9
    # another retriever on the same field may search with other parameters (not recorded)
    ivf = built["ivf"]
    probe_one = field(
        uri, ivf.store.collection, {"type": "IVF_FLAT", "nlist": 16, "nprobe": 1}, adopt=True,
        dim=dim,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while (r := recall(probe_one)) >= 1.0:  # until the query node searches the loaded index
        assert time.monotonic() < deadline, "nprobe=1 never missed: is the index used?"
        time.sleep(2)
    assert r < 1.0
    assert recall(ivf) == 1.0


@pytest.mark.slow
def test_colbert_encodings_take_an_index_too(lite_uri: str) -> None:
    """ColBERT's candidate field (MUVERA encodings) is a dense field like any other."""
    from rag_retrievers.engines.milvus import SchemaMismatchError, close_stores
    from rag_retrievers.engines.milvus_search import FDECandidates
    from rag_retrievers.scoring.muvera import FDESettings

    settings = FDESettings(k_sim=2, repetitions=2, d_proj=8)
    candidates = FDECandidates(
        lite_uri, "colbert", "colbert", settings, 16, {"model": "m"}, index={"type": "HNSW"}
    )
    assert candidates.field.index == MilvusIndex("HNSW")
    rng = np.random.default_rng(5)
    tokens = [rng.standard_normal((4, 16)).astype(np.float32) for _ in range(3)]
    candidates.upsert(documents(3), tokens)
    close_stores(lite_uri)
    with pytest.raises(SchemaMismatchError, match="is indexed HNSW"):
        FDECandidates(lite_uri, "colbert", "colbert", settings, 16, {"model": "m"}, adopt=True)
