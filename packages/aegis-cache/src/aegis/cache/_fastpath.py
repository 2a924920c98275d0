"""The redis-py internals behind the fast path of a standalone server, and the check they exist.

Each private name of redis-py is read in exactly one function below. :func:`fast_path_available`
checks, the first time a standalone client is built, that every one of them is still there with
the shape this code was tested with (redis-py 8.1 and 8.2; the dependency is capped below 9).
When one is missing, the cache logs one WARNING naming it and uses redis-py's public path
(a plain ``BlockingConnectionPool`` and ``Redis.get``): slower, same behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.asyncio import BlockingConnectionPool, ConnectionPool
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

_LOGGER = logging.getLogger("aegis.cache")
_SEND_PARAMETERS = ["self", "command", "check_health"]


def _writer(connection: AbstractConnection) -> asyncio.StreamWriter | None:
    """The connection's stream writer: redis-py's private ``_writer``."""
    writer: asyncio.StreamWriter | None = connection._writer
    return writer


def _has_idle_connection(pool: BlockingConnectionPool) -> bool:
    """Whether an idle connection waits in ``pool`` and no maintenance is under way.

    redis-py's private ``_available_connections`` and ``_in_maintenance``.
    """
    return bool(pool._available_connections) and not pool._in_maintenance


class _BoundedWrites(AbstractConnection):
    """Bounds a write with ``asyncio.timeout`` where redis-py uses ``asyncio.wait_for``.

    On Python 3.11 ``wait_for`` runs the write in a new task: a task and two more event-loop
    turns per command. ``asyncio.timeout`` bounds the same write in place (what ``wait_for``
    itself does from Python 3.12 on); the limit is unchanged.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        limit = self.socket_timeout
        if not limit or not self.is_connected:
            # Connecting sends its own handshake commands: redis-py's path as it is.
            await super().send_packed_command(command, check_health)
            return
        writer = _writer(self)
        # Without a socket_timeout redis-py writes directly; the scope below is the limit.
        self.socket_timeout = None
        try:
            async with asyncio.timeout(limit):
                await super().send_packed_command(command, check_health)
        except TimeoutError:
            # redis-py closed the connection, but a closing transport still sends what it holds:
            # the rest of the command would reach Redis later and a write reported as skipped
            # could land after a newer one. Drop it; Redis discards a truncated command.
            if writer is not None:
                writer.transport.abort()
            raise RedisTimeoutError("Timeout writing to socket") from None
        finally:
            if self.socket_timeout is None:  # unless redis-py changed it meanwhile
                self.socket_timeout = limit


class _BoundedConnection(_BoundedWrites, Connection):
    """TCP."""


class _BoundedSSLConnection(_BoundedWrites, SSLConnection):
    """TLS."""


class _BoundedUnixConnection(_BoundedWrites, UnixDomainSocketConnection):
    """Unix socket."""


BOUNDED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _BoundedConnection,
    SSLConnection: _BoundedSSLConnection,
    UnixDomainSocketConnection: _BoundedUnixConnection,
}


class PromptBlockingPool(BlockingConnectionPool):
    """A blocking pool that takes an idle connection without the wait machinery.

    ``BlockingConnectionPool.get_connection`` enters a condition and a timeout scope on every
    call; only an empty pool needs to wait.
    """

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if _has_idle_connection(self):
            return await ConnectionPool.get_connection(self)  # type: ignore[no-untyped-call]
        return await super().get_connection()  # type: ignore[no-untyped-call]


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _callable_without_arguments(function: Callable[..., Any], instance: object) -> bool:
    try:
        inspect.signature(function).bind(instance)
    except TypeError:
        return False
    return True


def missing_internals() -> list[str]:
    """Name what the fast path needs of redis-py and does not find; empty when all is there."""
    missing: list[str] = []
    try:
        connection = Connection()  # neither of them connects anything
        pool = BlockingConnectionPool(connection_class=Connection)
    except Exception as exc:  # any failure here means "use the public path"
        return [f"Connection() and BlockingConnectionPool() ({type(exc).__name__}: {exc})"]
    for owner, name in (
        (connection, "_writer"),
        (connection, "socket_timeout"),
        (pool, "_available_connections"),
        (pool, "_in_maintenance"),
    ):
        if not hasattr(owner, name):
            missing.append(f"{type(owner).__name__}.{name}")
    if not isinstance(inspect.getattr_static(Connection, "is_connected", None), property):
        missing.append("Connection.is_connected (a property)")
    send = getattr(AbstractConnection, "send_packed_command", None)
    if (
        send is None
        or not inspect.iscoroutinefunction(send)
        or _parameters(send) != _SEND_PARAMETERS
    ):
        missing.append(
            "AbstractConnection.send_packed_command(self, command, check_health) (a coroutine)"
        )
    for pool_class in (ConnectionPool, BlockingConnectionPool):
        get = getattr(pool_class, "get_connection", None)
        if get is None or not _callable_without_arguments(get, pool):
            missing.append(f"{pool_class.__name__}.get_connection() without arguments")
    return missing


@functools.cache
def fast_path_available() -> bool:
    """Whether redis-py has what the fast path needs; logs one WARNING (per process) if not."""
    missing = missing_internals()
    if missing:
        _LOGGER.warning(
            "cache: redis-py %s lacks what the cache's fast path uses (%s); using "
            "redis-py's public API instead (slower, same behaviour)",
            redis.__version__,
            "; ".join(missing),
        )
    return not missing
