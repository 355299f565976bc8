"""Chroma server faults survived, nothing acknowledged lost: ``chroma run`` SIGKILLed (a) between
two adds, (b) during a large add, (c) during searches from several threads, then restarted on
the same path and port.

Each fault runs five times with different kill moments, some with the server coming back while
the client retries (the call returns), some with it staying away past the retries (the call
raises ``ChromaUnavailableError`` naming host:port; the server is restarted after). Afterwards
every document whose add returned is on the server and found by its own text, ``len()`` agrees
with the server's count, an add that raised repeats without duplicates (upserts by id), and
``Retriever.open(path, engine=...)`` resyncs the collection from a snapshot.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("chromadb")
pytest.importorskip("sentence_transformers")

from chroma_server import ChromaProcess  # noqa: E402
from milvus_server import remembering_encoder  # noqa: E402
from rag_retrievers.adapters.dense import Dense  # noqa: E402

from rag_retrievers.base import Retriever  # noqa: E402
from rag_retrievers.encoders.dense import DenseEncoder  # noqa: E402
from rag_retrievers.encoders.models import offline_names  # noqa: E402
from rag_retrievers.engines.chroma import ChromaCollection  # noqa: E402
from rag_retrievers.engines.options import ChromaOptions  # noqa: E402
from rag_retrievers.errors import ChromaUnavailableError  # noqa: E402
from rag_retrievers.records import Document  # noqa: E402

if "minilm" not in offline_names("dense"):
    pytest.skip("the minilm weights are not installed", allow_module_level=True)

WORDS = """
apple river stone cloud violin engine garden copper lantern harbor meadow pilot quartz saddle
thunder velvet willow anchor basket candle desert falcon glacier hammer island jacket kettle
ladder marble needle orchard pepper rocket shadow timber umbrella valley walnut yarrow zebra
beacon cactus dolphin ember fossil granite hollow ivory jungle kernel lemon magnet nectar
""".split()


def corpus(n: int, start: int = 0) -> list[Document]:
    """``n`` documents, ids ``d{start}``..., distinct texts of 8 words, a topic each."""
    rng = np.random.default_rng(start + 29)
    return [
        Document(
            id=f"d{i:05d}",
            text=f"{' '.join(rng.choice(WORDS, size=8))} number {i}",
            metadata={"topic": i % 4},
        )
        for i in range(start, start + n)
    ]


@cache
def encoder() -> DenseEncoder:
    """MiniLM with its encodings remembered by text (each document's text is also a query)."""
    return remembering_encoder(DenseEncoder("minilm"))


# -- the server, the retriever, the kills ------------------------------------------------------


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


class Outage:
    """Kills ``server`` and brings it back: ``back`` restarts it at once while the client
    retries; otherwise it stays away until :meth:`end` (the client's retries are cut to one
    quick one, so its call gives up and raises)."""

    def __init__(self, server: ChromaProcess, collection: ChromaCollection, back: bool) -> None:
        self.server, self.collection, self.back = server, collection, back
        self.killed = threading.Event()
        self.restarter: threading.Thread | None = None
        self.error: BaseException | None = None
        if back:  # generous: a loaded machine may take a while to restart it
            collection.retries, collection.backoff = 20, 0.2
        else:
            collection.retries, collection.backoff = 1, 0.05

    def kill(self) -> None:
        self.server.kill()
        self.killed.set()
        if self.back:
            self.restarter = threading.Thread(target=self._restart, daemon=True)
            self.restarter.start()

    def _restart(self) -> None:
        try:
            time.sleep(0.3)  # the client meets a server that is gone
            self.server.start()
        except BaseException as exc:  # pytest.fail in a thread: reported by end()
            self.error = exc

    def end(self) -> None:
        """Wait for a restart under way, or restart a server left away; restore the retries."""
        assert self.killed.wait(timeout=60), "the server was never killed"
        if self.restarter is not None:
            self.restarter.join(timeout=300)
        if self.error is not None:
            raise self.error
        if not self.server.running:
            self.server.start()
        for name in ("retries", "backoff"):
            self.collection.__dict__.pop(name, None)  # the class defaults again


def kill_at_request(
    monkeypatch: pytest.MonkeyPatch, dense: Dense, outage: Outage, k: int, mid: bool
) -> None:
    """Kill the server when the ``k``-th upsert request starts: before it is sent, or (``mid``)
    from another thread a moment after, while it may be in flight."""
    calls = itertools.count(1)
    collection = chroma(dense).collection
    original = collection.upsert

    def upsert(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == k:
            if mid:
                threading.Timer(0.003, outage.kill).start()
            else:
                outage.kill()
        return original(*args, **kwargs)

    monkeypatch.setattr(collection, "upsert", upsert)


def check_nothing_acknowledged_lost(dense: Dense, expected: Sequence[Document]) -> None:
    """``dense`` holds ``expected`` (its adds returned), each is on the server once and found
    first by its own text."""
    held = {d.id for d in dense._docs.live_documents()}
    assert held == {d.id for d in expected}
    assert len(dense) == len(expected)
    on_server = chroma(dense).ids()
    assert len(on_server) == len(set(on_server))  # no id twice
    assert held <= set(on_server)
    hits = dense.search_batch([d.text for d in expected], k=1)
    assert [h[0].id for h in hits] == [d.id for d in expected]


def check_exactly(dense: Dense, expected: Sequence[Document]) -> None:
    """The server holds exactly ``expected``, once each, and ``len()`` agrees."""
    check_nothing_acknowledged_lost(dense, expected)
    assert sorted(chroma(dense).ids()) == sorted(d.id for d in expected)
    assert chroma(dense).count() == len(dense) == len(expected)


def expect_unavailable(server: ChromaProcess, call: Callable[[], object]) -> None:
    with pytest.raises(ChromaUnavailableError) as err:
        call()
    address = f"{server.server.host}:{server.server.port}"
    assert f"the Chroma server at {address} after 2 attempts" in str(err.value)
    assert "chroma run" in str(err.value)


# -- (a) between two adds ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.0, False), (0.1, True), (0.4, False), (1.0, True), (2.0, False)],
    ids=lambda v: f"{v}s" if isinstance(v, float) else ("back" if v else "away"),
)
def test_kill_between_two_adds(server: ChromaProcess, kill_after_s: float, back: bool) -> None:
    """The first add returned; the server is killed ``kill_after_s`` later; the second add
    either returns (the server came back while it retried) or raises and is repeated."""
    first, second = corpus(120), corpus(120, start=120)
    dense, _ = new_dense(server)
    dense.add(first)
    time.sleep(kill_after_s)
    outage = Outage(server, chroma(dense), back)
    outage.kill()
    if back:
        dense.add(second)  # retried until the server is back
        outage.end()
        check_exactly(dense, first + second)
        return
    expect_unavailable(server, lambda: dense.add(second))
    outage.end()
    check_nothing_acknowledged_lost(dense, first)  # the second add changed nothing here
    dense.add(second)  # repeated: upserts by id
    check_exactly(dense, first + second)


# -- (b) during a large add --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_number", "mid", "back"),
    [(1, False, False), (3, True, True), (5, False, True), (7, True, False), (10, True, False)],
    ids=["req1-before-away", "req3-in-flight-back", "req5-before-back", "req7-in-flight-away",
         "req10-in-flight-away"],
)  # fmt: skip
def test_kill_during_a_large_add(
    server: ChromaProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request_number: int,
    mid: bool,
    back: bool,
) -> None:
    """500 documents in 10 batches of 50, one upsert request each: the server is killed as
    request ``request_number`` starts or a few ms after (in flight, or already answered: then
    the next request fails). A snapshot saved before the add reopens onto the restarted server
    and resyncs it."""
    before, large = corpus(60, start=1000), corpus(500)
    dense, options = new_dense(server)
    dense.add(before)
    dense.save(tmp_path / "snapshot")
    outage = Outage(server, chroma(dense), back)
    kill_at_request(monkeypatch, dense, outage, request_number, mid)
    if back:
        dense.add(large)
        outage.end()
        check_exactly(dense, before + large)
    else:
        expect_unavailable(server, lambda: dense.add(large))
        outage.end()
        held, rest = divmod(len(dense) - len(before), 50)  # the batches whose request returned
        done = request_number - 1
        assert rest == 0
        assert held in ((done, done + 1) if mid else (done,))
        check_nothing_acknowledged_lost(dense, before + large[: 50 * held])
        dense.add(large)  # the add that raised, repeated
        check_exactly(dense, before + large)
    monkeypatch.undo()
    reopened = Retriever.open(tmp_path / "snapshot", engine=options)
    assert isinstance(reopened, Dense)
    check_exactly(reopened, before)  # the collection is the snapshot again


# -- (c) during searches from several threads --------------------------------------------------


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.1, True), (0.3, False), (0.6, True), (1.0, False), (1.5, True)],
    ids=lambda v: f"{v}s" if isinstance(v, float) else ("back" if v else "away"),
)
def test_kill_during_searches_from_threads(
    server: ChromaProcess, kill_after_s: float, back: bool
) -> None:
    """Three threads search in a loop; the server is killed ``kill_after_s`` after they start.
    Every search that returns gives the hits it gave before the kill; one that raises raises
    ChromaUnavailableError (server away past the retries); after the restart all succeed."""
    docs = corpus(200, start=2000)
    dense, _ = new_dense(server)
    dense.add(docs)
    queries = [d.text for d in docs[::10]]
    baseline = [[h.id for h in hits] for hits in dense.search_batch(queries, k=5)]
    assert [b[0] for b in baseline] == [d.id for d in docs[::10]]
    stop = threading.Event()
    outage = Outage(server, chroma(dense), back)
    results: list[list[tuple[float, list[list[str]] | BaseException]]] = [[], [], []]

    def search_loop(out: list[tuple[float, list[list[str]] | BaseException]], n: int) -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            chunk = queries[(n + i) % 4 :: 4]
            try:
                hits = dense.search_batch(chunk, k=5)
                out.append((time.monotonic(), [[h.id for h in q] for q in hits]))
            except BaseException as exc:
                out.append((time.monotonic(), exc))
                time.sleep(0.05)

    threads = [
        threading.Thread(target=search_loop, args=(results[n], n), daemon=True) for n in range(3)
    ]
    for t in threads:
        t.start()
    time.sleep(kill_after_s)
    outage.kill()
    killed_at = time.monotonic()
    if not back:
        time.sleep(1.0)  # every thread gives up at least once while the server is away
    outage.end()
    restarted_at = time.monotonic()
    deadline = restarted_at + 120
    while any(not r or r[-1][0] < restarted_at for r in results) and time.monotonic() < deadline:
        time.sleep(0.1)  # until each thread has finished a search begun after the restart
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    address = f"{server.server.host}:{server.server.port}"
    for n, out in enumerate(results):
        assert out
        assert out[-1][0] >= restarted_at  # searches work again
        assert not isinstance(out[-1][1], BaseException)
        errors = [r for _, r in out if isinstance(r, BaseException)]
        for error in errors:
            assert isinstance(error, ChromaUnavailableError), repr(error)
            assert address in str(error)
        if back:
            assert not errors  # the retries waited for the server
        else:
            assert any(t >= killed_at for t, r in out if isinstance(r, BaseException))
        for i, (_, found) in enumerate(out):
            if not isinstance(found, BaseException):
                chunk = queries[(n + i) % 4 :: 4]
                assert found == [baseline[queries.index(q)] for q in chunk]
    check_exactly(dense, docs)


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
    check_exactly(dense, docs)
