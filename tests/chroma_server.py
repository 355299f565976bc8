"""A real Chroma server for tests: ``chroma run`` on 127.0.0.1, a free port, a temporary path.

Use the session fixture ``chroma_server`` (import it from conftest:
``from chroma_server import chroma_server  # noqa: F401``) or the context manager
:func:`running_chroma_server`. Tests are skipped, with the reason, when the ``chroma`` executable
(installed by the ``chromadb`` package) is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60.0


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
    found = shutil.which("chroma")
    if found:
        return found
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.is_file() else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _heartbeat(url: str) -> bool:
    for endpoint in ("/api/v2/heartbeat", "/api/v1/heartbeat"):
        try:
            with urllib.request.urlopen(url + endpoint, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            continue
    return False


@contextlib.contextmanager
def running_chroma_server(path: Path, host: str = "127.0.0.1") -> Iterator[ChromaServer]:
    """Start ``chroma run``, wait until its heartbeat answers, yield it, stop it."""
    executable = chroma_executable()
    if executable is None:
        pytest.skip("the `chroma` executable is not installed (pip install chromadb)")
    port = free_port(host)
    path.mkdir(parents=True, exist_ok=True)
    log = path.parent / f"chroma-{port}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [executable, "run", "--host", host, "--port", str(port), "--path", str(path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        server = ChromaServer(host, port, path)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _heartbeat(server.url):
                if process.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:]
                    pytest.fail(f"`chroma run` exited with {process.returncode}:\n{tail}")
                if time.monotonic() > deadline:
                    pytest.fail(f"`chroma run` did not answer within {STARTUP_TIMEOUT_S:.0f} s")
                time.sleep(0.2)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A Chroma server for the whole test session, on 127.0.0.1 and a free port."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma") / "data") as server:
        yield server
