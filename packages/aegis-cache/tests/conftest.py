"""Fixtures for aegis-cache's tests: caches on the test Redis (namespaced) and in memory."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio.connection import AbstractConnection

from aegis.cache import Cache, CacheSettings
from aegis.cache._fastpath import fast_path_available
from aegis.testing import (
    RedisClusterTopology,
    RedisSentinelTopology,
    RestartableServer,
    unique_name,
)

CacheFactory = Callable[..., Cache]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def make_cache(
    redis_url: str, redis_prefix: str, registry: CollectorRegistry
) -> AsyncIterator[CacheFactory]:
    """``make_cache(**settings)``: a Redis cache in this test's namespace, closed afterwards."""
    made: list[Cache] = []

    def make(**settings: object) -> Cache:
        options: dict[str, object] = {"url": redis_url, "namespace": redis_prefix}
        options.update(settings)
        cache = Cache(CacheSettings.model_validate(options), registry=registry)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


@pytest.fixture
def redis_public_path() -> Iterator[None]:
    """redis-py as a release that renamed a parameter the fast path relies on would be.

    The guard runs again and sends the caches built during the test down redis-py's public
    path; it runs again afterwards too, so later tests get the fast path back.
    """
    original = AbstractConnection.send_packed_command

    async def send_packed_command(
        self: AbstractConnection, packed: Any, check_health: bool = True
    ) -> None:
        await original(self, packed, check_health)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
        fast_path_available.cache_clear()
        yield
    fast_path_available.cache_clear()


@pytest.fixture(params=["redis", "redis-public-api", "memory"])
async def cache(
    request: pytest.FixtureRequest, registry: CollectorRegistry
) -> AsyncIterator[Cache]:
    """The same tests on real Redis (the fast path and redis-py's public one) and in memory."""
    if request.param == "memory":
        made = Cache(CacheSettings(namespace="svc"), registry=registry)
    else:
        if request.param == "redis-public-api":
            request.getfixturevalue("redis_public_path")
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        made = Cache(CacheSettings(url=url, namespace=prefix), registry=registry)
    yield made
    await made.close()


@pytest.fixture
def own_redis() -> Iterator[RestartableServer]:
    """A Redis server this test may stop and start again at the same address."""
    with RestartableServer("redis") as server:
        yield server


@pytest.fixture(
    params=[
        pytest.param("cluster", marks=pytest.mark.scaleout),
        pytest.param("sentinel", marks=pytest.mark.scaleout),
    ]
)
def topology_url(request: pytest.FixtureRequest) -> str:
    """The aegis-cache URL of the session's ``redis-cluster``, then of its ``redis-sentinel``."""
    if request.param == "cluster":
        cluster: RedisClusterTopology = request.getfixturevalue("redis_cluster")
        return cluster.url
    sentinel: RedisSentinelTopology = request.getfixturevalue("redis_sentinel")
    return sentinel.url


@pytest.fixture
async def open_cache(registry: CollectorRegistry) -> AsyncIterator[Callable[..., Cache]]:
    """``open_cache(url, **settings)``: a cache in this test's own namespace, closed afterwards.

    For the topologies, shared by the session: a namespace of its own isolates each test.
    Replies get 2 s rather than 0.25 s: on a loaded machine a slow reply would be a miss, and
    these tests are about what the topology does, not about slow replies.
    """
    made: list[Cache] = []
    namespace = unique_name("aegis-test", ":") + ":"

    def make(url: str, **settings: object) -> Cache:
        options: dict[str, object] = {"url": url, "namespace": namespace, "timeout": 2}
        options.update(settings)
        cache = Cache(CacheSettings.model_validate(options), registry=registry)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


@pytest.fixture
def make_topology_cache(topology_url: str, open_cache: Callable[..., Cache]) -> CacheFactory:
    """``make_topology_cache(**settings)``: ``open_cache`` on the topology of ``topology_url``."""
    return functools.partial(open_cache, topology_url)
