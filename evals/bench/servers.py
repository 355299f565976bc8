"""Local servers that benches and tests start and stop: a Milvus standalone server
(``milvus-server``, PyPI ``milvus``) on 127.0.0.1, and the process-group handling that every
server run here shares.

Each server runs in a process group of its own (``start_new_session``: the group id is its pid)
and is stopped by that group's id, SIGTERM then SIGKILL after a grace period, so neither a
wrapper nor the binary it runs outlives the bench or the test. :meth:`GroupProcess.kill` is a
crash (SIGKILL to the whole group), :meth:`GroupProcess.restart` starts it again on the same data
and port.

>>> with running_milvus_standalone(Path("/tmp/bench-milvus")) as server:  # doctest: +SKIP
...     Dense("minilm", engine=MilvusOptions(server.uri, collection="docs"))
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "GroupProcess",
    "MilvusStandalone",
    "ServerStartError",
    "find_executable",
    "free_port",
    "group_members",
    "rss_mib",
    "running_milvus_standalone",
]

#: seconds to wait for a (re)started server to answer; a restart after SIGKILL replays the log
STARTUP_TIMEOUT_S = 120.0


class ServerStartError(RuntimeError):
    """A server is not installed, exited while starting, or did not answer in time."""


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


def _stat_fields(pid: str) -> list[str] | None:
    try:
        return (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class GroupProcess:
    """A server whose :meth:`start` runs ``self.process`` with ``start_new_session=True``;
    :meth:`kill` is a crash, :meth:`stop` a shutdown, :meth:`restart` starts it again."""

    #: seconds a stopping server gets after SIGTERM before its process group is killed
    stop_grace = 10.0

    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        raise NotImplementedError

    def rss_mib(self) -> float:
        """Resident memory of every process of the group now, in MiB."""
        if self.process is None:
            return 0.0
        return sum(rss_mib(pid) for pid in group_members(self.process.pid))

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)  # the group id is the server's pid

    def _wait_group_gone(self, timeout: float) -> bool:
        """Whether no process of the group is left (zombies aside) within ``timeout``."""
        if self.process is None:
            return True
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


def milvus_server_executable() -> str | None:
    return find_executable("milvus-server")


class MilvusStandalone(GroupProcess):
    """One ``milvus-server`` (Milvus 2.3 standalone) on ``127.0.0.1:port``, its data in
    ``root / "data"``.

    ``milvus-server`` is a Python wrapper that unpacks the Milvus binary into ``DATA/bin`` and
    runs ``milvus run standalone`` as its child. Its embedded etcd would listen on the fixed
    ports 2379 and 2380 (two servers on one machine collide): each server gets an etcd config of
    its own on free ports (``ETCD_CONFIG_PATH``), and its components talk over 127.0.0.1
    (``*_IP``), not the machine's first address. ``binaries``: a folder the binaries are
    unpacked into once and shared by several servers (default: under ``root``). The port stays
    the same across :meth:`restart`, so clients reconnect to the same ``uri``.
    """

    stop_grace = 5.0

    def __init__(
        self,
        root: Path,
        binaries: Path | None = None,
        *,
        port: int | None = None,
        session_ttl: int = 30,
    ) -> None:
        """``session_ttl``: seconds before a killed server's sessions expire (Milvus's default
        is 30); a restarted server reloads its collections only then."""
        executable = milvus_server_executable()
        if executable is None:
            raise ServerStartError("`milvus-server` is not installed (pip install 'milvus>=2.3.5')")
        self.executable = executable
        self.root = Path(root)
        self.data = self.root / "data"
        self.binaries = Path(binaries) if binaries is not None else self.root / "bin"
        self.port = port or free_port()
        self.etcd_ports = (free_port(), free_port())  # client, peer
        self.session_ttl = session_ttl
        self.process = None
        self.starts = 0

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.running and self.process else "stopped"
        return f"{type(self).__name__}({self.uri!r}, {state}, data={str(self.data)!r})"

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
            (self.data / "bin").symlink_to(self.binaries.resolve(), target_is_directory=True)
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
                raise ServerStartError(f"milvus-server exited ({self.tail()})")
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
        raise ServerStartError(
            f"milvus-server on {self.uri} did not answer within {timeout:.0f} s "
            f"(last error: {error!r}; {self.tail()})"
        )

    def tail(self) -> str:
        """The end of the wrapper's output and of the server's logs."""

        def tail(path: Path, size: int) -> str:
            return path.read_text(errors="replace")[-size:] if path.exists() else ""

        logs = self.data / "logs"
        return (
            f"its output: {tail(self.log, 800)!r}; the server's: "
            f"{tail(logs / 'milvus-stdout.log', 1500)!r} {tail(logs / 'milvus-stderr.log', 800)!r}"
        )

    def disk_mib(self) -> float:
        """The data folder's size in MiB (the unpacked binaries excluded)."""
        total = 0
        for path in self.data.rglob("*"):
            if (
                path.is_file()
                and not path.is_symlink()
                and "bin" not in path.relative_to(self.data).parts[:1]
            ):
                total += path.stat().st_size
        return total / 2**20

    def remove(self) -> None:
        """Stop for good and delete the data folder (shared binaries stay)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_milvus_standalone(
    root: Path | None = None, binaries: Path | None = None, *, session_ttl: int = 30
) -> Iterator[MilvusStandalone]:
    """A started :class:`MilvusStandalone`, removed (stopped, its folder deleted) on exit;
    ``root`` defaults to a new temporary folder."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="milvus-")))
        server = MilvusStandalone(root, binaries, session_ttl=session_ttl)
        stack.callback(server.remove)
        server.start()
        yield server
