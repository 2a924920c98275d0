"""The redis-py client of a revocation URL: one server, a Redis Cluster or a Sentinel primary.

Imported only when the settings name a revocation Redis (the ``revocation`` extra).

The URL forms are aegis-cache's: ``redis://`` (or ``rediss://``, ``unix://``) for one server,
``redis+cluster://[user:password@]host:port[,host:port...]`` (seed nodes; the client learns the
others) and ``redis+sentinel://[:password@]host:26379,host2:26379/service[/db]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

_REDIS_PORT = 6379
_SENTINEL_PORT = 26379


Close = Callable[[], Awaitable[None]]


def redis_client(url: str, *, timeout: float) -> tuple[Redis | RedisCluster, Close]:
    """A client for ``url`` and what closes it (with the sentinels' connections).

    ``timeout``: seconds to connect and per reply. Nothing connects before the first command.
    """
    scheme = urlsplit(url).scheme
    common: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if scheme.endswith("+cluster"):
        cluster = _cluster(url, common)
        return cluster, cluster.aclose
    if scheme.endswith("+sentinel"):
        return _sentinel_primary(url, common)
    client = Redis.from_url(url, **common)
    return client, client.aclose


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """``h1:p1,h2,[::1]:p3`` (after any ``user:password@``) as ``(host, port)`` pairs."""
    hosts = []
    for node in netloc.rpartition("@")[2].split(","):
        host, colon, port = node.rpartition(":")
        if not colon or host.endswith(":") or not port.isdigit():  # no port, or bare IPv6
            host, port = node, str(default_port)
        hosts.append((host.strip("[]"), int(port)))
    return hosts


def _cluster(url: str, common: dict[str, Any]) -> RedisCluster:
    """Every host of ``url`` is a seed: one that is down at start-up is skipped."""
    parts = urlsplit(url)
    credentials, at, netloc = parts.netloc.rpartition("@")
    first, *others = netloc.split(",")
    single = parts._replace(
        scheme=parts.scheme.replace("+cluster", "", 1), netloc=credentials + at + first
    )
    seeds = [ClusterNode(host, port) for host, port in _hosts(",".join(others), _REDIS_PORT)]
    return RedisCluster.from_url(
        urlunsplit(single), startup_nodes=seeds if others else None, **common
    )


def _sentinel_primary(url: str, common: dict[str, Any]) -> tuple[Redis, Close]:
    """The primary that the sentinels of ``url`` hand out, found again after a failover."""
    parts = urlsplit(url)
    hosts = _hosts(parts.netloc, _SENTINEL_PORT)
    path = [segment for segment in parts.path.split("/") if segment]
    service = path[0] if path else "mymaster"
    password = unquote(parts.password) if parts.password else None
    username = unquote(parts.username) if parts.username else None
    ssl = parts.scheme.startswith("rediss")
    # redis-py types Sentinel() from 8.2 on, not in 8.1 (the floor): through a typed name, mypy
    # is clean with both.
    new_sentinel: Callable[..., Sentinel] = Sentinel
    sentinel = new_sentinel(
        hosts,
        sentinel_kwargs={**common, "password": password, "ssl": ssl},
        username=username,
        password=password,
        db=int(path[1]) if len(path) > 1 else 0,
        ssl=ssl,
        **common,
    )
    primary: Redis = sentinel.master_for(service)

    async def close() -> None:
        await primary.aclose()
        for client in sentinel.sentinels:
            await client.aclose()

    return primary, close
