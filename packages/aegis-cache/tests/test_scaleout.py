"""Every feature on a real Redis Cluster (3 primaries, 3 replicas) and a Sentinel-managed primary.

Each test runs on both topologies (``topology_url``); the topologies are shared by the session
and each test writes under a namespace of its own.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

import anyio
import psutil
import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.crc import key_slot

from aegis.cache import Cache, CacheSettings, RateAlgorithm, RateLimiter
from aegis.core.errors import ConfigurationError
from aegis.testing import RedisClusterTopology, RedisSentinelTopology

pytestmark = [pytest.mark.anyio, pytest.mark.scaleout]

CacheFactory = Callable[..., Cache]


def _primaries(cluster: RedisClusterTopology, full_keys: list[str]) -> set[str]:
    return {cluster.primary_for(key) for key in full_keys}


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` (polled), at most ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


async def test_get_set_and_the_many_variants_work_across_slots(
    make_topology_cache: CacheFactory,
) -> None:
    cache = make_topology_cache()
    items = {f"user:{number}": {"id": number} for number in range(30)}
    assert await cache.set_many(items, ttl=60)
    assert await cache.get_many([*items, "user:missing"]) == items
    assert await cache.set("single", [1, 2], ttl=60)
    assert await cache.get("single") == [1, 2]
    assert await cache.incr("counter", 5, ttl=60) == 5
    assert await cache.exists("user:7")
    assert await cache.expire("user:7", 120)
    assert 0 < (await cache.ttl("user:7") or 0) <= 120
    assert await cache.delete("user:1", "user:2", "user:3", "user:missing") == 3
    assert await cache.get_many(["user:1", "user:4"]) == {"user:4": {"id": 4}}
    assert cache.stats().errors == 0


async def test_delete_pattern_scans_every_primary_of_a_cluster(
    redis_cluster: RedisClusterTopology, open_cache: CacheFactory
) -> None:
    cache = open_cache(redis_cluster.url)
    namespace = cache.prefix
    await cache.set_many({f"user:{n}": n for n in range(30)}, ttl=60)
    await cache.set_many({f"order:{n}": n for n in range(30)}, ttl=60)
    primaries = _primaries(redis_cluster, [f"{namespace}user:{n}" for n in range(30)])
    assert len(primaries) == 3

    assert await cache.delete_pattern("user:*") == 30

    for name in primaries:  # each node by itself: nothing left on any of them
        port = redis_cluster.node(name).port
        with redis.Redis(port=port) as node:
            assert list(node.scan_iter(match=f"{namespace}user:*")) == []
            assert any(node.scan_iter(match=f"{namespace}order:*"))
    assert len(await cache.get_many([f"order:{n}" for n in range(30)])) == 30
    assert cache.stats().errors == 0


async def test_delete_pattern_deletes_every_match(make_topology_cache: CacheFactory) -> None:
    cache = make_topology_cache(scan_batch=7)  # several SCAN pages and UNLINK batches
    await cache.set_many({f"user:{n}": n for n in range(40)}, ttl=60)
    await cache.set("other", 1, ttl=60)
    assert await cache.delete_pattern("user:*") == 40
    assert await cache.get_many([f"user:{n}" for n in range(40)]) == {}
    assert await cache.get("other") == 1
    assert cache.stats().errors == 0


async def test_tags_invalidate_entries_on_every_node(make_topology_cache: CacheFactory) -> None:
    cache = make_topology_cache()
    for number in range(20):
        await cache.set(f"user:{number}", number, ttl=60, tags=["users"])
    await cache.set_many({f"team:{n}": n for n in range(10)}, ttl=60, tags=["users", "teams"])
    await cache.set("kept", 1, ttl=60, tags=["other"])
    assert await cache.invalidate_tags("users") == 30
    assert await cache.get_many([*(f"user:{n}" for n in range(20)), "team:3"]) == {}
    assert await cache.invalidate_tags("teams") == 0  # its entries went with "users"
    assert await cache.get("kept") == 1
    assert cache.stats().errors == 0


async def test_cached_functions_async_and_sync(make_topology_cache: CacheFactory) -> None:
    cache = make_topology_cache()
    calls: list[int] = []

    @cache.cached(ttl=60)
    async def profile(user_id: int) -> dict[str, int]:
        calls.append(user_id)
        return {"id": user_id}

    @cache.cached(ttl=60)
    def label(user_id: int) -> str:
        calls.append(-user_id)
        return f"user {user_id}"

    for _ in range(2):
        assert [await profile(n) for n in range(12)] == [{"id": n} for n in range(12)]
    assert calls == list(range(12))
    assert await cache.invalidate(profile, 3)
    assert await profile(3) == {"id": 3}
    assert calls[-1] == 3
    for _ in range(2):
        assert await anyio.to_thread.run_sync(label, 5) == "user 5"
    assert calls[-1] == -5
    assert calls.count(-5) == 1
    assert cache.stats().errors == 0


async def test_one_computation_across_processes(make_topology_cache: CacheFactory) -> None:
    """Two caches (two processes, as far as Redis knows) ask for one missing key at once."""
    first, second = make_topology_cache(lock_wait=30), make_topology_cache(lock_wait=30)
    full_key = first.prefix + "report"
    # On the cluster the value and its lock live in different slots (a cross-slot poll).
    assert key_slot(full_key.encode()) != key_slot(first.stampede.lock_key(full_key).encode())
    computed: list[str] = []
    release = asyncio.Event()

    async def compute_first() -> str:
        computed.append("first")
        await release.wait()
        return "from-first"

    async def compute_second() -> str:
        computed.append("second")
        return "from-second"

    polls = {"namespace": first.labels.namespace, "operation": "lock_wait"}
    registry = first._registry
    assert registry is not None

    def polled() -> bool:
        return (
            registry.get_sample_value("aegis_cache_operation_duration_seconds_count", polls) or 0
        ) > 1

    winner = asyncio.create_task(first.get_or_set("report", compute_first, ttl=60))
    await _until(lambda: computed == ["first"])
    waiter = asyncio.create_task(second.get_or_set("report", compute_second, ttl=60))
    await _until(polled)  # the second cache is polling for the first one's value
    release.set()
    assert await winner == "from-first"
    assert await waiter == "from-first"
    assert computed == ["first"]
    assert first.stats().errors == second.stats().errors == 0


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_window", "token_bucket"])
async def test_rate_limits(make_topology_cache: CacheFactory, algorithm: RateAlgorithm) -> None:
    cache = make_topology_cache()
    limiter = RateLimiter(cache, 3, 60, algorithm=algorithm, name=algorithm)
    for client in (f"client:{n}" for n in range(6)):  # counters on several nodes
        results = [await limiter.hit(client) for _ in range(4)]
        assert [result.allowed for result in results] == [True, True, True, False]
        assert [result.remaining for result in results[:3]] == [2, 1, 0]
    assert cache.stats().errors == 0


async def test_metrics(make_topology_cache: CacheFactory, registry: CollectorRegistry) -> None:
    cache = make_topology_cache()
    labels = {"namespace": cache.labels.namespace}
    await cache.set_many({f"k{n}": n for n in range(10)}, ttl=60)
    assert await cache.get("k1") == 1
    assert await cache.get("missing") is None
    assert len(await cache.get_many([*(f"k{n}" for n in range(10)), "x", "y"])) == 10

    def sample(name: str, **extra: str) -> float | None:
        return registry.get_sample_value(name, {**labels, **extra})

    assert sample("aegis_cache_hits_total", layer="remote") == 11
    assert sample("aegis_cache_misses_total") == 3
    assert sample("aegis_cache_operation_duration_seconds_count", operation="get") == 2
    assert sample("aegis_cache_operation_duration_seconds_count", operation="get_many") == 1
    assert sample("aegis_cache_operation_duration_seconds_count", operation="set_many") == 1
    assert sample("aegis_cache_errors_total", operation="get_many") is None
    assert sample("aegis_cache_circuit_open") == 0


async def test_a_burst_beyond_the_pool_waits_for_a_connection(
    make_topology_cache: CacheFactory,
) -> None:
    """As on a standalone server: more concurrent calls than connections wait, they do not fail.

    redis-py's Cluster and Sentinel pools raise at once when they are full; failing there would
    count as Redis failures and open the circuit breaker while Redis is healthy.
    """
    cache = make_topology_cache(max_connections=2)
    await cache.set_many({f"k{n}": n for n in range(10)}, ttl=60)
    reads = asyncio.gather(*(cache.get(f"k{n % 10}") for n in range(100)))
    many = asyncio.gather(*(cache.get_many([f"k{n}" for n in range(10)]) for _ in range(20)))
    values, found = await asyncio.gather(reads, many)
    assert values == [n % 10 for n in range(100)]
    assert all(len(one) == 10 for one in found)
    assert cache.stats().errors == 0
    assert cache.fail_open.closed


def test_the_near_cache_is_refused_with_a_clear_error(topology_url: str) -> None:
    scheme = topology_url.partition("://")[0]
    with pytest.raises(
        ConfigurationError, match=f"standalone Redis URL.*not {re.escape(scheme)}://"
    ) as caught:
        Cache(CacheSettings(url=topology_url, near_cache=True))
    assert caught.value.details == {"setting": "near_cache"}


def _connections_to(ports: set[int]) -> list[object]:
    return [
        connection
        for connection in psutil.Process().net_connections(kind="tcp")
        if connection.raddr
        and connection.raddr.port in ports
        and connection.status == psutil.CONN_ESTABLISHED
    ]


async def test_close_leaves_no_connection_open(
    topology_url: str, request: pytest.FixtureRequest, make_topology_cache: CacheFactory
) -> None:
    """Neither to the data nodes nor, for Sentinel, to the sentinels."""
    topology: RedisClusterTopology | RedisSentinelTopology = request.getfixturevalue(
        "redis_cluster" if topology_url.startswith("redis+cluster") else "redis_sentinel"
    )
    ports = {node.port for node in topology.nodes.values()}
    cache = make_topology_cache()
    await cache.set_many({f"k{n}": n for n in range(10)}, ttl=60)
    assert len(await cache.get_many([f"k{n}" for n in range(10)])) == 10
    assert _connections_to(ports)
    await cache.close()
    assert _connections_to(ports) == []


async def test_a_cluster_url_may_list_several_seed_nodes(
    redis_cluster: RedisClusterTopology, open_cache: CacheFactory
) -> None:
    """The client asks the seeds in turn: one that is down at start-up is skipped."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    seeds = [
        f"127.0.0.1:{dead}",
        *(f"{host}:{port}" for host, port in redis_cluster.startup_nodes[:2]),
    ]
    cache = open_cache("redis+cluster://" + ",".join(seeds))
    assert await cache.set("k", 1, ttl=60)
    assert await cache.get("k") == 1
    assert cache.stats().errors == 0
