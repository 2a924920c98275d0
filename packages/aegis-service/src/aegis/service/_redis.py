"""The redis-py client of a revocation URL: one server, a Redis Cluster or a Sentinel primary.

Imported only when the settings name a revocation Redis (the ``revocation`` extra).

The URL forms are aegis-cache's (:mod:`aegis.core.redis_urls`): ``redis://`` (or ``rediss://``,
``unix://``) for one server, ``redis+cluster://[user:password@]host:port[,host:port...]`` (seed
nodes; the client learns the others) and
``redis+sentinel://[:password@]host:26379,host2:26379/service[/db]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from aegis.core.redis_clients import close_sentinels, cluster_client, sentinel_primary
from aegis.core.redis_urls import parse_redis_url

Close = Callable[[], Awaitable[None]]


def redis_client(url: str, *, timeout: float) -> tuple[Redis | RedisCluster, Close]:
    """A client for ``url`` and what closes it (with the sentinels' connections).

    ``timeout``: seconds to connect and per reply. Nothing connects before the first command.

    Raises:
        ConfigurationError: ``url`` is malformed (what is wrong is named).
    """
    parsed = parse_redis_url(url, name="AuthSettings.revocation_redis_url")
    common: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if parsed.kind == "cluster":
        cluster = cluster_client(parsed, **common)
        return cluster, cluster.aclose
    if parsed.kind == "sentinel":
        primary = sentinel_primary(parsed, sentinel_options=common, **common)

        async def close() -> None:
            await primary.aclose()
            await close_sentinels(primary)

        return primary, close
    client = Redis.from_url(url, **common)
    return client, client.aclose
