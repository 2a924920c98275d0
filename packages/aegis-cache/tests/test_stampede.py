"""Stampede control (_stampede.py) on real Redis: the early-refresh time, a waiter's bound on
another process's lock, and background refreshes ending with the cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from aegis.cache import Cache
from aegis.cache._codec import refresh_at

pytestmark = pytest.mark.anyio
BOUND = 30  # seconds: a wait that never ends fails the test instead of hanging it
CacheFactory = Callable[..., Cache]


async def test_an_early_refresh_is_due_early_ttl_before_the_entry_expires(
    make_cache: CacheFactory, redis_url: str
) -> None:
    cache = make_cache(ttl_jitter=0)

    @cache.cached(ttl=600, early_ttl=100, key="report")
    async def report() -> int:
        return 1

    before = time.time()
    assert await report() == 1
    after = time.time()
    client = Redis.from_url(redis_url)
    try:
        data = await client.get(cache.prefix + "report")
    finally:
        await client.aclose()
    assert isinstance(data, bytes)
    due = refresh_at(data)
    assert due is not None
    assert before + 500 <= due <= after + 500


async def test_a_waiter_computes_itself_once_another_lock_outlives_lock_wait(
    make_cache: CacheFactory, redis_url: str
) -> None:
    """A process that died holding the lock delays others by lock_wait, never for ever."""
    cache = make_cache(lock_wait=0.2, lock_timeout=60)
    client = Redis.from_url(redis_url)
    lock_key = cache.stampede.lock_key(cache.prefix + "report")
    try:
        await client.set(lock_key, b"\x00" * 16, px=60_000)  # another process's token
        async with asyncio.timeout(BOUND):
            assert await cache.get_or_set("report", _value(7), ttl=60) == 7
        assert await client.get(lock_key) == b"\x00" * 16  # not ours: left alone
    finally:
        await client.delete(lock_key)
        await client.aclose()


async def test_a_waiter_takes_the_value_another_process_stores(
    make_cache: CacheFactory, redis_url: str
) -> None:
    """The waiter returns the value the lock holder stored, and computes nothing itself."""
    cache = make_cache(lock_wait=BOUND, lock_timeout=60)
    other = make_cache()
    client = Redis.from_url(redis_url)
    lock_key = cache.stampede.lock_key(cache.prefix + "report")
    computed: list[int] = []

    async def compute_here() -> int:
        computed.append(1)
        return 1

    try:
        for token in (b"\x00" * 16, b"\xff" * 16):
            await client.set(lock_key, token, px=60_000)
            waiter = asyncio.create_task(cache.get_or_set("report", compute_here, ttl=60))
            while not cache.stampede.is_computing(cache.prefix + "report"):
                await asyncio.sleep(0)
            await other.set("report", 2, ttl=60)
            await client.delete(lock_key)
            async with asyncio.timeout(BOUND):
                assert await waiter == 2
            await cache.delete("report")
        assert computed == []
    finally:
        await client.delete(lock_key)
        await client.aclose()


async def test_closing_the_cache_cancels_a_running_background_refresh(
    make_cache: CacheFactory,
) -> None:
    cache = make_cache(ttl_jitter=0)
    started, cancelled = asyncio.Event(), asyncio.Event()
    calls = 0

    @cache.cached(ttl=600, early_ttl=599.999, key="slow")
    async def slow() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return 1
        started.set()
        try:
            await asyncio.Event().wait()  # a refresh that would never end
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 2

    assert await slow() == 1
    async with asyncio.timeout(BOUND):
        while not started.is_set():  # due 1 ms after it was stored: a later read starts it
            assert await slow() == 1  # the current value while the refresh runs
            await asyncio.sleep(0)
    closing = asyncio.create_task(cache.close())
    try:
        done, _ = await asyncio.wait({closing}, timeout=BOUND)
        assert closing in done  # close() does not wait for a refresh to end by itself
        assert cancelled.is_set()  # it cancelled the refresh and waited for that to finish
    finally:
        closing.cancel()


def _value(value: int) -> Callable[[], Awaitable[int]]:
    async def compute() -> int:
        return value

    return compute
