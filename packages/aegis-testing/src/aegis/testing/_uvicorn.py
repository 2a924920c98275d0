"""An ASGI app under a real uvicorn server in a thread, for tests that need real sockets.

Needs the ``asgi`` extra (uvicorn; uvloop and httptools for those implementations).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import uvicorn

from aegis.testing._raw_http import RawConnection

UVICORN_LOOPS: Final = ("asyncio", "uvloop")
"""The event loops uvicorn can run on: parametrize a test over them."""

UVICORN_PROTOCOLS: Final = ("h11", "httptools")
"""uvicorn's HTTP/1.1 implementations: parametrize a test over them."""


@dataclass(frozen=True)
class RunningServer:
    """A server started by :func:`uvicorn_server`.

    Attributes:
        host: the address it listens on.
        port: its port (chosen by the system).
        server: the :class:`uvicorn.Server` itself.
    """

    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def connect(self, *, timeout: float = 10.0) -> RawConnection:
        """A new :class:`~aegis.testing.RawConnection` to the server."""
        return RawConnection(self.host, self.port, timeout=timeout)


class _Server(uvicorn.Server):
    """A uvicorn server that says when its start-up is over, successful or not."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.start_finished = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.start_finished.set()


@contextmanager
def uvicorn_server(
    app: Any,
    *,
    loop: str = "asyncio",
    http: str = "h11",
    host: str = "127.0.0.1",
    start_timeout: float = 60.0,
    **options: Any,
) -> Iterator[RunningServer]:
    """Serve ``app`` with uvicorn in a thread for the block, on a port the system picks.

    uvicorn runs with its defaults except those given (``loop``, ``http``, and any
    :class:`uvicorn.Config` option in ``options``) and no logging configuration of its own
    (``log_config=None``: the test's logging stays as configured; ``access_log=False`` would
    turn propagation of the ``uvicorn.access`` logger off for the whole process, so it is left
    to the caller). The block starts once the application's start-up (lifespan) is over;
    leaving it stops the server after the requests in flight and runs the application's
    shutdown.

    Args:
        app: the ASGI application.
        loop: ``"asyncio"`` or ``"uvloop"`` (:data:`UVICORN_LOOPS`).
        http: ``"h11"`` or ``"httptools"`` (:data:`UVICORN_PROTOCOLS`).
        host: the address to listen on.
        start_timeout: seconds the start-up may take.
        options: other :class:`uvicorn.Config` options (``ws``, ``lifespan``, ...).

    Raises:
        RuntimeError: the server did not start (the application's start-up failed).

    Example:
        >>> with uvicorn_server(app, loop="uvloop", http="httptools") as server:
        ...     with server.connect() as connection:
        ...         assert connection.request("GET", "/health").status == 200
    """
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and accepted sockets inherit it; with proto 0 every response written in two parts waits
    # for the peer's delayed ACK (uvloop sets it regardless).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(128)  # bound before uvicorn starts: clients may connect at once
    settings: dict[str, Any] = {"log_config": None, **options}
    server = _Server(uvicorn.Config(app, loop=loop, http=http, **settings))

    exit_codes: list[object] = []

    def run() -> None:
        try:
            server.run([listener])
        except SystemExit as exit_:  # uvicorn exits when the app's start-up fails
            exit_codes.append(exit_.code)
        finally:  # a server that failed before its start-up must not keep the caller waiting
            server.start_finished.set()

    thread = threading.Thread(target=run, name=f"uvicorn-{loop}-{http}", daemon=True)
    thread.start()
    try:
        if not server.start_finished.wait(start_timeout) or not server.started:
            raise RuntimeError(
                f"uvicorn ({loop}, {http}) did not start (exit code {exit_codes or None}); "
                "see its log above"
            )
        yield RunningServer(host, listener.getsockname()[1], server)
    finally:
        server.should_exit = True
        thread.join()
        listener.close()
