"""Pattern and tag invalidation over 100,000 keys: SCAN + UNLINK in batches, every page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio as redis

from aegis.cache import Cache

pytestmark = pytest.mark.anyio

CacheFactory = Callable[..., Cache]
MANY = 100_000


async def _unlink_calls(client: redis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_unlink", {}).get("calls", 0))


async def _reads_while(client: redis.Redis, key: str, work: asyncio.Task[int]) -> int:
    """Count GETs another client completes while ``work`` runs: Redis must keep serving."""
    reads = 0
    while not work.done():
        await client.get(key)
        reads += 1
    return reads


async def test_delete_pattern_removes_100k_matching_keys_in_batches_without_blocking(
    make_cache: CacheFactory, redis_url: str, redis_prefix: str
) -> None:
    cache = make_cache(scan_batch=1000)
    for start in range(0, MANY, 10_000):
        await cache.set_many({f"user:{i}": i for i in range(start, start + 10_000)}, ttl=300)
    await cache.set_many({f"order:{i}": i for i in range(100)}, ttl=300)
    async with redis.Redis.from_url(redis_url) as client:
        unlinks_before = await _unlink_calls(client)
        work = asyncio.create_task(cache.delete_pattern("user:*"))
        reads = await _reads_while(client, f"{redis_prefix}order:1", work)
        deleted = await work
        unlinks = await _unlink_calls(client) - unlinks_before
    assert deleted == MANY
    assert reads > 0
    assert unlinks >= MANY // 1000  # one UNLINK per batch, never one giant DEL
    assert await cache.get_many([f"user:{i}" for i in range(0, MANY, 997)]) == {}
    assert len(await cache.get_many([f"order:{i}" for i in range(100)])) == 100


async def test_invalidate_tags_removes_100k_tagged_entries_and_keeps_others(
    make_cache: CacheFactory, redis_url: str, redis_prefix: str
) -> None:
    cache = make_cache(scan_batch=1000)
    for start in range(0, MANY, 10_000):
        await cache.set_many(
            {f"item:{i}": i for i in range(start, start + 10_000)}, ttl=300, tags=["catalog"]
        )
    await cache.set("other", 1, tags=["unrelated"])
    async with redis.Redis.from_url(redis_url) as client:
        work = asyncio.create_task(cache.invalidate_tags("catalog"))
        reads = await _reads_while(client, f"{redis_prefix}other", work)
        deleted = await work
        assert not await client.exists(cache.store.tag_key("catalog"))
    assert deleted == MANY
    assert reads > 0
    assert await cache.get("item:77") is None
    assert await cache.get("other") == 1


async def test_tag_sets_live_as_long_as_their_longest_entry(cache: Cache) -> None:
    await cache.set("short", 1, ttl=10, tags=["t"])
    await cache.set("long", 1, ttl=1000, tags=["t"])
    await cache.set("shorter", 1, ttl=5, tags=["t"])
    left = await cache.backend.pttl(cache.store.tag_key("t"))
    assert 900_000 < left <= 1_000_000
    await cache.set("forever", 1, ttl=None, tags=["f"])
    assert await cache.invalidate_tags("f", "nothing") == 1


async def test_pattern_deletes_stay_inside_the_namespace(
    make_cache: CacheFactory, redis_prefix: str
) -> None:
    mine = make_cache(namespace=redis_prefix + "mine")
    neighbour = make_cache(namespace=redis_prefix + "mine-too")
    await mine.set("a", 1)
    await neighbour.set("a", 1)
    assert await mine.delete_pattern("*") == 1
    assert await neighbour.get("a") == 1
