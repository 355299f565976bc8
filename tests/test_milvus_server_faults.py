"""Server faults survived, nothing acknowledged lost: a Milvus standalone server SIGKILLed (a)
between two adds, (b) during a large add, (c) during searches from several threads, then
restarted on the same data folder.

Each fault runs five times with different kill moments, half of them with the server coming
back while the client retries (the call returns), half with it staying away past the retries
(the call raises ``MilvusUnavailableError`` naming the uri; the server is restarted after).
Afterwards every document whose add returned is searchable, ``len()`` agrees with the server,
an add that raised repeats without duplicates, and ``Retriever.open(path, engine=...)`` resyncs
the collection from a snapshot. The scenarios themselves are in ``server_faults.py`` (shared
with ``test_chroma_server_faults.py``).

The server these tests kill is the module's own (``milvus_fault_server``), with a 10 s session
TTL: a restarted server answers "collection not loaded" until its killed predecessor's sessions
expire (30 s with Milvus's default), and the client's retries wait through that (about a minute
by default; two minutes here, as the restart itself may take 40 s on a loaded machine).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.milvus_server, pytest.mark.slow]

pytest.importorskip("pymilvus")
pytest.importorskip("sentence_transformers")

from milvus_server import MilvusServer  # noqa: E402
from rag_retrievers.adapters.dense import Dense  # noqa: E402
from server_faults import (  # noqa: E402
    Engine,
    encoder,
    kill_between_two_adds,
    kill_during_a_large_add,
    kill_during_searches_from_threads,
    moment_id,
    request_ids,
)

from rag_retrievers.encoders.models import offline_names  # noqa: E402
from rag_retrievers.engines.milvus import MilvusStore, close_stores  # noqa: E402
from rag_retrievers.engines.options import MilvusOptions  # noqa: E402
from rag_retrievers.errors import MilvusUnavailableError  # noqa: E402

if "minilm" not in offline_names("dense"):
    pytest.skip("the minilm weights are not installed", allow_module_level=True)


@pytest.fixture
def server(milvus_fault_server: MilvusServer) -> Iterator[MilvusServer]:
    yield milvus_fault_server
    close_stores(milvus_fault_server.uri)


_names = itertools.count()


def new_dense(server: MilvusServer) -> tuple[Dense, MilvusOptions]:
    """A Dense on ``server`` that searches in Milvus and writes in small requests (batches of
    100 documents, requests of 50 rows), so that a kill can land between many of them."""
    options = MilvusOptions(server.uri, collection=f"faults_{next(_names)}")
    dense = Dense(encoder=encoder(), engine=options, exact_search_max=0)
    dense.add_batch_size = 100  # type: ignore[misc]
    store(dense).insert_batch_size = 50
    return dense, options


def store(dense: Dense) -> MilvusStore:
    assert dense.milvus is not None
    return dense.milvus.store


MILVUS = Engine(
    new_dense=new_dense,
    rows=store,
    upserter=lambda dense: store(dense).client,
    batch_size=100,
    requests_per_batch=2,
    unavailable=MilvusUnavailableError,
    label="Milvus",
    address=lambda server: repr(server.uri),
    hint="start the server",
)


# -- the faults: (a) between two adds, (b) during a large add, (c) during searches -----------


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.0, False), (0.1, True), (0.4, False), (1.0, True), (2.5, False)],
    ids=moment_id,
)
def test_kill_between_two_adds(server: MilvusServer, kill_after_s: float, back: bool) -> None:
    """A first add of 150 documents returned; the server is killed ``kill_after_s`` later."""
    kill_between_two_adds(MILVUS, server, kill_after_s, back, size=150)


#: (request_number, mid, back): killed before the request is sent, or while in flight
LARGE_ADD_KILLS = [
    (1, False, False), (4, True, True), (7, False, True), (9, True, False), (11, True, False)
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_number", "mid", "back"), LARGE_ADD_KILLS, ids=request_ids(LARGE_ADD_KILLS)
)
def test_kill_during_a_large_add(
    server: MilvusServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request_number: int,
    mid: bool,
    back: bool,
) -> None:
    """600 documents in 6 batches of 100, each written in 2 requests of 50 rows, after a
    snapshot of 80: the kills the client gives up on are the first of a batch's two."""
    snapshot = tmp_path / "snapshot"
    kill_during_a_large_add(
        MILVUS, server, monkeypatch, snapshot, request_number, mid, back, (80, 600)
    )


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.1, True), (0.3, False), (0.6, True), (1.0, False), (1.5, True)],
    ids=moment_id,
)
def test_kill_during_searches_from_threads(
    server: MilvusServer, kill_after_s: float, back: bool
) -> None:
    """Searches from 3 threads; a search that raises raises MilvusUnavailableError."""
    kill_during_searches_from_threads(MILVUS, server, kill_after_s, back)
