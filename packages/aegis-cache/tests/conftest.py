"""Fixtures for aegis-cache's tests: caches on the test Redis (namespaced) and in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from aegis.cache import Cache, CacheSettings
from aegis.testing import RestartableServer

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


@pytest.fixture(params=["redis", "memory"])
async def cache(
    request: pytest.FixtureRequest, registry: CollectorRegistry
) -> AsyncIterator[Cache]:
    """The same tests on both backends: real Redis and the in-memory one."""
    if request.param == "memory":
        made = Cache(CacheSettings(namespace="svc"), registry=registry)
    else:
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
