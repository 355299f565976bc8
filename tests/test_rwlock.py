import threading
import time

from rag_retrievers._rwlock import ReadWriteLock


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
