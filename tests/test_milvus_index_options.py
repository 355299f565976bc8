"""``MilvusOptions(index=...)``: checked when the options are made, passed to the dense field of
Dense and to ColBERT's encodings, recorded in the retriever's config, and on
``Retriever.open`` with no index the one the collection was saved with (another one given is
refused by the collection). milvus-lite records and checks an index like a server does (it
searches every index exactly, which the server tests of ``test_milvus_server_index`` measure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rag_retrievers.engines.milvus_index import MilvusIndex
from rag_retrievers.engines.options import MilvusOptions, engine_from
from rag_retrievers.errors import InvalidInputError

# -- the options (pure) ------------------------------------------------------------------------


def test_index_is_coerced_and_recorded() -> None:
    options = MilvusOptions("m.db", collection="docs", index="hnsw")
    assert options.index == MilvusIndex("HNSW")
    assert options == MilvusOptions("m.db", collection="docs", index={"type": "HNSW"})
    assert repr(options) == (
        "MilvusOptions(uri='m.db', collection='docs', "
        "index=MilvusIndex(type='HNSW', M=16, efConstruction=200, ef=64))"
    )
    config = MilvusOptions("m.db", index={"type": "IVF_FLAT", "nlist": 8}).to_config()
    assert config == {
        "milvus": {"uri": "m.db", "index": {"type": "IVF_FLAT", "nlist": 8, "nprobe": 8}}
    }
    json.dumps(config)  # a manifest holds it
    assert engine_from(config, (MilvusOptions,), "Dense") == MilvusOptions(
        "m.db", index=MilvusIndex("IVF_FLAT", nlist=8)
    )
    # left out: nothing recorded (FLAT for a new retriever, the saved index on reopen)
    assert MilvusOptions("m.db").index is None
    assert "index" not in MilvusOptions("m.db").to_config()["milvus"]
    # resolved names keep the index
    assert MilvusOptions("m.db", index="HNSW").resolved("dense").index == MilvusIndex("HNSW")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("IVF_PQ", "MilvusOptions.index: index type must be one of FLAT, HNSW, IVF_FLAT"),
        ({"type": "HNSW", "nlist": 8}, "MilvusOptions.index: index HNSW takes M, efConstruction"),
        ({"type": "HNSW", "M": 0}, r"M must be an int in 2\.\.2048, got 0"),
        (3, r"MilvusOptions.index: index must be None, an index type name \(FLAT, HNSW"),
    ],
)
def test_a_bad_index_is_refused_when_the_options_are_made(value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MilvusOptions("m.db", index=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=message):
        engine_from({"milvus": {"uri": "m.db", "index": value}}, (MilvusOptions,), "Dense")


def test_reopen_fills_in_the_saved_index() -> None:
    """``Retriever.open`` with options naming no index takes the one the manifest records; one
    given is kept (the collection refuses it if it differs); a damaged record is named."""
    from pathlib import PurePath

    from rag_retrievers.base import reconnect
    from rag_retrievers.errors import CorruptCollectionError

    class Stub:
        engines = (MilvusOptions,)

    saved = {"type": "HNSW", "M": 8, "efConstruction": 32, "ef": 16}
    recorded = {"milvus": {"uri": "m.db", "collection": "docs", "field": "dense", "index": saved}}
    where = PurePath("saved")
    given = MilvusOptions("m.db", collection="docs")
    engine = reconnect(Stub, recorded, where, given)  # type: ignore[arg-type]
    assert isinstance(engine, MilvusOptions)
    assert (engine.field, engine.index, engine.adopt) == ("dense", MilvusIndex(**saved), True)
    flat = MilvusOptions("m.db", collection="docs", index="FLAT")
    engine = reconnect(Stub, recorded, where, flat)  # type: ignore[arg-type]
    assert isinstance(engine, MilvusOptions)
    assert engine.index == MilvusIndex()
    no_index = {"milvus": {"uri": "m.db", "collection": "docs", "field": "dense"}}
    engine = reconnect(Stub, no_index, where, given)  # type: ignore[arg-type]
    assert isinstance(engine, MilvusOptions)
    assert engine.index is None  # FLAT, as collections were before indexes
    damaged = {"milvus": {**recorded["milvus"], "index": {"type": "BOGUS"}}}
    with pytest.raises(CorruptCollectionError, match="saved: the manifest records"):
        reconnect(Stub, damaged, where, given)  # type: ignore[arg-type]


# -- on retrievers (milvus-lite) ---------------------------------------------------------------


def _needs_lite_and_minilm() -> None:
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    pytest.importorskip("sentence_transformers")
    from rag_retrievers.encoders.models import offline_names

    if "minilm" not in offline_names("dense"):
        pytest.skip("the minilm weights are not installed")


@pytest.fixture
def lite(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _needs_lite_and_minilm()
    from rag_retrievers.engines.milvus import close_stores

    uri = str(tmp_path_factory.mktemp("milvus") / "index.db")
    yield uri
    close_stores(uri)


def _docs() -> list[Any]:
    from rag_retrievers.records import Document

    texts = ["stars and comets", "bread and yeast", "a tennis set", "enzymes in cells"]
    return [Document(id=f"d{i}", text=t, metadata={"i": i}) for i, t in enumerate(texts)]


@pytest.mark.slow
def test_dense_builds_records_and_reopens_its_index(lite: str, tmp_path: Path) -> None:
    from rag_retrievers.adapters.dense import Dense
    from test_milvus_adapters import minilm

    from rag_retrievers.engines.milvus import SchemaMismatchError, close_stores
    from rag_retrievers.engines.milvus_search import MilvusField

    hnsw = {"type": "HNSW", "M": 8, "efConstruction": 32, "ef": 16}
    dense = Dense(encoder=minilm(), engine=MilvusOptions(lite, collection="docs", index=hnsw))
    assert isinstance(dense.milvus, MilvusField)
    assert dense.milvus.index == MilvusIndex("HNSW", M=8, efConstruction=32, ef=16)
    assert dense.config()["engine"] == {
        "milvus": {"uri": lite, "collection": "docs", "field": "dense", "index": hnsw}
    }
    dense.add(_docs())
    assert dense.search("yeast", k=1)[0].id == "d1"
    dense.save(tmp_path / "dense")
    manifest = json.loads((tmp_path / "dense" / "manifest.json").read_text())
    assert manifest["config"]["engine"]["milvus"]["index"] == hnsw
    dense.close()
    close_stores(lite)

    # no index given: the saved one (not FLAT, which the collection would refuse)
    again = Dense.open(tmp_path / "dense", engine=MilvusOptions(lite, collection="docs"))
    assert again.milvus is not None
    assert again.milvus.index == MilvusIndex(**hnsw)
    assert len(again) == 4
    assert again.search("yeast", k=1)[0].id == "d1"
    again.close()
    close_stores(lite)
    # another ef is a search setting: taken
    ef = Dense.open(
        tmp_path / "dense", engine=MilvusOptions(lite, collection="docs", index={**hnsw, "ef": 40})
    )
    assert ef.milvus is not None
    assert ef.milvus.index is not None
    assert ef.milvus.index.ef == 40
    ef.close()
    close_stores(lite)
    # another index: refused, naming both and what to do
    for other in ("FLAT", {"type": "HNSW", "M": 16}):
        with pytest.raises(SchemaMismatchError) as err:
            Dense.open(
                tmp_path / "dense", engine=MilvusOptions(lite, collection="docs", index=other)
            )
        message = str(err.value)
        assert "field 'dense' is indexed HNSW (M=8, efConstruction=32)" in message
        assert "MilvusOptions(index=...)" in message
        close_stores(lite)


@pytest.mark.slow
def test_a_bad_index_changes_nothing(lite: str) -> None:
    """Refused before a collection is made: the uri holds no collection afterwards."""
    from rag_retrievers.adapters.bm25 import BM25
    from rag_retrievers.adapters.dense import Dense
    from test_milvus_adapters import minilm

    from rag_retrievers.engines.milvus import milvus_store

    with pytest.raises(InvalidInputError, match="HNSW, IVF_FLAT"):
        Dense(encoder=minilm(), engine={"milvus": {"uri": lite, "index": "DISKANN"}})
    # sparse fields are searched exactly: an approximate index is refused by name
    with pytest.raises(InvalidInputError, match="sparse fields are searched exactly"):
        BM25(engine=MilvusOptions(lite, collection="sparse", index="HNSW"))
    assert milvus_store(lite, "probe").client.list_collections() == []


@pytest.mark.slow
def test_colbert_encodings_take_the_options_index(lite: str, tmp_path: Path) -> None:
    from rag_retrievers.adapters.colbert import ColBERT
    from test_colbert import HAVE_MINILM, minilm

    from rag_retrievers.engines.milvus import SchemaMismatchError, close_stores

    if not HAVE_MINILM:
        pytest.skip("the minilm weights are not installed")
    fde = {"k_sim": 2, "repetitions": 2, "d_proj": 8, "seed": 0, "fill_empty": True}
    ivf = {"type": "IVF_FLAT", "nlist": 4, "nprobe": 4}
    colbert = ColBERT(
        encoder=minilm(),  # type: ignore[arg-type]
        engine=MilvusOptions(lite, collection="cb", index=ivf),
        mode="candidates",
        fde=fde,
    )
    assert colbert.milvus is not None
    assert colbert.milvus.field.index == MilvusIndex(**ivf)  # type: ignore[arg-type]
    assert colbert.config()["engine"]["milvus"]["index"] == ivf
    colbert.add(_docs())
    colbert.save(tmp_path / "colbert")
    close_stores(lite)
    again = ColBERT.open(tmp_path / "colbert", engine=MilvusOptions(lite, collection="cb"))
    assert again.milvus is not None
    assert again.milvus.field.index == MilvusIndex(**ivf)  # type: ignore[arg-type]
    assert again.search("yeast", k=1)[0].id == "d1"
    close_stores(lite)
    with pytest.raises(SchemaMismatchError, match="is indexed IVF_FLAT \\(nlist=4\\)"):
        ColBERT.open(
            tmp_path / "colbert", engine=MilvusOptions(lite, collection="cb", index="HNSW")
        )
