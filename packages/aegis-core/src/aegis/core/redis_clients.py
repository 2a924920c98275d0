"""redis-py's asyncio clients of a Redis Cluster and of a Sentinel primary, from a parsed URL.

Needs the ``redis`` extra. aegis-cache and aegis-service's revocations build their clients of
``redis+cluster://`` and ``redis+sentinel://`` URLs (:mod:`aegis.core.redis_urls`) here, each
with its own timeouts and pool options; a standalone server needs nothing of this module
(``redis.asyncio.Redis.from_url`` takes its URL as it is). Nothing connects before the first
command.

Example:
    >>> from aegis.core.redis_urls import parse_redis_url
    >>> cluster = cluster_client(parse_redis_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000"))
    >>> sorted(node.name for node in cluster.startup_nodes)
    ['10.0.0.1:7000', '10.0.0.2:7000']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aegis.core.errors import ConfigurationError
from aegis.core.redis_urls import DEFAULT_SENTINEL_SERVICE, RedisKind, RedisURL
from aegis.core.utils.lazy import extra_required

# Without the extra, say which one to install instead of a bare "No module named".
with extra_required(__name__, {"redis": "aegis-core[redis]"}):
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool


def cluster_client(url: RedisURL, **options: Any) -> RedisCluster:
    """The ``RedisCluster`` client of a ``redis+cluster://`` URL.

    Every host of the URL is a seed: the client asks them in turn for the cluster's nodes, so
    one that is down when the service starts is skipped.

    Args:
        url: a parsed ``redis+cluster://`` (or ``rediss+cluster://``) URL.
        options: for ``RedisCluster`` (timeouts, ``max_connections``, ``retry``...).

    Raises:
        ConfigurationError: ``url`` is not a cluster's.
    """
    _expect(url, "cluster")
    seeds = [ClusterNode(host, port) for host, port in url.hosts[1:]]
    return RedisCluster.from_url(url.node_url(), startup_nodes=seeds or None, **options)


def sentinel_primary(
    url: RedisURL, *, sentinel_options: Mapping[str, Any] | None = None, **options: Any
) -> Redis:
    """The client of the primary that the sentinels of a ``redis+sentinel://`` URL name.

    The client asks the sentinels again for the primary when it loses it (after a failover).
    The URL's user name and password are the primary's; the password, and TLS, are the
    sentinels' too. Close the sentinels' connections with :func:`close_sentinels`.

    Args:
        url: a parsed ``redis+sentinel://`` (or ``rediss+sentinel://``) URL.
        sentinel_options: for the connections to the sentinels (their timeouts).
        options: for the primary's connections (timeouts, ``max_connections``, ``retry``...).

    Raises:
        ConfigurationError: ``url`` is not a sentinel's.
    """
    _expect(url, "sentinel")
    password = url.password.get_secret_value() if url.password else None
    # redis-py types Sentinel() from 8.2 on, not before: through a typed name, mypy is clean
    # with both, where a "type: ignore" would be unused on one of them.
    new_sentinel: Callable[..., Sentinel] = Sentinel
    sentinel = new_sentinel(
        list(url.hosts),
        sentinel_kwargs={**(sentinel_options or {}), "password": password, "ssl": url.tls},
        username=url.username,
        password=password,
        db=url.db or 0,
        ssl=url.tls,
        **options,
    )
    primary: Redis = sentinel.master_for(url.service or DEFAULT_SENTINEL_SERVICE)
    return primary


async def close_sentinels(client: Redis | RedisCluster) -> None:
    """Close the connections a Sentinel primary's client keeps to the sentinels.

    The client's own connections are not closed (``await client.aclose()`` does). Any other
    client is left as it is.
    """
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def _expect(url: RedisURL, kind: RedisKind) -> None:
    if url.kind != kind:
        raise ConfigurationError(
            f"a {url.scheme}:// URL names no Redis {kind}: its client is built otherwise"
        )


__all__ = ["close_sentinels", "cluster_client", "sentinel_primary"]
