"""Server faults survived, nothing acknowledged lost: a Milvus standalone server SIGKILLed (a)
between two adds, (b) during a large add, (c) during searches from several threads, then
restarted on the same data folder.

Each fault runs five times with different kill moments, half of them with the server coming
back while the client retries (the call returns), half with it staying away past the retries
(the call raises ``MilvusUnavailableError`` naming the uri; the server is restarted after).
Afterwards every document whose add returned is searchable, ``len()`` agrees with the server,
an add that raised repeats without duplicates, and ``Retriever.open(path, engine=...)`` resyncs
the collection from a snapshot.

The server these tests kill is the module's own (``milvus_fault_server``), with a 10 s session
TTL: a restarted server answers "collection not loaded" until its killed predecessor's sessions
expire (30 s with Milvus's default), and the client's retries wait through that (about a minute
by default; two minutes here, as the restart itself may take 40 s on a loaded machine).
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

pytestmark = [pytest.mark.milvus_server, pytest.mark.slow]

pytest.importorskip("pymilvus")
pytest.importorskip("sentence_transformers")

from milvus_server import MilvusServer, remembering_encoder  # noqa: E402
from rag_retrievers.adapters.dense import Dense  # noqa: E402

from rag_retrievers.base import Retriever  # noqa: E402
from rag_retrievers.encoders.dense import DenseEncoder  # noqa: E402
from rag_retrievers.encoders.models import offline_names  # noqa: E402
from rag_retrievers.engines.milvus import MilvusStore, close_stores  # noqa: E402
from rag_retrievers.engines.options import MilvusOptions  # noqa: E402
from rag_retrievers.errors import MilvusUnavailableError  # noqa: E402
from rag_retrievers.records import Document  # noqa: E402

if "minilm" not in offline_names("dense"):
    pytest.skip("the minilm weights are not installed", allow_module_level=True)

WORDS = """
apple river stone cloud violin engine garden copper lantern harbor meadow pilot quartz saddle
thunder velvet willow anchor basket candle desert falcon glacier hammer island jacket kettle
ladder marble needle orchard pepper rocket shadow timber umbrella valley walnut yarrow zebra
beacon cactus dolphin ember fossil granite hollow ivory jungle kernel lemon magnet nectar
oyster pebble quiver raven summit tulip urchin vessel wizard xylem yogurt zephyr bramble cobalt
""".split()


def corpus(n: int, start: int = 0) -> list[Document]:
    """``n`` documents, ids ``d{start}``..., distinct texts of 8 words, a topic each."""
    rng = np.random.default_rng(start + 17)
    docs = []
    for i in range(start, start + n):
        words = " ".join(rng.choice(WORDS, size=8))
        docs.append(Document(id=f"d{i:05d}", text=f"{words} number {i}", metadata={"topic": i % 4}))
    return docs


@cache
def encoder() -> DenseEncoder:
    """MiniLM with its encodings remembered by text: the same corpus is indexed by every case
    and each document's text is also its query."""
    return remembering_encoder(DenseEncoder("minilm"))


# -- the server, the retriever, the kills ------------------------------------------------------


@pytest.fixture
def server(milvus_fault_server: MilvusServer) -> Iterator[MilvusServer]:
    yield milvus_fault_server
    close_stores(milvus_fault_server.uri)


_names = itertools.count()


def new_dense(server: MilvusServer, collection: str | None = None) -> tuple[Dense, MilvusOptions]:
    """A Dense on ``server`` that searches in Milvus and writes in small requests (batches of
    100 documents, requests of 50 rows), so that a kill can land between many of them."""
    options = MilvusOptions(server.uri, collection=collection or f"faults_{next(_names)}")
    dense = Dense(encoder=encoder(), engine=options, exact_search_max=0)
    dense.add_batch_size = 100  # type: ignore[misc]
    store(dense).insert_batch_size = 50
    return dense, options


def store(dense: Dense) -> MilvusStore:
    assert dense.milvus is not None
    return dense.milvus.store


class Outage:
    """Kills ``server`` (SIGKILL of its process group) and brings it back: at once, while the
    client retries (``back``: 20 retries, about two minutes, as a restart under load may take
    longer than the default minute), or only after :meth:`end` (``away``: the client's retries
    are cut to two quick ones, so its call gives up and raises)."""

    def __init__(self, server: MilvusServer, stores: Sequence[MilvusStore], back: bool) -> None:
        self.server, self.stores, self.back = server, list(stores), back
        self.killed = threading.Event()
        self.restarter: threading.Thread | None = None
        self.error: BaseException | None = None
        for s in self.stores:
            if back:  # twice the default: a loaded machine restarts the server slowly
                s.retries = 20
            else:
                s.retries, s.backoff = 1, 0.05

    def kill(self) -> None:
        self.server.kill()
        self.killed.set()
        if self.back:
            self.restarter = threading.Thread(target=self._restart, daemon=True)
            self.restarter.start()

    def _restart(self) -> None:
        try:
            self.server.start()
        except BaseException as exc:  # pytest.fail in a thread: reported by end()
            self.error = exc

    def end(self) -> None:
        """Wait for a restart under way, or restart a server left away; restore the retries."""
        if not self.killed.wait(timeout=60):
            raise AssertionError("the server was never killed")
        if self.restarter is not None:
            self.restarter.join(timeout=300)
        if self.error is not None:
            raise self.error
        if not self.server.running:
            self.server.start()
        for s in self.stores:
            for name in ("retries", "backoff"):
                s.__dict__.pop(name, None)  # the class defaults again


def kill_at_request(
    monkeypatch: pytest.MonkeyPatch, store: MilvusStore, outage: Outage, k: int, mid: bool
) -> None:
    """Kill the server when the ``k``-th upsert request of ``store`` starts: before it is sent,
    or (``mid``) from another thread a moment after, while it is in flight."""
    calls = itertools.count(1)
    original = store.client.upsert

    def upsert(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == k:
            if mid:
                threading.Timer(0.003, outage.kill).start()
            else:
                outage.kill()
        return original(*args, **kwargs)

    monkeypatch.setattr(store.client, "upsert", upsert)


def check_nothing_acknowledged_lost(dense: Dense, expected: Sequence[Document]) -> None:
    """Every document ``dense`` holds (its adds returned, or the batches of a raised add that
    did) is ``expected``, is on the server and is found first by its own text."""
    held = {d.id for d in dense._docs.live_documents()}
    assert held == {d.id for d in expected}
    assert len(dense) == len(expected)
    on_server = store(dense).ids()
    assert len(on_server) == len(set(on_server))  # no id twice
    assert held <= set(on_server)
    hits = dense.search_batch([d.text for d in expected], k=1)
    assert [h[0].id for h in hits] == [d.id for d in expected]


def check_exactly(dense: Dense, expected: Sequence[Document]) -> None:
    """The server holds exactly ``expected``, once each, and ``len()`` agrees."""
    check_nothing_acknowledged_lost(dense, expected)
    on_server = store(dense).ids()
    assert sorted(on_server) == sorted(d.id for d in expected)
    assert store(dense).count() == len(dense) == len(expected)


def expect_unavailable(server: MilvusServer, call: Callable[[], object]) -> None:
    with pytest.raises(MilvusUnavailableError) as err:
        call()
    assert f"Milvus at {server.uri!r} after 2 attempts" in str(err.value)
    assert "start the server" in str(err.value)  # and what to do


# -- (a) between two adds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.0, False), (0.1, True), (0.4, False), (1.0, True), (2.5, False)],
    ids=lambda v: f"{v}s" if isinstance(v, float) else ("back" if v else "away"),
)
def test_kill_between_two_adds(server: MilvusServer, kill_after_s: float, back: bool) -> None:
    """The first add returned; the server is killed ``kill_after_s`` later; the second add
    either returns (the server came back while it retried) or raises and is repeated."""
    first, second = corpus(150), corpus(150, start=150)
    dense, _ = new_dense(server)
    dense.add(first)
    time.sleep(kill_after_s)
    outage = Outage(server, [store(dense)], back)
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
    [(1, False, False), (4, True, True), (7, False, True), (9, True, False), (11, True, False)],
    ids=["req1-before-away", "req4-in-flight-back", "req7-before-back", "req9-in-flight-away",
         "req11-in-flight-away"],
)  # fmt: skip
def test_kill_during_a_large_add(
    server: MilvusServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request_number: int,
    mid: bool,
    back: bool,
) -> None:
    """600 documents in 6 batches of 100, each written in 2 requests of 50 rows: the server is
    killed as request ``request_number`` (of 12) starts or while it is in flight (a few ms after
    it starts: it may also have returned, so the requests that kill the server the client then
    gives up on are the first of a batch's two, whose batch fails either way). A snapshot saved
    before the add reopens onto the restarted server and resyncs it."""
    before, large = corpus(80, start=1000), corpus(600)
    dense, options = new_dense(server)
    dense.add(before)
    dense.save(tmp_path / "snapshot")
    outage = Outage(server, [store(dense)], back)
    kill_at_request(monkeypatch, store(dense), outage, request_number, mid)
    if back:
        dense.add(large)
        outage.end()
        assert outage.killed.is_set()
        check_exactly(dense, before + large)
    else:
        expect_unavailable(server, lambda: dense.add(large))
        outage.end()
        done = (request_number - 1) // 2  # the batches whose both requests returned
        check_nothing_acknowledged_lost(dense, before + large[: 100 * done])
        dense.add(large)  # the add that raised, repeated
        check_exactly(dense, before + large)
    monkeypatch.undo()
    reopened = Retriever.open(tmp_path / "snapshot", engine=options)
    assert isinstance(reopened, Dense)
    reopened.add_batch_size = 100  # type: ignore[misc]
    check_exactly(reopened, before)  # the collection is the snapshot again


# -- (c) during searches from several threads --------------------------------------------------


@pytest.mark.parametrize(
    ("kill_after_s", "back"),
    [(0.1, True), (0.3, False), (0.6, True), (1.0, False), (1.5, True)],
    ids=lambda v: f"{v}s" if isinstance(v, float) else ("back" if v else "away"),
)
def test_kill_during_searches_from_threads(
    server: MilvusServer, kill_after_s: float, back: bool
) -> None:
    """Three threads search in a loop; the server is killed ``kill_after_s`` after they start.
    Every search that returns gives the hits it gave before the kill; one that raises raises
    MilvusUnavailableError (server away past the retries); after the restart all succeed."""
    docs = corpus(200, start=2000)
    dense, _ = new_dense(server)
    dense.add(docs)
    queries = [d.text for d in docs[::10]]
    baseline = [[h.id for h in hits] for hits in dense.search_batch(queries, k=5)]
    assert [b[0] for b in baseline] == [d.id for d in docs[::10]]
    stop = threading.Event()
    outage = Outage(server, [store(dense)], back)
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
        time.sleep(0.2)  # until each thread has finished a search begun after the restart
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    for n, out in enumerate(results):
        assert out
        assert out[-1][0] >= restarted_at  # searches work again
        assert not isinstance(out[-1][1], BaseException)
        errors = [r for _, r in out if isinstance(r, BaseException)]
        for error in errors:
            assert isinstance(error, MilvusUnavailableError), repr(error)
            assert repr(server.uri) in str(error)
        if back:
            assert not errors  # the retries waited for the server
        else:
            assert any(t >= killed_at for t, r in out if isinstance(r, BaseException))
        for i, (_, found) in enumerate(out):
            if not isinstance(found, BaseException):
                chunk = queries[(n + i) % 4 :: 4]
                assert found == [baseline[queries.index(q)] for q in chunk]
    check_exactly(dense, docs)
