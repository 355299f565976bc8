"""Chroma server faults survived, nothing acknowledged lost: ``chroma run`` SIGKILLed (a) between
two adds, (b) during a large add, (c) during searches from several threads, then restarted on
the same path and port.

Each fault runs five times with different kill moments, some with the server coming back while
the client retries (the call returns), some with it staying away past the retries (the call
raises ``ChromaUnavailableError`` naming host:port; the server is restarted after). Afterwards
every document whose add returned is on the server and found by its own text, ``len()`` agrees
with the server's count, an add that raised repeats without duplicates (upserts by id), and
``Retriever.open(path, engine=...)`` resyncs the collection from a snapshot. The scenarios
themselves are in ``server_faults.py`` (shared with ``test_milvus_server_faults.py``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("chromadb")
pytest.importorskip("sentence_transformers")

from chroma_server import ChromaProcess  # noqa: E402
from rag_retrievers.adapters.dense import Dense  # noqa: E402
from server_faults import (  # noqa: E402
    Engine,
    corpus,
    encoder,
    kill_between_two_adds,
    kill_during_a_large_add,
    kill_during_searches_from_threads,
    moment_id,
    request_ids,
)

from rag_retrievers.encoders.models import offline_names  # noqa: E402
from rag_retrievers.engines.chroma import ChromaCollection  # noqa: E402
from rag_retrievers.engines.options import ChromaOptions  # noqa: E402
from rag_retrievers.errors import ChromaUnavailableError  # noqa: E402

if "minilm" not in offline_names("dense"):
    pytest.skip("the minilm weights are not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def _module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaProcess]:
    process = ChromaProcess(tmp_path_factory.mktemp("chroma-faults") / "data")
    try:
        process.start()
        yield process
    finally:
        process.stop()  # by its process group, whatever the tests did


@pytest.fixture
def server(_module_server: ChromaProcess) -> ChromaProcess:
    """The module's own server, running; the test may kill and restart it."""
    if not _module_server.running:
        _module_server.restart()
    return _module_server


_names = itertools.count()


def new_dense(server: ChromaProcess) -> tuple[Dense, ChromaOptions]:
    """A Dense on ``server`` that searches there and writes batches of 50 documents (one
    request each), so that a kill can land between many of them."""
    s = server.server
    options = ChromaOptions(host=s.host, port=s.port, collection=f"faults-{next(_names)}")
    dense = Dense(encoder=encoder(), engine=options, exact_search_max=0)
    dense.add_batch_size = 50  # type: ignore[misc]
    return dense, options


def chroma(dense: Dense) -> ChromaCollection:
    return dense._chroma


CHROMA = Engine(
    new_dense=new_dense,
    rows=chroma,
    upserter=lambda dense: chroma(dense).collection,
    batch_size=50,
    requests_per_batch=1,
    unavailable=ChromaUnavailableError,
    label="the Chroma server",
    address=lambda server: f"{server.server.host}:{server.server.port}",
    hint="chroma run",
    back_backoff=0.2,
    restart_delay_s=0.3,
)


# -- the faults: (a) between two adds, (b) during a large add, (c) during searches -----------


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.0, False), (0.1, True), (0.4, False), (1.0, True), (2.0, False)],
    ids=moment_id,
)
def test_kill_between_two_adds(server: ChromaProcess, kill_after_s: float, back: bool) -> None:
    """A first add of 120 documents returned; the server is killed ``kill_after_s`` later."""
    kill_between_two_adds(CHROMA, server, kill_after_s, back, size=120)


#: (request_number, mid, back): killed before the request is sent, or while in flight
LARGE_ADD_KILLS = [
    (1, False, False), (3, True, True), (5, False, True), (7, True, False), (10, True, False)
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_number", "mid", "back"), LARGE_ADD_KILLS, ids=request_ids(LARGE_ADD_KILLS)
)
def test_kill_during_a_large_add(
    server: ChromaProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request_number: int,
    mid: bool,
    back: bool,
) -> None:
    """500 documents in 10 batches of 50, one upsert request each, after a snapshot of 60:
    a request killed in flight may also have been answered."""
    snapshot = tmp_path / "snapshot"
    kill_during_a_large_add(
        CHROMA, server, monkeypatch, snapshot, request_number, mid, back, (60, 500)
    )


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.1, True), (0.3, False), (0.6, True), (1.0, False), (1.5, True)],
    ids=moment_id,
)
def test_kill_during_searches_from_threads(
    server: ChromaProcess, kill_after_s: float, back: bool
) -> None:
    """Searches from 3 threads; a search that raises raises ChromaUnavailableError."""
    kill_during_searches_from_threads(CHROMA, server, kill_after_s, back)


def test_a_server_that_stays_away_is_named_after_the_retries(server: ChromaProcess) -> None:
    """A killed server that does not come back fails the call with ChromaUnavailableError
    naming host:port after the retries, waiting longer each time (3 retries from 0.2 s here;
    about a minute by default); the retriever works again once the server is back."""
    dense, _ = new_dense(server)
    docs = corpus(20, start=5000)
    dense.add(docs)
    c = chroma(dense)
    c.retries, c.backoff = 3, 0.2
    server.kill()
    started = time.monotonic()
    with pytest.raises(ChromaUnavailableError, match="after 4 attempts") as err:
        dense.search(docs[0].text, k=3)
    assert time.monotonic() - started >= 0.2 + 0.4 + 0.8  # it waited, doubling
    assert f"{server.server.host}:{server.server.port}" in str(err.value)
    del c.retries, c.backoff
    server.start()
