"""What the test servers share (``milvus_server.py``, ``chroma_server.py``): finding their
executable, a free port, and a server process run in a process group of its own
(``start_new_session``), killed or stopped by that group's id so that nothing it started
outlives the test. A plain helper module, imported as ``from server_process import ...``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: seconds to wait for a (re)started server to answer
STARTUP_TIMEOUT_S = 120.0


def find_executable(name: str) -> str | None:
    """``name`` on PATH, else next to this Python (a virtual environment not activated)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


class GroupProcess:
    """A server whose :meth:`start` runs ``self.process`` with ``start_new_session=True`` (the
    group id is its pid); :meth:`kill` is a crash, :meth:`stop` a shutdown, :meth:`restart`
    starts it again."""

    #: seconds a stopping server gets after SIGTERM before its process group is killed
    stop_grace = 10.0

    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        raise NotImplementedError

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)  # the group id is the server's pid

    def _wait_group_gone(self, timeout: float) -> bool:
        """Whether no process of the group is left (zombies aside) within ``timeout``."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if not group_members(self.process.pid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash), and reap it."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait()
        self._wait_group_gone(10.0)
        self.process = None

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM the process group; SIGKILL it when it has not exited after ``grace``
        (default :attr:`stop_grace`)."""
        if self.process is None:
            return
        grace = self.stop_grace if grace is None else grace
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)
        if not self._wait_group_gone(grace):
            self._signal_group(signal.SIGKILL)
            self._wait_group_gone(10.0)
        self._signal_group(signal.SIGKILL)  # the leader may have gone before the rest
        self.process.wait()
        self.process = None

    def restart(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start again on the same data and port (killing it first if it runs)."""
        self.kill()
        self.start(timeout)
