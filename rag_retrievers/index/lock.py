"""A readers-writer lock: many searches at once, one add/delete at a time, neither side starved.

Phase-fair (Brandenburg & Anderson, "Spin-Based Reader-Writer Synchronization for
Multiprocessor Real-Time Systems", Real-Time Systems 46(1), 2010): reads and writes alternate in
phases. Writers queue in arrival order. A reader that arrives while no writer holds or awaits the
lock reads at once; otherwise it waits for the end of the current or the queued writer's phase
and is then admitted together with every other reader that waited, before the next writer. So a
reader waits for at most one write phase (the writer holding the lock, or the one writer already
queued while readers hold it), never for a queue of later writers; and a writer waits for at most
the read phase in progress plus the writers ahead of it, never for a stream of later readers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Phase-fair; a thread that already reads may read again (wrappers nest reads), which a
    waiting writer would otherwise turn into a deadlock. Not reentrant for writers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0  # reading now, including readers admitted but not yet running
        self._writers: deque[object] = deque()  # the writer holding the lock first, then queued
        self._writing = False
        self._readers_waiting = 0
        self._phase = 0  # +1 each time a write phase admits the readers that waited for it
        self._local = threading.local()

    @contextmanager
    def read(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        with self._cond:
            if depth or not self._writers:
                self._readers += 1
            else:
                self._wait_for_read_phase()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    def _wait_for_read_phase(self) -> None:
        """Wait, holding ``_cond``, until a writer's release admits this reader."""
        phase = self._phase
        self._readers_waiting += 1
        try:
            while self._phase == phase:
                self._cond.wait()
        except BaseException:
            if self._phase == phase:
                self._readers_waiting -= 1
            else:  # admitted as the wait was interrupted: give the place back
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()
            raise

    def _admit_waiting_readers(self) -> None:
        if self._readers_waiting:
            self._readers += self._readers_waiting
            self._readers_waiting = 0
            self._phase += 1

    @contextmanager
    def write(self) -> Iterator[None]:
        me = object()
        with self._cond:
            self._writers.append(me)
            try:
                while self._writers[0] is not me or self._writing or self._readers:
                    self._cond.wait()
            except BaseException:
                if self._writers[0] is me:  # not writing yet: the readers it held back go on
                    self._admit_waiting_readers()
                self._writers.remove(me)
                self._cond.notify_all()
                raise
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._writers.popleft()
                # the readers that waited for this write go next, before any queued writer
                self._admit_waiting_readers()
                self._cond.notify_all()
