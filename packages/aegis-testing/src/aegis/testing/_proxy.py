"""TcpProxy: a TCP path to a server that a test can cut and restore, for outage tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

_CHUNK = 65536


class TcpProxy:
    """Forward a local TCP port to a server; :meth:`cut` and :meth:`restore` the path at will.

    For outage tests of a server the test must not stop (a shared PostgreSQL): point the code
    under test at :attr:`address` and cut the path. While cut, connections are refused and the
    ones open are closed, as when the server goes away; restored, the same address works again.
    The server is ``host`` and ``port``, or a unix socket path given as ``host`` with no port
    (an embedded PostgreSQL listens on ``DATA_DIR/.s.PGSQL.5432`` only).

    Example:
        >>> with TcpProxy("127.0.0.1", 5432) as proxy:
        ...     url = f"postgresql://postgres@{proxy.address}/test"
        ...     proxy.cut()  # the outage
        ...     proxy.restore()
    """

    def __init__(self, host: str, port: int | None = None) -> None:
        self._target = host if port is None else (host, port)
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the same across cuts."""
        return f"127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Listen again (a no-op while listening): new connections reach the target."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and close every forwarded connection (a no-op while cut)."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._open = self._open, set()
        if listener is not None:
            _close(listener)
        for connection in connections:
            _close(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    return
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self._target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self._target)
            except OSError:
                upstream.close()
                raise
            return upstream
        upstream = socket.create_connection(self._target, timeout=10)
        upstream.settimeout(None)
        return upstream

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass  # one side closed (or cut): both are closed below
        finally:
            with self._lock:
                self._open -= {source, sink}
            _close(source)
            _close(sink)

    def __enter__(self) -> Self:
        self.restore()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cut()


def _close(connection: socket.socket) -> None:
    # shutdown() first: it also wakes a thread blocked in accept() or recv() on the socket
    with contextlib.suppress(OSError):  # not connected, or closed already
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()
