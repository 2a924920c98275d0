"""A primary dies mid-traffic on Redis Cluster and on Sentinel: the cache fails open, then serves
again from the promoted replica, without a restart.

Each test kills the primary that holds the hot keys (SIGKILL: a crash), drives reads and writes
through the failover, and leaves the shared topology whole again (the killed node restarts as a
replica).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster

from aegis.cache import Cache, CacheUnavailableError
from aegis.cache._redis import RedisBackend
from aegis.testing import RedisClusterTopology, RedisSentinelTopology

pytestmark = [pytest.mark.anyio, pytest.mark.scaleout]

logger = logging.getLogger(__name__)

CacheFactory = Callable[..., Cache]
# Hash-tagged: every hot key lives in one slot, so on the cluster one primary holds them all.
HOT_KEYS = [f"{{hot}}:{number}" for number in range(5)]
# Seconds a single call may take: both timeouts (connect, then reply) and room for a loaded
# machine; far below a failover, which lasts seconds.
CALL_BOUND = 1.5


@dataclass
class Timeline:
    """What the traffic saw: when the kill happened, when the cache served again, and how."""

    killed_at: float | None = None
    served_again_at: float | None = None
    slowest_call: float = 0.0
    circuit_opened: bool = False
    errors_at_kill: int = 0
    calls: int = 0

    @property
    def gap(self) -> float:
        """Seconds from the kill to the first write and read that worked again."""
        assert self.killed_at is not None
        assert self.served_again_at is not None
        return self.served_again_at - self.killed_at


async def run_through_failover(
    cache: Cache, registry: CollectorRegistry, kill: Callable[[], object]
) -> Timeline:
    """Write and read the hot keys while ``kill()`` (in a thread) takes their primary down.

    Returns once a write and the read after it work again after errors were seen; every call
    in between must return (fail open), none may raise.
    """
    timeline = Timeline()
    gauge = {"namespace": cache.labels.namespace}

    async def timed(call: Awaitable[object]) -> object:
        began = time.monotonic()
        result = await call
        timeline.slowest_call = max(timeline.slowest_call, time.monotonic() - began)
        timeline.calls += 1
        return result

    async def traffic() -> None:
        number = 0
        while timeline.served_again_at is None:
            number += 1
            key = HOT_KEYS[number % len(HOT_KEYS)]
            stored = await timed(cache.set(key, number, ttl=60))
            read = await timed(cache.get(key))
            if registry.get_sample_value("aegis_cache_circuit_open", gauge) == 1:
                timeline.circuit_opened = True
            if (
                timeline.killed_at is not None
                and cache.stats().errors > timeline.errors_at_kill
                and stored
                and read == number
            ):
                timeline.served_again_at = time.monotonic()
            # Pacing, not waiting: while the circuit is open a call returns without I/O, and
            # the loop must leave the event loop to the rest of the test.
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as group:
        group.start_soon(traffic)
        with anyio.fail_after(30):
            while timeline.calls < 100:  # steady traffic first
                await anyio.sleep(0.005)
        assert cache.stats().errors == 0
        timeline.errors_at_kill = cache.stats().errors
        await anyio.to_thread.run_sync(kill)
        timeline.killed_at = time.monotonic()
        with anyio.fail_after(60):
            while timeline.served_again_at is None:
                await anyio.sleep(0.005)
    return timeline


def _failover_cache(open_cache: CacheFactory, url: str) -> Cache:
    # The breaker opens after 3 failures and probes every 0.1 s: the gap measured is the
    # topology's failover plus at most one reset timeout.
    return open_cache(
        url,
        timeout=0.25,
        connect_timeout=0.25,
        circuit_failure_threshold=3,
        circuit_reset_timeout=0.1,
    )


def _check(timeline: Timeline, cache: Cache, registry: CollectorRegistry, kind: str) -> None:
    logger.info(
        "%s failover: served again %.0f ms after the kill; slowest call %.0f ms",
        kind,
        timeline.gap * 1000,
        timeline.slowest_call * 1000,
    )
    assert timeline.slowest_call < CALL_BOUND  # failed open, never waited for the failover
    assert cache.stats().errors > timeline.errors_at_kill
    assert timeline.circuit_opened
    assert cache.fail_open.closed  # closed again by the calls that worked
    gauge = {"namespace": cache.labels.namespace}
    assert registry.get_sample_value("aegis_cache_circuit_open", gauge) == 0


async def test_cluster_primary_dies_mid_traffic(
    redis_cluster: RedisClusterTopology, open_cache: CacheFactory, registry: CollectorRegistry
) -> None:
    cache = _failover_cache(open_cache, redis_cluster.url)
    victim = redis_cluster.primary_for(cache.prefix + HOT_KEYS[0])
    try:
        timeline = await run_through_failover(cache, registry, lambda: redis_cluster.kill(victim))
    finally:
        await anyio.to_thread.run_sync(_restore, redis_cluster, victim)
    _check(timeline, cache, registry, "cluster")
    assert redis_cluster.primary_for(cache.prefix + HOT_KEYS[0]) != victim
    assert await cache.get_many(HOT_KEYS[:2]) != {}  # still served after the old primary's return


async def test_sentinel_primary_dies_mid_traffic(
    redis_sentinel: RedisSentinelTopology, open_cache: CacheFactory, registry: CollectorRegistry
) -> None:
    cache = _failover_cache(open_cache, redis_sentinel.url)
    victim = redis_sentinel.primary()
    try:
        timeline = await run_through_failover(cache, registry, lambda: redis_sentinel.kill(victim))
    finally:
        await anyio.to_thread.run_sync(_restore, redis_sentinel, victim)
    _check(timeline, cache, registry, "sentinel")
    assert redis_sentinel.primary() != victim
    assert await cache.get_many(HOT_KEYS[:2]) != {}  # still served after the old primary's return


def _restore(topology: RedisClusterTopology | RedisSentinelTopology, victim: str) -> None:
    """Wait for the promotion, bring the killed node back (as a replica), wait until whole."""
    topology.wait_healthy(timeout=30)
    if not topology.node(victim).is_running():
        topology.start_node(victim)
    topology.wait_healthy(timeout=30)


async def test_cluster_health_check_fails_while_any_primary_is_down(
    redis_cluster: RedisClusterTopology, open_cache: CacheFactory
) -> None:
    # Not the node the client sends keyless commands to: a PING of that one alone passes.
    cache = _failover_cache(open_cache, redis_cluster.url)
    assert await cache.health_check() == {"backend": "redis", "circuit_open": False}
    assert isinstance(cache.backend, RedisBackend)
    assert isinstance(cache.backend.client, RedisCluster)
    default = cache.backend.client.get_default_node()
    roles = redis_cluster.roles()
    victim = next(
        name
        for name, role in sorted(roles.items())
        if role == "primary" and redis_cluster.node(name).port != default.port
    )
    try:
        await anyio.to_thread.run_sync(redis_cluster.kill, victim)
        with pytest.raises(CacheUnavailableError, match="does not answer PING"):
            await cache.health_check()
    finally:
        await anyio.to_thread.run_sync(_restore, redis_cluster, victim)
    with anyio.fail_after(30):  # the client finds the promoted replica
        while True:
            try:
                await cache.health_check()
                break
            except CacheUnavailableError:
                await anyio.sleep(0.1)
