"""A collection folder from someone else: what its manifest can and cannot make a process do.

The attacker of these tests edits a saved collection and re-signs everything (file digests and
the manifest's own digest, with :func:`rag_retrievers.index.storage.write_manifest`), so every check
here is one that holds against a deliberate edit, not only against damage.
"""

from __future__ import annotations

import errno
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from rag_retrievers import (
    BM25,
    CorruptCollectionError,
    Document,
    ForeignCollectionError,
    Hybrid,
    InvalidInputError,
    Retriever,
)
from rag_retrievers.base import EngineNotReconnectedWarning
from rag_retrievers.engines.options import MilvusOptions
from rag_retrievers.errors import CollectionError, CollectionWriteError
from rag_retrievers.index.storage import (
    DIGEST,
    MANIFEST,
    manifest_digest,
    read_manifest,
    save_collection,
    upgrade_collection,
    write_manifest,
)


def corpus() -> list[Document]:
    return [
        Document(id=f"d{i}", text=f"alpha beta {word}", metadata={"n": i})
        for i, word in enumerate(["gamma", "delta", "epsilon", "zeta", "eta"])
    ]


def saved(tmp_path: Path, retriever: Retriever | None = None) -> Path:
    retriever = BM25() if retriever is None else retriever
    retriever.add(corpus())
    return retriever.save(tmp_path / "col")


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))


def signature(retriever: Retriever) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in retriever.search(q, k=5)] for q in ("alpha", "gamma zeta")]


# -- finding 1: opening a collection never runs code ------------------------------------------


@pytest.mark.slow
def test_a_manifest_cannot_ask_for_trust_remote_code(tmp_path: Path) -> None:
    from rag_retrievers.adapters.dense import Dense
    from test_dense import write_tiny_model

    model = write_tiny_model(tmp_path / "model", hidden=32)
    path = saved(tmp_path, Dense(str(model)))
    marker = tmp_path / "code-ran"
    (model / "evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "class Evil:\n    pass\n"
    )
    modules = json.loads((model / "modules.json").read_text())
    modules[0]["type"] = "evil.Evil"
    (model / "modules.json").write_text(json.dumps(modules))
    manifest = manifest_of(path)
    manifest["config"]["trust_remote_code"] = True
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match="'trust_remote_code'"):
        Retriever.open(path)
    assert not marker.exists()


# -- finding 2: opening never connects to or writes to an engine the caller did not name ------


def _listening_socket() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    return server


def test_a_manifest_cannot_make_open_overwrite_an_engine_collection(tmp_path: Path) -> None:
    path = saved(tmp_path)
    manifest = manifest_of(path)
    manifest["config"].update(
        uri=str(tmp_path / "milvus.db"), collection="someone_elses", overwrite=True
    )
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match="'overwrite'") as err:
        Retriever.open(path)
    assert str(path) in str(err.value)
    assert not (tmp_path / "milvus.db").exists()  # nothing was created, let alone dropped


@pytest.mark.parametrize("form", ["engine", "flat (written before engine options were one value)"])
def test_an_engine_address_in_a_manifest_is_never_connected_to(tmp_path: Path, form: str) -> None:
    path = saved(tmp_path)
    before = signature(BM25.open(path))
    listener = _listening_socket()
    port = listener.getsockname()[1]
    manifest = manifest_of(path)
    address = {"uri": f"http://127.0.0.1:{port}", "collection": "victim"}
    if form == "engine":
        manifest["config"]["engine"] = {"milvus": {**address, "token": "t", "overwrite": True}}
    else:
        manifest["config"].update(address)
    write_manifest(path, manifest)
    with pytest.warns(EngineNotReconnectedWarning, match="collection='victim'"):
        reopened = Retriever.open(path)
    with pytest.raises(TimeoutError):
        listener.accept()  # no connection was attempted
    listener.close()
    assert reopened.milvus is None  # type: ignore[attr-defined]
    assert signature(reopened) == before


def test_reconnecting_names_the_collection_too(tmp_path: Path) -> None:
    path = saved(tmp_path)
    with pytest.raises(InvalidInputError, match="needs its collection named"):
        Retriever.open(path, engine=MilvusOptions(str(tmp_path / "milvus.db")))
    assert not (tmp_path / "milvus.db").exists()


@pytest.mark.parametrize(
    "key", ["token", "overwrite", "_adopt", "host", "workdir", "device", "trust_remote_code"]
)
def test_config_keys_that_config_never_writes_are_refused_by_name(tmp_path: Path, key: str) -> None:
    path = saved(tmp_path)
    manifest = manifest_of(path)
    manifest["config"][key] = "x"
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match=repr(key)):
        Retriever.open(path)


def test_a_hybrid_members_config_is_checked_like_a_collections(tmp_path: Path) -> None:
    path = saved(tmp_path, Hybrid([BM25(), BM25(k1=1.2)]))
    manifest = manifest_of(path)
    manifest["config"]["retrievers"][1]["config"].update(
        uri=str(tmp_path / "milvus.db"), collection="c", overwrite=True
    )
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match="'overwrite'"):
        Retriever.open(path)
    assert not (tmp_path / "milvus.db").exists()


# -- finding 6: the manifest is protected --------------------------------------------------------


def test_a_changed_manifest_that_was_not_re_signed_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    text = (path / MANIFEST).read_text()
    (path / MANIFEST).write_text(text.replace('"k1": 0.9', '"k1": 0.8'))
    with pytest.raises(CorruptCollectionError, match="digest"):
        Retriever.open(path)


def test_a_manifest_without_its_digest_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    manifest = manifest_of(path)
    del manifest[DIGEST]
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptCollectionError, match=DIGEST):
        Retriever.open(path)


@pytest.mark.parametrize("drop", ["one", "all"])
def test_the_file_list_must_name_exactly_the_generations_files(tmp_path: Path, drop: str) -> None:
    path = saved(tmp_path)
    manifest = manifest_of(path)
    data = path / manifest["data"]
    (data / "documents.jsonl").write_text('{"id": "evil", "text": "hand edited"}\n')
    manifest["files"] = (
        {}
        if drop == "all"
        else {name: info for name, info in manifest["files"].items() if name != "documents.jsonl"}
    )
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match="not listed"):
        Retriever.open(path)


def test_duplicate_keys_and_nan_in_a_manifest_are_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    text = (path / MANIFEST).read_text()
    (path / MANIFEST).write_text(text.replace('"k1": 0.9', '"k1": 0.9, "k1": 5'))
    with pytest.raises(CorruptCollectionError, match="twice"):
        Retriever.open(path)
    (path / MANIFEST).write_text(text.replace('"k1": 0.9', '"k1": NaN'))
    with pytest.raises(CorruptCollectionError, match="NaN"):
        Retriever.open(path)


def test_a_deeply_nested_manifest_is_corrupt_not_a_recursion_error(tmp_path: Path) -> None:
    path = saved(tmp_path)
    (path / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CollectionError):
        Retriever.open(path)


def test_the_digest_is_canonical_not_byte_for_byte(tmp_path: Path) -> None:
    path = saved(tmp_path)
    manifest = manifest_of(path)
    assert manifest[DIGEST] == manifest_digest(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))  # other whitespace, same content
    assert read_manifest(path)["config"] == manifest["config"]


# -- nothing outside the folder is read ----------------------------------------------------------


def test_a_data_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    data = path / manifest_of(path)["data"]
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes((data / "documents.jsonl").read_bytes())  # same bytes, same digest
    (data / "documents.jsonl").unlink()
    (data / "documents.jsonl").symlink_to(outside)
    with pytest.raises(CorruptCollectionError, match="not a plain file"):
        Retriever.open(path)


def test_a_manifest_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    outside = tmp_path / "outside.json"
    (path / MANIFEST).rename(outside)
    (path / MANIFEST).symlink_to(outside)
    with pytest.raises(CorruptCollectionError, match="symbolic link"):
        Retriever.open(path)


def test_a_generation_folder_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    name = manifest_of(path)["data"]
    (path / name).rename(tmp_path / "elsewhere")
    (path / name).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CorruptCollectionError, match="missing"):
        Retriever.open(path)


# -- finding 13: the smaller ones in storage ---------------------------------------------------


def test_config_errors_at_open_name_the_collection(tmp_path: Path) -> None:
    path = saved(tmp_path)
    manifest = manifest_of(path)
    manifest["config"]["k1"] = -1
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match="k1") as err:
        Retriever.open(path)
    assert str(path) in str(err.value)


def test_a_format_version_of_the_wrong_type_says_so(tmp_path: Path) -> None:
    path = saved(tmp_path)
    manifest = manifest_of(path)
    manifest["format_version"] = "2"
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match="format_version '2' is not an integer"):
        Retriever.open(path)


def test_format_1_is_refused_until_upgraded_by_the_owner(tmp_path: Path) -> None:
    path = saved(tmp_path)
    before = signature(BM25.open(path))
    manifest = manifest_of(path)
    del manifest[DIGEST]
    manifest["format_version"] = 1
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ForeignCollectionError, match=r"format 1.*upgrade_collection"):
        Retriever.open(path)
    upgrade_collection(path)
    assert signature(BM25.open(path)) == before


@pytest.mark.parametrize("bad", ["a\x00b", "", "   "])
def test_a_path_no_file_system_takes_is_invalid_input(tmp_path: Path, bad: str) -> None:
    bm25 = BM25()
    bm25.add(corpus())
    with pytest.raises(InvalidInputError, match="collection path"):
        bm25.save(bad)
    with pytest.raises(InvalidInputError, match="collection path"):
        Retriever.open(bad)


def test_saving_under_a_file_is_a_collection_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    bm25 = BM25()
    bm25.add(corpus())
    with pytest.raises(ForeignCollectionError, match="not a directory"):
        bm25.save(tmp_path / "file" / "col")


def test_a_failed_save_leaves_no_temporary_folder_and_the_old_state(tmp_path: Path) -> None:
    path = saved(tmp_path)
    before = signature(BM25.open(path))

    def full_disk(folder: Path) -> None:
        (folder / "documents.jsonl").write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(CollectionWriteError, match="no space left on device") as err:
        save_collection(path, retriever="bm25", config={}, write_data=full_disk)
    assert "\n" not in str(err.value)
    assert not list(path.glob(".gen-*"))
    assert signature(BM25.open(path)) == before


def test_a_short_write_is_reported_as_a_full_disk(tmp_path: Path) -> None:
    path = saved(tmp_path)

    def short_write(folder: Path) -> None:
        raise OSError("2400 requested and 992 written")

    with pytest.raises(CollectionWriteError, match="no space left on device"):
        save_collection(path, retriever="bm25", config={}, write_data=short_write)
    assert not list(path.glob(".gen-*"))


def test_a_bad_member_config_key_is_invalid_input_not_a_type_error() -> None:
    with pytest.raises(InvalidInputError, match="bogus"):
        Hybrid([{"retriever": "bm25", "config": {"bogus": 1}}, "bm25"])


# -- finding 10: records that digests cannot vouch for ------------------------------------------


def _resign_file(path: Path, name: str, content: bytes) -> None:
    import hashlib

    manifest = manifest_of(path)
    (path / manifest["data"] / name).write_bytes(content)
    manifest["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    write_manifest(path, manifest)


def test_a_duplicate_document_line_is_corrupt_not_a_numpy_error(tmp_path: Path) -> None:
    path = saved(tmp_path)
    data = path / manifest_of(path)["data"]
    lines = (data / "documents.jsonl").read_bytes().splitlines(keepends=True)
    _resign_file(path, "documents.jsonl", b"".join([*lines[:-1], lines[0]]))
    with pytest.raises(CorruptCollectionError, match="occurs twice"):
        Retriever.open(path)


def test_a_documents_file_that_is_not_utf8_is_corrupt(tmp_path: Path) -> None:
    path = saved(tmp_path)
    _resign_file(path, "documents.jsonl", b'{"id": "\xff\xfe", "text": "x"}\n' * 5)
    with pytest.raises(CorruptCollectionError):
        Retriever.open(path)


# -- finding 5: a reader retries when a concurrent save removed its generation -----------------


def test_open_retries_when_its_generation_vanishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic form of the race: the generation read first is removed (by "another
    process") before its files are read; open reads the new manifest and succeeds."""
    bm25 = BM25()
    bm25.add(corpus())
    path = bm25.save(tmp_path / "col")
    bm25.add([Document(id="new", text="alpha omega")])
    from rag_retrievers import base
    from rag_retrievers.index import storage

    real = storage.check_data_files
    calls = {"n": 0}

    def racing(root: Path, manifest: dict[str, Any], *, verify: bool = True) -> None:
        calls["n"] += verify  # saves check the old manifest too, without verify
        if calls["n"] == 1 and verify:  # saves publish gen 2, then gen 3, removing gen 1
            bm25.save(path)
            bm25.save(path)
        real(root, manifest, verify=verify)

    monkeypatch.setattr(storage, "check_data_files", racing)
    reopened = base.Retriever.open(path)
    assert calls["n"] == 2
    assert len(reopened) == 6


def test_a_vanished_generation_that_is_still_current_is_corrupt(tmp_path: Path) -> None:
    path = saved(tmp_path)
    import shutil

    shutil.rmtree(path / manifest_of(path)["data"])
    with pytest.raises(CorruptCollectionError, match="missing"):
        Retriever.open(path)


# -- bad input at the edges: one error of ours, one line -------------------------------------


def test_bad_langchain_options_are_one_line_input_errors() -> None:
    bm25 = BM25()
    with pytest.raises(InvalidInputError, match=r"^as_langchain\(\): tags: .*valid list$"):
        bm25.as_langchain(k=2, tags=5)  # type: ignore[arg-type]


def test_a_query_id_that_is_a_bool_is_a_data_error(tmp_path: Path) -> None:
    from rag_retrievers.evals.beir import DataFormatError, read_queries

    (tmp_path / "queries.jsonl").write_text('{"_id": true, "text": "q"}\n')
    with pytest.raises(DataFormatError, match=r"queries\.jsonl:1"):
        read_queries(tmp_path / "queries.jsonl")
