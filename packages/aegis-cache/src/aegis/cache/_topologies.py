"""The redis-py clients of ``redis+cluster://`` and ``redis+sentinel://`` URLs, and what they lack.

redis-py's standalone client waits for a free connection when its (blocking) pool is full; its
Cluster and Sentinel pools raise at once instead. Under a burst of requests that error would
count as a Redis failure and open the circuit breaker while Redis is healthy, so
:class:`CommandSlots` bounds the commands in flight and waits, up to the timeout, as the
blocking pool does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError

from aegis.cache._settings import CacheSettings

_REDIS_PORT = 6379
_SENTINEL_PORT = 26379


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """``h1:p1,h2,[::1]:p3`` (after any ``user:password@``) as ``(host, port)`` pairs."""
    hosts = []
    for node in netloc.rpartition("@")[2].split(","):
        host, colon, port = node.rpartition(":")
        if not colon or host.endswith(":") or not port.isdigit():  # no port, or bare IPv6
            host, port = node, str(default_port)
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]``.

    Every host is a seed: the client asks them in turn for the cluster's nodes, so one that
    is down when the service starts is skipped. Nothing connects until the first command.
    """
    parts = urlsplit(url)
    credentials, at, netloc = parts.netloc.rpartition("@")
    first, *others = netloc.split(",")
    single = parts._replace(
        scheme=parts.scheme.replace("+cluster", "", 1), netloc=credentials + at + first
    )
    seeds = [ClusterNode(host, port) for host, port in _hosts(",".join(others), _REDIS_PORT)]
    seeds = seeds if others else []
    return RedisCluster.from_url(urlunsplit(single), startup_nodes=seeds or None, **options)


def sentinel_client(url: str, settings: CacheSettings, common: dict[str, Any]) -> Redis:
    """``redis+sentinel://[:password@]host:26379,host2:26379/service[/db]``: its primary."""
    parts = urlsplit(url)
    path = [segment for segment in parts.path.split("/") if segment]
    service = path[0] if path else "mymaster"
    db = int(path[1]) if len(path) > 1 else 0
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    ssl = parts.scheme.startswith("rediss")
    # redis-py types Sentinel() from 8.2 on, not in 8.1 (the floor): through a typed name, mypy
    # is clean with both, where a "type: ignore" would be unused on one of them.
    new_sentinel: Callable[..., Sentinel] = Sentinel
    sentinel = new_sentinel(
        _hosts(parts.netloc, _SENTINEL_PORT),
        sentinel_kwargs={
            "socket_timeout": settings.timeout,
            "socket_connect_timeout": settings.connect_timeout,
            "password": password,
            "ssl": ssl,
        },
        username=username,
        password=password,
        db=db,
        ssl=ssl,
        max_connections=settings.max_connections,
        **common,
    )
    client: Redis = sentinel.master_for(service)
    return client


async def close_sentinels(client: Redis | RedisCluster) -> None:
    """Close the connections a Sentinel client keeps to the sentinels (its primary's are not)."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


class CommandSlots:
    """At most ``size`` commands in flight; a command waits up to ``timeout`` for a slot.

    Raises (on entry):
        redis.exceptions.ConnectionError: no slot came free within ``timeout`` (what a full
            blocking pool raises on a standalone server).
    """

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._free = asyncio.Semaphore(size)

    async def __aenter__(self) -> None:
        if not self._free.locked():
            await self._free.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._free.acquire()
        except TimeoutError:
            raise RedisConnectionError(
                f"no connection came free within {self.timeout:g}s ({self.size} in use)"
            ) from None

    async def __aexit__(self, *exc_info: object) -> None:
        self._free.release()
