"""A real Chroma server for tests: ``chroma run`` on 127.0.0.1, a free port, a temporary path.

Use the session fixture ``chroma_server`` (import it from conftest:
``from chroma_server import chroma_server  # noqa: F401``) or the context manager
:func:`running_chroma_server`; a test that kills the server uses :class:`ChromaProcess`
(``kill`` is SIGKILL, ``restart`` starts it again on the same path and port). Each server runs
in a process group of its own and is stopped by that group's id (SIGTERM, SIGKILL after a grace
period), so nothing outlives the test. Tests are skipped, with the reason, when the ``chroma``
executable (installed by the ``chromadb`` package) is missing.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rag_retrievers.evals.bench.servers import GroupProcess, find_executable, free_port

STARTUP_TIMEOUT_S = 120.0
#: seconds a stopping server gets after SIGTERM before its process group is killed
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class ChromaServer:
    host: str
    port: int
    path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def chroma_executable() -> str | None:
    """``chroma`` on PATH, else next to this Python (a virtual environment not activated)."""
    return find_executable("chroma")


def _heartbeat(url: str) -> bool:
    for endpoint in ("/api/v2/heartbeat", "/api/v1/heartbeat"):
        try:
            with urllib.request.urlopen(url + endpoint, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            continue
    return False


class ChromaProcess(GroupProcess):
    """``chroma run`` on ``host`` and a port that stays the same across restarts, with its
    data in ``path``."""

    stop_grace = STOP_GRACE_S

    def __init__(self, path: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        executable = chroma_executable()
        if executable is None:
            pytest.skip("the `chroma` executable is not installed (pip install chromadb)")
        self.executable = str(executable)
        self.server = ChromaServer(host, port or free_port(host), path)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.running else "stopped"
        return f"ChromaProcess({self.server.url!r}, {state}, path={str(self.server.path)!r})"

    @property
    def log(self) -> Path:
        return self.server.path.parent / f"chroma-{self.server.port}-{self.starts}.log"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start the server and wait until its heartbeat answers."""
        if self.running:
            raise RuntimeError(f"{self} is already running")
        s = self.server
        s.path.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        command = [self.executable, "run", "--host", s.host, "--port", str(s.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--path", str(s.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as one
            )
        try:
            deadline = time.monotonic() + timeout
            while not _heartbeat(s.url):
                if not self.running:
                    tail = self.log.read_text(errors="replace")[-2000:]
                    pytest.fail(f"`chroma run` exited:\n{tail}", pytrace=False)
                if time.monotonic() > deadline:
                    pytest.fail(f"`chroma run` did not answer within {timeout:.0f} s")
                time.sleep(0.1)
        except BaseException:
            self.kill()
            raise


@contextlib.contextmanager
def running_chroma_server(path: Path, host: str = "127.0.0.1") -> Iterator[ChromaServer]:
    """Start ``chroma run``, wait until its heartbeat answers, yield it, stop it."""
    process = ChromaProcess(path, host)
    try:
        process.start()
        yield process.server
    finally:
        process.stop()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A Chroma server for the whole test session, on 127.0.0.1 and a free port."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma") / "data") as server:
        yield server
