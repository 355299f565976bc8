import sys
import threading
import time
from functools import partial

from rag_retrievers.index.lock import ReadWriteLock


def test_a_reader_may_read_again_while_a_writer_waits() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    inner_done = threading.Event()

    def writer() -> None:
        with lock.write():
            order.append("write")

    with lock.read():
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.1)  # the writer is now waiting for this reader
        with lock.read():  # would deadlock if nested reads queued behind the writer
            order.append("nested read")
            inner_done.set()
    t.join(timeout=5)
    assert inner_done.is_set()
    assert order == ["nested read", "write"]


def test_writers_exclude_readers_and_each_other() -> None:
    lock = ReadWriteLock()
    active = {"readers": 0, "writers": 0}
    seen_bad: list[str] = []
    guard = threading.Lock()

    def work(kind: str) -> None:
        for _ in range(200):
            ctx = lock.write() if kind == "w" else lock.read()
            with ctx:
                with guard:
                    active["writers" if kind == "w" else "readers"] += 1
                    if active["writers"] > 1 or (active["writers"] and active["readers"]):
                        seen_bad.append(kind)
                with guard:
                    active["writers" if kind == "w" else "readers"] -= 1

    threads = [threading.Thread(target=work, args=(k,)) for k in "rrww"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not seen_bad


# -- fairness: neither side starves the other (issue 17, finding 4) ------------------------------


def _busy(n: int = 300) -> int:
    """A few hundred microseconds of pure-Python work, like an add's bookkeeping."""
    return sum(i * i for i in range(n))


def _reads_during_writes(lock: ReadWriteLock, writes: int, n_readers: int = 4) -> list[int]:
    """Reads each reader thread completed while one writer took the lock ``writes`` times back
    to back with no pause."""
    counts = [0] * n_readers
    done = threading.Event()
    start = threading.Barrier(n_readers + 1)

    def reader(i: int) -> None:
        start.wait()
        while not done.is_set():
            with lock.read():
                _busy(50)
                counts[i] += 1

    def writer() -> None:
        start.wait()
        try:
            for _ in range(writes):
                with lock.write():
                    _busy()
        finally:
            done.set()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n_readers)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return counts


def test_readers_progress_under_a_writer_that_never_pauses() -> None:
    # A writer-preferring lock lets it take the lock again and again: readers got a handful of
    # reads in 2,000 writes. Phase-fair: every write admits the readers that waited for it.
    writes = 2_000
    counts = _reads_during_writes(ReadWriteLock(), writes)
    assert min(counts) >= writes // 40, counts


def test_writers_progress_under_readers_that_never_pause() -> None:
    """Readers relay the lock: each stays in its read until another reader has entered one
    (or 20 ms passed), so the count of readers would never drop to zero by itself. A writer
    must still get in, again and again: a new read waits for the writer already waiting."""
    lock = ReadWriteLock()
    n_readers, reads_each = 4, 50
    relay = threading.Condition()
    entries = 0
    running = n_readers
    writes = 0
    start = threading.Barrier(n_readers + 1)

    def entered_after(mine: int) -> bool:
        return entries > mine

    def reader() -> None:
        nonlocal entries, running
        start.wait()
        for _ in range(reads_each):
            with lock.read():
                time.sleep(0.001)  # long enough for the writer to queue: the relay lasts
                with relay:
                    entries += 1
                    mine = entries
                    relay.notify_all()
                    relay.wait_for(partial(entered_after, mine), timeout=0.02)
        with relay:
            running -= 1

    def writer() -> None:
        nonlocal writes
        start.wait()
        while running:
            with lock.write():
                writes += entries >= n_readers and running == n_readers  # while relaying

    threads = [threading.Thread(target=reader) for _ in range(n_readers)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert writes >= reads_each // 5, writes


def _waiting(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in a ``threading`` wait (the lock's, or an Event's)."""
    frame = sys._current_frames().get(thread.ident)  # type: ignore[arg-type]
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def _started(target: object, *args: object) -> threading.Thread:
    """A started thread, once it waits: on the lock, queued behind those started before it."""
    t = threading.Thread(target=target, args=args)  # type: ignore[arg-type]
    t.start()
    deadline = time.monotonic() + 10
    while not _waiting(t):
        assert time.monotonic() < deadline, "the thread never waited"
        time.sleep(0.001)
    return t


def test_a_reader_waits_for_the_writer_holding_the_lock_not_for_later_writers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    release_first = threading.Event()

    def first_writer() -> None:
        with lock.write():
            order.append("w1")
            release_first.wait(5)

    def write(name: str) -> None:
        with lock.write():
            order.append(name)

    def read() -> None:
        with lock.read():
            order.append("r")

    threads = [_started(first_writer), _started(write, "w2"), _started(read)]
    threads.append(_started(write, "w3"))
    release_first.set()
    for t in threads:
        t.join(timeout=5)
    assert order == ["w1", "r", "w2", "w3"]


def test_a_reader_arriving_while_a_writer_waits_goes_after_that_writer() -> None:
    # readers hold the lock, a writer waits for them: a new reader must not overtake it, or a
    # stream of overlapping readers would starve the writer
    lock = ReadWriteLock()
    order: list[str] = []
    release_first = threading.Event()

    def first_reader() -> None:
        with lock.read():
            release_first.wait(5)
            order.append("r1")

    def write() -> None:
        with lock.write():
            order.append("w")

    def read() -> None:
        with lock.read():
            order.append("r2")

    threads = [_started(first_reader), _started(write), _started(read)]
    release_first.set()
    for t in threads:
        t.join(timeout=5)
    assert order == ["r1", "w", "r2"]


def test_readers_that_waited_for_one_write_read_together() -> None:
    lock = ReadWriteLock()
    release_writer = threading.Event()
    inside = threading.Barrier(3, timeout=5)  # breaks unless all three read at the same time

    def writer() -> None:
        with lock.write():
            release_writer.wait(5)

    def reader() -> None:
        with lock.read():
            inside.wait()

    threads = [_started(writer)] + [_started(reader) for _ in range(3)]
    release_writer.set()
    for t in threads:
        t.join(timeout=10)
    assert not inside.broken


def test_an_exception_inside_either_side_releases_the_lock() -> None:
    lock = ReadWriteLock()
    for ctx in (lock.read, lock.write, lock.read):
        try:
            with ctx():
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    got: list[str] = []

    def use() -> None:
        with lock.write():
            got.append("write")
        with lock.read():
            got.append("read")

    t = threading.Thread(target=use)
    t.start()
    t.join(timeout=5)
    assert got == ["write", "read"]


def _finishes(work: object, timeout: float = 5) -> bool:
    t = threading.Thread(target=work, daemon=True)  # type: ignore[arg-type]
    t.start()
    t.join(timeout)
    return not t.is_alive()


def _interrupt_waits_of(lock: ReadWriteLock, name: str) -> None:
    """Make the lock's waits raise KeyboardInterrupt in the thread called ``name``."""
    real_wait = lock._cond.wait

    def wait(timeout: float | None = None) -> bool:
        if threading.current_thread().name == name:
            raise KeyboardInterrupt
        return real_wait(timeout)

    lock._cond.wait = wait  # type: ignore[method-assignment]


def _interrupted(ctx: object) -> list[str]:
    got: list[str] = []

    def run() -> None:
        try:
            with ctx():  # type: ignore[operator]
                got.append("entered")
        except KeyboardInterrupt:
            got.append("interrupted")

    t = threading.Thread(target=run, name="impatient")
    t.start()
    t.join(5)
    return got


def test_a_writer_interrupted_while_it_waits_leaves_the_queue() -> None:
    lock = ReadWriteLock()
    _interrupt_waits_of(lock, "impatient")
    with lock.read():
        assert _interrupted(lock.write) == ["interrupted"]
    # a writer left in the queue would keep every later writer and reader waiting
    assert _finishes(lambda: lock.write().__enter__())


def test_a_reader_interrupted_while_it_waits_is_not_admitted_later() -> None:
    lock = ReadWriteLock()
    _interrupt_waits_of(lock, "impatient")
    with lock.write():
        assert _interrupted(lock.read) == ["interrupted"]
    # a reader admitted on its behalf would never leave: the next writer would wait for ever

    def write_then_read() -> None:
        with lock.write():
            pass
        with lock.read():
            pass

    assert _finishes(write_then_read)
