"""Prometheus metrics and stats(): hits, misses, errors and latency per namespace."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from aegis.cache import Cache, CacheSettings

pytestmark = pytest.mark.anyio


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_hits_misses_and_latency_are_counted_per_namespace(
    redis_url: str, redis_prefix: str, registry: CollectorRegistry
) -> None:
    cache = Cache(CacheSettings(url=redis_url, namespace=redis_prefix + "m"), registry=registry)
    namespace = redis_prefix + "m"

    @cache.cached(ttl=60, namespace="reports")
    async def report(day: int) -> int:
        return day

    await cache.set("a", 1)
    await cache.get("a")
    await cache.get("b")
    await report(1)
    await report(1)
    await cache.get_many(["a", "b", "c"])
    assert _value(registry, "aegis_cache_hits_total", namespace=namespace, layer="remote") == 2
    assert _value(registry, "aegis_cache_misses_total", namespace=namespace) == 3
    assert _value(registry, "aegis_cache_hits_total", namespace="reports", layer="remote") == 1
    assert _value(registry, "aegis_cache_misses_total", namespace="reports") == 1
    assert (
        _value(
            registry,
            "aegis_cache_operation_duration_seconds_count",
            namespace=namespace,
            operation="get",
        )
        == 2
    )
    assert (
        _value(
            registry,
            "aegis_cache_operation_duration_seconds_count",
            namespace=namespace,
            operation="set",
        )
        == 1
    )
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.errors) == (3, 4, 0)
    assert stats.hit_ratio == pytest.approx(3 / 7)
    await cache.close()


async def test_two_caches_share_the_metric_families_of_one_registry(
    registry: CollectorRegistry,
) -> None:
    one = Cache(CacheSettings(namespace="one"), registry=registry)
    two = Cache(CacheSettings(namespace="two"), registry=registry)
    await one.get("x")
    await two.get("x")
    assert _value(registry, "aegis_cache_misses_total", namespace="one") == 1
    assert _value(registry, "aegis_cache_misses_total", namespace="two") == 1
    assert Cache().stats().hit_ratio == 0.0


async def test_near_cache_hits_are_labelled_near(
    redis_url: str, redis_prefix: str, registry: CollectorRegistry
) -> None:
    cache = Cache(
        CacheSettings(url=redis_url, namespace=redis_prefix, near_cache=True), registry=registry
    )
    assert await cache.start()
    await cache.set_many({"a": 1, "b": 2})
    assert await cache.get_many(["a", "b"]) == {"a": 1, "b": 2}
    assert await cache.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert await cache.get("a") == 1
    label = redis_prefix.rstrip(":")
    assert _value(registry, "aegis_cache_hits_total", namespace=label, layer="near") == 3
    assert cache.stats().near_hits == 3
    await cache.close()
