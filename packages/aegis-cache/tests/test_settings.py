"""Settings and URLs: standalone, Sentinel and Cluster clients; near-cache limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool

from aegis.cache import Cache, CacheSettings, MemoryBackend, RedisBackend
from aegis.core.errors import ConfigurationError

pytestmark = pytest.mark.anyio


def test_the_namespace_becomes_a_key_prefix() -> None:
    assert CacheSettings(namespace="users").key_prefix == "users:"
    assert CacheSettings(namespace="users:").key_prefix == "users:"
    assert CacheSettings().key_prefix == ""


def test_the_url_is_a_secret_and_bad_values_are_refused() -> None:
    settings = CacheSettings(url="redis://:hunter2@cache:6379/0")
    assert "hunter2" not in repr(settings)
    with pytest.raises(ValidationError, match="ttl_jitter"):
        CacheSettings(ttl_jitter=1.5)
    with pytest.raises(ValidationError, match="version"):
        CacheSettings(version="has space")


async def test_a_standalone_url_builds_a_client_with_short_timeouts_and_no_retries() -> None:
    cache = Cache(CacheSettings(url="redis://127.0.0.1:6379/3", timeout=0.1, max_connections=7))
    assert isinstance(cache.backend, RedisBackend)
    client = cache.backend.client
    assert isinstance(client, Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.1
    assert kwargs["db"] == 3
    assert client.connection_pool.max_connections == 7
    await cache.close()


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/0", "tcp"),
        ("rediss://127.0.0.1:6379/0", "tls"),
        ("unix:///run/redis.sock", "unix"),
    ],
)
async def test_standalone_connections_use_the_transport_the_url_names(
    url: str, transport: str
) -> None:
    cache = Cache(CacheSettings(url=url))
    assert isinstance(cache.backend, RedisBackend)
    client = cache.backend.client
    assert isinstance(client, Redis)
    connection = client.connection_pool.connection_class
    kinds = {
        "tls": issubclass(connection, SSLConnection),
        "unix": issubclass(connection, UnixDomainSocketConnection),
    }
    assert kinds == {"tls": transport == "tls", "unix": transport == "unix"}
    await cache.close()


async def test_sentinel_urls_build_a_primary_client_through_the_sentinels() -> None:
    url = "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/primary/2"
    cache = Cache(CacheSettings(url=url))
    assert isinstance(cache.backend, RedisBackend)
    client = cache.backend.client
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "primary"
    assert pool.connection_kwargs["db"] == 2
    assert [
        s.connection_pool.connection_kwargs["host"] for s in pool.sentinel_manager.sentinels
    ] == [
        "10.0.0.1",
        "10.0.0.2",
    ]
    await cache.close()


async def test_cluster_urls_build_a_cluster_client() -> None:
    cache = Cache(CacheSettings(url="redis+cluster://10.0.0.1:7000/0"))
    assert isinstance(cache.backend, RedisBackend)
    assert isinstance(cache.backend.client, RedisCluster)
    await cache.close()


async def test_cluster_urls_may_list_several_seed_nodes() -> None:
    url = "redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/0"
    cache = Cache(CacheSettings(url=url))
    assert isinstance(cache.backend, RedisBackend)
    client = cache.backend.client
    assert isinstance(client, RedisCluster)
    seeds = {(node.host, node.port) for node in client.startup_nodes}
    assert seeds == {("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)}
    for node in client.startup_nodes:
        assert node.connection_kwargs["username"] == "app"
        assert node.connection_kwargs["password"] == "s@cret"
    await cache.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://", "redis+cluster:// names no host"),
        ("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:abc", "the port 'abc' of '10.0.0.2:abc'"),
        ("redis+sentinel://:pw@10.0.0.1,,10.0.0.3/primary", "host 2 of 3 is empty"),
        ("redis+sentinel://:pw@10.0.0.1//0", "the Sentinel service name is empty"),
        ("redis+sentinel://:pw@10.0.0.1/primary/two", "the database 'two' is not a number"),
        ("redis://:pw@cache:99999/0", "the port '99999' of 'cache:99999'"),
        ("redis+replica://:pw@cache", "not redis+replica://"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_setting_and_what_is_wrong(
    url: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Cache(CacheSettings(url=url))
    assert caught.value.message.startswith("CacheSettings.url: ")
    assert problem in caught.value.message
    assert "pw" not in caught.value.message


def test_the_near_cache_needs_a_standalone_redis() -> None:
    with pytest.raises(ConfigurationError, match="standalone"):
        Cache(CacheSettings(url="redis+cluster://10.0.0.1:7000", near_cache=True))
    memory = Cache(CacheSettings(near_cache=True))
    assert isinstance(memory.backend, MemoryBackend)
    assert memory.store.near is None  # process memory needs no near cache
