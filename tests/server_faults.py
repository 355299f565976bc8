"""The server-fault scenarios shared by ``test_milvus_server_faults.py`` and
``test_chroma_server_faults.py``: a server SIGKILLed (a) between two adds, (b) during a large
add, (c) during searches from several threads, then restarted on the same data.

Each test module describes its engine in an :class:`Engine` (how to make a ``Dense`` on its
server, the rows that server holds, the error an unreachable server raises and how it is named)
and calls :func:`kill_between_two_adds`, :func:`kill_during_a_large_add` and
:func:`kill_during_searches_from_threads` with its own kill moments. A plain helper module,
imported as ``from server_faults import ...`` like ``milvus_server`` and ``chroma_server``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pytest
from milvus_server import remembering_encoder
from rag_retrievers.adapters.dense import Dense

from rag_retrievers.base import Retriever
from rag_retrievers.encoders.dense import DenseEncoder
from rag_retrievers.records import Document

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
    """MiniLM with its encodings remembered by text: the same corpus is indexed by every case
    and each document's text is also its query."""
    return remembering_encoder(DenseEncoder("minilm"))


# -- what differs between the engines -----------------------------------------------------------


class Server(Protocol):
    """A server process the tests kill (SIGKILL of its process group) and start again."""

    @property
    def running(self) -> bool: ...

    def kill(self) -> None: ...

    def start(self) -> None: ...


class Rows(Protocol):
    """The engine's view of one collection on the server: its ids and count, and the client's
    retries (instance attributes override the class defaults)."""

    retries: int
    backoff: float

    def ids(self) -> list[str]: ...

    def count(self) -> int: ...


@dataclass(frozen=True)
class Engine:
    #: a new Dense on the server (a collection of its own) that searches there, and its options
    new_dense: Callable[[Any], tuple[Dense, Any]]
    #: the rows of a Dense's collection on the server
    rows: Callable[[Dense], Rows]
    #: the object whose ``upsert`` method sends one write request of a Dense's collection
    upserter: Callable[[Dense], Any]
    #: documents a Dense of :attr:`new_dense` writes per add batch, and requests per batch
    batch_size: int
    requests_per_batch: int
    #: raised by a call that gave up on an unreachable server
    unavailable: type[Exception]
    #: how the error names the server: ``f"{label} at {address(server)} after N attempts"``
    label: str
    address: Callable[[Any], str]
    #: what the error says to do
    hint: str
    #: the first wait of the retries while a killed server comes back (None: the default)
    back_backoff: float | None = None
    #: seconds a killed server stays away before it is restarted while the client retries
    restart_delay_s: float = 0.0


class Outage:
    """Kills ``server`` (SIGKILL of its process group) and brings it back: at once, while the
    client retries (``back``: 20 retries, about two minutes, as a restart under load may take
    longer than the default minute), or only after :meth:`end` (``away``: the client's retries
    are cut to two quick ones, so its call gives up and raises)."""

    def __init__(self, engine: Engine, server: Server, rows: Rows, back: bool) -> None:
        self.engine, self.server, self.rows, self.back = engine, server, rows, back
        self.killed = threading.Event()
        self.restarter: threading.Thread | None = None
        self.error: BaseException | None = None
        if back:  # generous: a loaded machine may take a while to restart the server
            rows.retries = 20
            if engine.back_backoff is not None:
                rows.backoff = engine.back_backoff
        else:
            rows.retries, rows.backoff = 1, 0.05

    def kill(self) -> None:
        self.server.kill()
        self.killed.set()
        if self.back:
            self.restarter = threading.Thread(target=self._restart, daemon=True)
            self.restarter.start()

    def _restart(self) -> None:
        try:
            time.sleep(self.engine.restart_delay_s)  # the client meets a server that is gone
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
        for name in ("retries", "backoff"):
            self.rows.__dict__.pop(name, None)  # the class defaults again


def kill_at_request(
    monkeypatch: pytest.MonkeyPatch, target: Any, outage: Outage, k: int, mid: bool
) -> None:
    """Kill the server when the ``k``-th ``target.upsert`` request starts: before it is sent,
    or (``mid``) from another thread a moment after, while it may be in flight."""
    calls = itertools.count(1)
    original = target.upsert

    def upsert(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == k:
            if mid:
                threading.Timer(0.003, outage.kill).start()
            else:
                outage.kill()
        return original(*args, **kwargs)

    monkeypatch.setattr(target, "upsert", upsert)


def check_nothing_acknowledged_lost(
    engine: Engine, dense: Dense, expected: Sequence[Document]
) -> None:
    """Every document ``dense`` holds (its adds returned, or the batches of a raised add that
    did) is ``expected``, is on the server once and is found first by its own text."""
    held = {d.id for d in dense._docs.live_documents()}
    assert held == {d.id for d in expected}
    assert len(dense) == len(expected)
    on_server = engine.rows(dense).ids()
    assert len(on_server) == len(set(on_server))  # no id twice
    assert held <= set(on_server)
    hits = dense.search_batch([d.text for d in expected], k=1)
    assert [h[0].id for h in hits] == [d.id for d in expected]


def check_exactly(engine: Engine, dense: Dense, expected: Sequence[Document]) -> None:
    """The server holds exactly ``expected``, once each, and ``len()`` agrees."""
    check_nothing_acknowledged_lost(engine, dense, expected)
    rows = engine.rows(dense)
    assert sorted(rows.ids()) == sorted(d.id for d in expected)
    assert rows.count() == len(dense) == len(expected)


def expect_unavailable(engine: Engine, server: Server, call: Callable[[], object]) -> None:
    with pytest.raises(engine.unavailable) as err:
        call()
    assert f"{engine.label} at {engine.address(server)} after 2 attempts" in str(err.value)
    assert engine.hint in str(err.value)  # and what to do


def moment_id(value: float | bool) -> str:
    """The test id of a kill moment: ``0.4s`` after, the server ``back`` or ``away``."""
    if isinstance(value, bool):
        return "back" if value else "away"
    return f"{value}s"


def request_ids(moments: Sequence[tuple[int, bool, bool]]) -> list[str]:
    """The test ids of ``(request_number, mid, back)`` kill moments: ``req4-in-flight-back``."""
    return [
        f"req{k}-{'in-flight' if mid else 'before'}-{'back' if back else 'away'}"
        for k, mid, back in moments
    ]


# -- (a) between two adds ---------------------------------------------------------------------


def kill_between_two_adds(
    engine: Engine, server: Server, kill_after_s: float, back: bool, size: int
) -> None:
    """The first add (``size`` documents) returned; the server is killed ``kill_after_s``
    later; the second add either returns (the server came back while it retried) or raises and
    is repeated."""
    first, second = corpus(size), corpus(size, start=size)
    dense, _ = engine.new_dense(server)
    dense.add(first)
    time.sleep(kill_after_s)
    outage = Outage(engine, server, engine.rows(dense), back)
    outage.kill()
    if back:
        dense.add(second)  # retried until the server is back
        outage.end()
        check_exactly(engine, dense, first + second)
        return
    expect_unavailable(engine, server, lambda: dense.add(second))
    outage.end()
    check_nothing_acknowledged_lost(engine, dense, first)  # the second add changed nothing here
    dense.add(second)  # repeated: upserts by id
    check_exactly(engine, dense, first + second)


# -- (b) during a large add --------------------------------------------------------------------


def kill_during_a_large_add(
    engine: Engine,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    snapshot: Path,
    request_number: int,
    mid: bool,
    back: bool,
    sizes: tuple[int, int],
) -> None:
    """``sizes`` (before, large): ``before`` documents are added and saved to ``snapshot``;
    then the server is killed as write request ``request_number`` of the large add starts, or
    a few ms after (in flight, or already answered). Where the client gives up, the batches
    whose requests all returned are held; a request in flight that was the last of its batch
    may have returned too. A snapshot saved before the add reopens onto the restarted server
    and resyncs it."""
    before, large = corpus(sizes[0], start=1000), corpus(sizes[1])
    batch, per_batch = engine.batch_size, engine.requests_per_batch
    dense, options = engine.new_dense(server)
    dense.add(before)
    dense.save(snapshot)
    outage = Outage(engine, server, engine.rows(dense), back)
    kill_at_request(monkeypatch, engine.upserter(dense), outage, request_number, mid)
    if back:
        dense.add(large)
        outage.end()
        assert outage.killed.is_set()
        check_exactly(engine, dense, before + large)
    else:
        expect_unavailable(engine, server, lambda: dense.add(large))
        outage.end()
        held, rest = divmod(len(dense) - len(before), batch)  # the batches that returned
        done = (request_number - 1) // per_batch  # those whose requests all returned
        assert rest == 0
        last_of_its_batch = request_number % per_batch == 0
        assert held in ((done, done + 1) if mid and last_of_its_batch else (done,))
        check_nothing_acknowledged_lost(engine, dense, before + large[: batch * held])
        dense.add(large)  # the add that raised, repeated
        check_exactly(engine, dense, before + large)
    monkeypatch.undo()
    reopened = Retriever.open(snapshot, engine=options)
    assert isinstance(reopened, Dense)
    reopened.add_batch_size = batch  # type: ignore[misc]
    check_exactly(engine, reopened, before)  # the collection is the snapshot again


# -- (c) during searches from several threads --------------------------------------------------


def kill_during_searches_from_threads(
    engine: Engine, server: Server, kill_after_s: float, back: bool
) -> None:
    """Three threads search in a loop; the server is killed ``kill_after_s`` after they start.
    Every search that returns gives the hits it gave before the kill; one that raises raises
    the engine's unavailable error (server away past the retries); after the restart all
    succeed."""
    docs = corpus(200, start=2000)
    dense, _ = engine.new_dense(server)
    dense.add(docs)
    queries = [d.text for d in docs[::10]]
    baseline = [[h.id for h in hits] for hits in dense.search_batch(queries, k=5)]
    assert [b[0] for b in baseline] == [d.id for d in docs[::10]]
    stop = threading.Event()
    outage = Outage(engine, server, engine.rows(dense), back)
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
    address = engine.address(server)
    for n, out in enumerate(results):
        assert out
        assert out[-1][0] >= restarted_at  # searches work again
        assert not isinstance(out[-1][1], BaseException)
        errors = [r for _, r in out if isinstance(r, BaseException)]
        for error in errors:
            assert isinstance(error, engine.unavailable), repr(error)
            assert address in str(error)
        if back:
            assert not errors  # the retries waited for the server
        else:
            assert any(t >= killed_at for t, r in out if isinstance(r, BaseException))
        for i, (_, found) in enumerate(out):
            if not isinstance(found, BaseException):
                chunk = queries[(n + i) % 4 :: 4]
                assert found == [baseline[queries.index(q)] for q in chunk]
    check_exactly(engine, dense, docs)
