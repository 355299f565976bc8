"""A real Milvus standalone server for tests: ``milvus-server`` (PyPI ``milvus``, Milvus 2.3.5)
on 127.0.0.1, a free port, a data folder under the test session's temporary directory.

Loaded by ``tests/conftest.py`` (``pytest_plugins``). Fixtures:

- ``milvus_server`` (session): one server shared by the tests that do not stop it; give each
  test its own collection names.
- ``milvus_fault_server`` (module): a server of the module's own that its tests may kill and
  :meth:`MilvusServer.restart` on the same data folder; each test finds it running.

``milvus-server`` is a Python wrapper that unpacks the Milvus binary into ``DATA/bin`` and runs
``milvus run standalone`` as its child. Its embedded etcd would listen on the fixed ports 2379
and 2380 (two servers on one machine collide): each server gets an etcd config of its own on
free ports (``ETCD_CONFIG_PATH``), and its components talk over 127.0.0.1 (``*_IP``), not the
machine's first address. Each server is started in a process group of its own
(``start_new_session``) and stopped by that group's id: SIGTERM, then SIGKILL after a grace
period, so neither the wrapper nor the binary outlives the test. The binaries are unpacked once
per session (``DATA/bin`` is a link to one shared folder) and every data folder is removed when
its server stops for good. Where the executable is missing the tests skip, saying so; under CI
(``CI=true``) that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from server_process import GroupProcess, find_executable, free_port

#: seconds to wait for a (re)started server to answer; a restart after SIGKILL replays the log
STARTUP_TIMEOUT_S = 120.0
#: seconds a stopping server gets after SIGTERM before its process group is killed
STOP_GRACE_S = 5.0
#: the session TTL of the servers the fault tests kill
FAULT_SESSION_TTL = 10


def milvus_server_executable() -> str | None:
    """``milvus-server`` on PATH, else next to this Python (a virtual environment not
    activated)."""
    return find_executable("milvus-server")


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the dev extra installs it)", pytrace=False)
    pytest.skip(message)


class MilvusServer(GroupProcess):
    """One ``milvus-server`` on ``127.0.0.1:port`` with its data in ``root / "data"``.

    The port stays the same across :meth:`restart`, so clients reconnect to the same ``uri``.
    """

    stop_grace = STOP_GRACE_S

    def __init__(
        self, root: Path, binaries: Path, *, port: int | None = None, session_ttl: int = 30
    ) -> None:
        """``session_ttl``: seconds before a killed server's sessions expire (Milvus's default
        is 30); a restarted server reloads its collections only then."""
        executable = milvus_server_executable()
        if executable is None:
            _missing("`milvus-server` is not installed (pip install 'milvus>=2.3.5')")
        self.executable = str(executable)
        self.root = root
        self.data = root / "data"
        self.binaries = binaries
        self.port = port or free_port()
        self.etcd_ports = (free_port(), free_port())  # client, peer
        self.session_ttl = session_ttl
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.running else "stopped"
        return f"MilvusServer({self.uri!r}, {state}, data={str(self.data)!r})"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        """The wrapper's output of the latest start (the binary logs to ``data/logs``)."""
        return self.root / f"milvus-server-{self.starts}.log"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start the server on the data folder and wait until it answers over gRPC."""
        if self.running:
            raise RuntimeError(f"{self} is already running")
        self.data.mkdir(parents=True, exist_ok=True)
        self.binaries.mkdir(parents=True, exist_ok=True)
        if not (self.data / "bin").exists():  # unpacked once, into the shared folder
            (self.data / "bin").symlink_to(self.binaries, target_is_directory=True)
        self.starts += 1
        client, peer = self.etcd_ports
        etcd_config = self.root / "etcd.yaml"
        etcd_config.write_text(
            "name: default\n"
            f"listen-client-urls: http://127.0.0.1:{client}\n"
            f"advertise-client-urls: http://127.0.0.1:{client}\n"
            f"listen-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{peer}\n"
            f"initial-cluster: default=http://127.0.0.1:{peer}\n"
        )
        loopback = {
            f"{component}_IP": "127.0.0.1"
            for component in (
                "ROOTCOORD", "PROXY", "QUERYCOORD", "QUERYNODE", "INDEXCOORD", "INDEXNODE",
                "DATACOORD", "DATANODE",
            )
        }  # fmt: skip
        command = [
            self.executable,
            "--data",
            str(self.data),
            "--proxy-port",
            str(self.port),
            # the wrapper moves to the next free port when this one cannot be bound (sockets of
            # a killed server in TIME_WAIT): the config line itself keeps the client's port
            "--extra-config",
            f"proxy.port={self.port}",
            "--extra-config",
            f"common.session.ttl={self.session_ttl}",
            "--etcd-port",
            str(client),
            "--extra-config",
            f"etcd.endpoints=127.0.0.1:{client}",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as one
                env={
                    **os.environ,
                    **loopback,
                    "ETCD_CONFIG_PATH": str(etcd_config),
                    "PYTHONUNBUFFERED": "1",
                },
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        from pymilvus import MilvusClient

        deadline = time.monotonic() + timeout
        error: BaseException | None = None
        while time.monotonic() < deadline:
            if not self.running:
                pytest.fail(f"milvus-server exited ({self._tail()})", pytrace=False)
            if "Ctrl+C to exit" in self.log.read_text(errors="replace"):  # /healthz said OK
                client = None
                try:
                    client = MilvusClient(uri=self.uri, timeout=5)
                    client.list_collections(timeout=5)
                    return
                except Exception as exc:
                    error = exc
                finally:
                    if client is not None:
                        with contextlib.suppress(Exception):
                            client.close()
            time.sleep(0.2)
        pytest.fail(
            f"milvus-server on {self.uri} did not answer within {timeout:.0f} s "
            f"(last error: {error!r}; {self._tail()})",
            pytrace=False,
        )

    def _tail(self) -> str:
        def tail(path: Path, size: int) -> str:
            return path.read_text(errors="replace")[-size:] if path.exists() else ""

        logs = self.data / "logs"
        return (
            f"its output: {tail(self.log, 800)!r}; the server's: "
            f"{tail(logs / 'milvus-stdout.log', 1500)!r} {tail(logs / 'milvus-stderr.log', 800)!r}"
        )

    def remove(self) -> None:
        """Stop for good and delete the data folder (the shared binaries stay)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_milvus_server(
    root: Path, binaries: Path, *, session_ttl: int = 30
) -> Iterator[MilvusServer]:
    server = MilvusServer(root, binaries, session_ttl=session_ttl)
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def milvus_binaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder of unpacked Milvus binaries for every server of the session (~250 MB)."""
    folder = tmp_path_factory.mktemp("milvus-bin")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_server(
    tmp_path_factory: pytest.TempPathFactory, milvus_binaries: Path
) -> Iterator[MilvusServer]:
    """A Milvus server for the whole session; tests must not stop it."""
    pytest.importorskip("pymilvus")
    with running_milvus_server(tmp_path_factory.mktemp("milvus-server"), milvus_binaries) as s:
        yield s


@pytest.fixture(scope="module")
def _module_fault_server(
    tmp_path_factory: pytest.TempPathFactory, milvus_binaries: Path
) -> Iterator[MilvusServer]:
    pytest.importorskip("pymilvus")
    root = tmp_path_factory.mktemp("milvus-fault")
    # sessions of a killed server expire after 10 s, not 30: each restart is 20 s shorter
    with running_milvus_server(root, milvus_binaries, session_ttl=FAULT_SESSION_TTL) as s:
        yield s


@pytest.fixture
def milvus_fault_server(_module_fault_server: MilvusServer) -> MilvusServer:
    """The module's own server, running; the test may kill and restart it."""
    if not _module_fault_server.running:
        _module_fault_server.restart()
    return _module_fault_server


def drop_collections(uri: str, names: list[str]) -> None:
    """Drop ``names`` on the server at ``uri`` (those that exist), closing our stores first."""
    from pymilvus import MilvusClient

    from rag_retrievers.engines.milvus import close_stores

    close_stores(uri)
    client = MilvusClient(uri=uri, timeout=10)
    try:
        for name in names:
            if client.has_collection(name):
                client.drop_collection(name)
    finally:
        client.close()


class ServerCollections:
    """Collection names of one test on a shared server: unique, dropped after the test."""

    def __init__(self, server: MilvusServer) -> None:
        self.server = server
        self.uri = server.uri
        self.names: list[str] = []

    def __call__(self, label: str = "c") -> str:
        name = f"{label}_{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        return name

    def drop(self) -> None:
        drop_collections(self.uri, self.names)


@pytest.fixture
def server_collections(milvus_server: MilvusServer) -> Iterator[ServerCollections]:
    """``server_collections()`` names a new collection on the session's server (``.uri``);
    each is dropped after the test."""
    names = ServerCollections(milvus_server)
    yield names
    names.drop()


def remembered(encode: Callable[..., Any]) -> Callable[..., Any]:
    """``encode`` (texts -> an array of vectors) with each text's vector remembered."""
    memo: dict[str, Any] = {}

    def remembering(texts: Sequence[str], show_progress: bool | None = None) -> Any:
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, encode(missing, show_progress=False), strict=True))
        if not texts:
            return encode(texts)
        return np.stack([memo[t] for t in texts])

    return remembering


def remembering_encoder(encoder: Any) -> Any:
    """A dense encoder whose document and query encodings are remembered by text: server tests
    index the same texts many times, and a document's text is often its query."""
    encoder.encode_documents = remembered(encoder.encode_documents)
    encoder.encode_queries = remembered(encoder.encode_queries)
    return encoder
