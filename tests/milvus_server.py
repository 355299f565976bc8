"""A real Milvus standalone server for tests: ``milvus-server`` (PyPI ``milvus``, Milvus 2.3.5)
on 127.0.0.1, a free port, a data folder under the test session's temporary directory.

Loaded by ``tests/conftest.py`` (``pytest_plugins``). Fixtures:

- ``milvus_server`` (session): one server shared by the tests that do not stop it; give each
  test its own collection names.
- ``milvus_fault_server`` (module): a server of the module's own that its tests may kill and
  :meth:`MilvusServer.restart` on the same data folder; each test finds it running.

The server itself is :class:`rag_retrievers.evals.bench.servers.MilvusStandalone` (the
benches start the same one): its own etcd ports, 127.0.0.1 throughout, a process group of its
own stopped by that group's id. The binaries are unpacked once per session (``DATA/bin`` is a
link to one shared folder) and every data folder is removed when its server stops for good.
Where the executable is missing the tests skip, saying so; under CI (``CI=true``) that is a
failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from rag_retrievers.evals.bench.servers import (
    STARTUP_TIMEOUT_S,
    MilvusStandalone,
    ServerStartError,
    milvus_server_executable,
)

#: the session TTL of the servers the fault tests kill
FAULT_SESSION_TTL = 10


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the dev extra installs it)", pytrace=False)
    pytest.skip(message)


def require_milvus_server() -> None:
    """Skip (fail under CI) where ``milvus-server`` is not installed."""
    if milvus_server_executable() is None:
        _missing("`milvus-server` is not installed (pip install 'milvus>=2.3.5')")


class MilvusServer(MilvusStandalone):
    """:class:`~rag_retrievers.evals.bench.servers.MilvusStandalone` for tests: a missing
    executable skips (fails under CI), a server that does not start fails the test."""

    def __init__(self, root: Path, binaries: Path, *, session_ttl: int = 30) -> None:
        require_milvus_server()
        super().__init__(root, binaries, session_ttl=session_ttl)

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        try:
            super().start(timeout)
        except ServerStartError as exc:
            pytest.fail(str(exc), pytrace=False)


@contextlib.contextmanager
def running_milvus_server(
    root: Path, binaries: Path, *, session_ttl: int = 30
) -> Iterator[MilvusServer]:
    server = MilvusServer(root, binaries, session_ttl=session_ttl)
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def milvus_binaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder of unpacked Milvus binaries for every server of the session (~250 MB)."""
    folder = tmp_path_factory.mktemp("milvus-bin")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_server(
    tmp_path_factory: pytest.TempPathFactory, milvus_binaries: Path
) -> Iterator[MilvusServer]:
    """A Milvus server for the whole session; tests must not stop it."""
    pytest.importorskip("pymilvus")
    with running_milvus_server(tmp_path_factory.mktemp("milvus-server"), milvus_binaries) as s:
        yield s


@pytest.fixture(scope="module")
def _module_fault_server(
    tmp_path_factory: pytest.TempPathFactory, milvus_binaries: Path
) -> Iterator[MilvusServer]:
    pytest.importorskip("pymilvus")
    root = tmp_path_factory.mktemp("milvus-fault")
    # sessions of a killed server expire after 10 s, not 30: each restart is 20 s shorter
    with running_milvus_server(root, milvus_binaries, session_ttl=FAULT_SESSION_TTL) as s:
        yield s


@pytest.fixture
def milvus_fault_server(_module_fault_server: MilvusServer) -> MilvusServer:
    """The module's own server, running; the test may kill and restart it."""
    if not _module_fault_server.running:
        _module_fault_server.restart()
    return _module_fault_server


def drop_collections(uri: str, names: list[str]) -> None:
    """Drop ``names`` on the server at ``uri`` (those that exist), closing our stores first."""
    from pymilvus import MilvusClient

    from rag_retrievers.engines.milvus import close_stores

    close_stores(uri)
    client = MilvusClient(uri=uri, timeout=10)
    try:
        for name in names:
            if client.has_collection(name):
                client.drop_collection(name)
    finally:
        client.close()


class ServerCollections:
    """Collection names of one test on a shared server: unique, dropped after the test."""

    def __init__(self, server: MilvusServer) -> None:
        self.server = server
        self.uri = server.uri
        self.names: list[str] = []

    def __call__(self, label: str = "c") -> str:
        name = f"{label}_{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name

    def drop(self) -> None:
        drop_collections(self.uri, self.names)


@pytest.fixture
def server_collections(milvus_server: MilvusServer) -> Iterator[ServerCollections]:
    """``server_collections()`` names a new collection on the session's server (``.uri``);
    each is dropped after the test."""
    names = ServerCollections(milvus_server)
    yield names
    names.drop()


def remembered(encode: Callable[..., Any]) -> Callable[..., Any]:
    """``encode`` (texts -> an array of vectors) with each text's vector remembered."""
    memo: dict[str, Any] = {}

    def remembering(texts: Sequence[str], show_progress: bool | None = None) -> Any:
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, encode(missing, show_progress=False), strict=True))
        if not texts:
            return encode(texts)
        return np.stack([memo[t] for t in texts])

    return remembering


def remembering_encoder(encoder: Any) -> Any:
    """A dense encoder whose document and query encodings are remembered by text: server tests
    index the same texts many times, and a document's text is often its query."""
    encoder.encode_documents = remembered(encoder.encode_documents)
    encoder.encode_queries = remembered(encoder.encode_queries)
    return encoder
