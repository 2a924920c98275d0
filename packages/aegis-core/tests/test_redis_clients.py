"""cluster_client and sentinel_primary: redis-py's clients built from a parsed URL (no server)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from aegis.core import redis_clients
from aegis.core.errors import ConfigurationError
from aegis.core.redis_clients import close_sentinels, cluster_client, sentinel_primary
from aegis.core.redis_urls import parse_redis_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_public_names_of_the_module() -> None:
    assert redis_clients.__all__ == ["close_sentinels", "cluster_client", "sentinel_primary"]


async def test_every_host_of_a_cluster_url_is_a_seed_with_the_urls_credentials() -> None:
    url = parse_redis_url("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/0")
    client = cluster_client(url, max_connections=9, socket_timeout=1.5)
    try:
        assert isinstance(client, RedisCluster)
        seeds = {(node.host, node.port) for node in client.startup_nodes}
        assert seeds == {("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)}
        for node in client.startup_nodes:
            assert node.connection_class is Connection
            assert node.connection_kwargs["username"] == "app"
            assert node.connection_kwargs["password"] == "s@cret"
            assert node.connection_kwargs["socket_timeout"] == 1.5
        assert client.connection_kwargs["max_connections"] == 9
    finally:
        await client.aclose()


async def test_a_cluster_url_of_one_host_and_its_options() -> None:
    url = parse_redis_url("rediss+cluster://node:7000?health_check_interval=3")
    client = cluster_client(url)
    try:
        [node] = client.startup_nodes
        assert (node.host, node.port) == ("node", 7000)
        assert node.connection_class is SSLConnection
        assert node.connection_kwargs["health_check_interval"] == 3
    finally:
        await client.aclose()


async def test_a_sentinel_url_gives_its_services_primary_through_every_sentinel() -> None:
    url = parse_redis_url("rediss+sentinel://app:pw@10.0.0.1:26379,10.0.0.2/primary/2")
    client = sentinel_primary(
        url, sentinel_options={"socket_timeout": 0.5}, socket_timeout=0.25, max_connections=7
    )
    try:
        assert isinstance(client, Redis)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "primary"
        assert pool.max_connections == 7
        assert pool.connection_class is SentinelManagedSSLConnection
        primary = pool.connection_kwargs
        assert (primary["username"], primary["password"], primary["db"]) == ("app", "pw", 2)
        assert primary["socket_timeout"] == 0.25
        sentinels = [s.connection_pool for s in pool.sentinel_manager.sentinels]
        assert [(s.connection_kwargs["host"], s.connection_kwargs["port"]) for s in sentinels] == [
            ("10.0.0.1", 26379),
            ("10.0.0.2", 26379),
        ]
        for sentinel in sentinels:
            assert sentinel.connection_class is SSLConnection
            assert sentinel.connection_kwargs["password"] == "pw"
            assert sentinel.connection_kwargs["socket_timeout"] == 0.5
    finally:
        await close_sentinels(client)
        await client.aclose()


async def test_a_sentinel_url_without_a_path_names_mymaster_database_0() -> None:
    client = sentinel_primary(parse_redis_url("redis+sentinel://s1"))
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "mymaster"
        assert pool.connection_kwargs["db"] == 0
        assert pool.connection_kwargs["password"] is None
    finally:
        await close_sentinels(client)
        await client.aclose()


async def test_close_sentinels_closes_each_sentinels_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = sentinel_primary(parse_redis_url("redis+sentinel://s1,s2,s3/primary"))
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    closed: list[int] = []
    for index, sentinel in enumerate(pool.sentinel_manager.sentinels):
        real = sentinel.aclose

        async def aclose(index: int = index, real: object = real) -> None:
            closed.append(index)
            await real()  # type: ignore[operator]

        monkeypatch.setattr(sentinel, "aclose", aclose)
    await close_sentinels(client)
    assert closed == [0, 1, 2]
    await client.aclose()


async def test_close_sentinels_leaves_other_clients_alone() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0")
    await close_sentinels(client)  # nothing to close, nothing raised
    await client.aclose()


@pytest.mark.parametrize(
    ("build", "url", "kind"),
    [
        (cluster_client, "redis+sentinel://s1/primary", "cluster"),
        (cluster_client, "redis://h", "cluster"),
        (sentinel_primary, "redis+cluster://h1", "sentinel"),
        (sentinel_primary, "unix:///run/redis.sock", "sentinel"),
    ],
)
def test_a_url_of_another_kind_is_refused(build: object, url: str, kind: str) -> None:
    with pytest.raises(ConfigurationError, match=f"names no Redis {kind}"):
        build(parse_redis_url(url))  # type: ignore[operator]
