"""Stampede control (_stampede.py) on real Redis: the early-refresh time, a waiter's bound on
and polling of another process's lock, no refresh while Redis is down, and background refreshes
ending with the cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis

from aegis.cache import Cache, CircuitBreaker
from aegis.cache._codec import refresh_at
from aegis.cache._stampede import FillOptions

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


async def _start_a_refresh(
    cache: Cache, cancelled: asyncio.Event, release: asyncio.Event
) -> set[asyncio.Task[object]]:
    """Start a background refresh that, once cancelled, finishes only when ``release`` is set.

    Returns the tasks started meanwhile: the refresh.
    """
    before = asyncio.all_tasks()
    started = asyncio.Event()
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
            await release.wait()  # its clean-up takes a while
            raise
        return 2

    assert await slow() == 1
    async with asyncio.timeout(BOUND):
        while not started.is_set():
            assert await slow() == 1
            await asyncio.sleep(0)
    return asyncio.all_tasks() - before


async def test_closing_the_cache_returns_after_the_cancelled_refreshes_have_finished(
    make_cache: CacheFactory,
) -> None:
    cache = make_cache(ttl_jitter=0)
    cancelled, release = asyncio.Event(), asyncio.Event()
    refreshes = await _start_a_refresh(cache, cancelled, release)
    assert refreshes
    closing = asyncio.create_task(cache.stampede.close())
    try:
        async with asyncio.timeout(BOUND):
            await cancelled.wait()
        for _ in range(10):
            await asyncio.sleep(0)
        assert not closing.done()  # the refresh is still cleaning up
        release.set()
        async with asyncio.timeout(BOUND):
            await closing
        assert all(refresh.done() for refresh in refreshes)
    finally:
        release.set()
        closing.cancel()


async def test_cancelling_a_task_that_closes_the_cache_cancels_that_task(
    make_cache: CacheFactory,
) -> None:
    """close() does not swallow the cancellation of its caller while it waits for refreshes."""
    cache = make_cache(ttl_jitter=0)
    cancelled, release = asyncio.Event(), asyncio.Event()
    await _start_a_refresh(cache, cancelled, release)
    closing = asyncio.create_task(cache.close())
    try:
        async with asyncio.timeout(BOUND):
            await cancelled.wait()  # close() cancelled the refresh and waits for it
        closing.cancel()
        async with asyncio.timeout(BOUND):
            with pytest.raises(asyncio.CancelledError):
                await closing
        assert closing.cancelled()
    finally:
        release.set()
        closing.cancel()


async def _wait_on_a_held_lock(
    cache: Cache, redis_url: str, token: bytes, compute: Callable[[], Awaitable[int]]
) -> tuple[int, list[float]]:
    """get_or_set "report" while another process holds its lock with ``token``.

    The waiter's sleeps are recorded and take no time; after twelve of them the holder stores
    2 and releases the lock. Returns what the waiter got and the delays it asked for.
    """
    client = Redis.from_url(redis_url)
    lock_key = cache.stampede.lock_key(cache.prefix + "report")
    delays: list[float] = []
    sleep = asyncio.sleep

    async def recorded(delay: float) -> None:
        delays.append(delay)
        if len(delays) == 12:  # the holder finishes: its value first, then its lock
            await client.set(cache.prefix + "report", cache.codec.encode(2), px=60_000)
            await client.delete(lock_key)
        await sleep(0)

    try:
        await client.set(lock_key, token, px=60_000)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(asyncio, "sleep", recorded)
            async with asyncio.timeout(BOUND):
                got = await cache.get_or_set("report", compute, ttl=60)
    finally:
        await client.delete(lock_key, cache.prefix + "report")
        await client.aclose()
    return got, delays


@pytest.mark.parametrize("token", [b"\x00" * 16, b"\xff" * 16])
async def test_a_waiter_keeps_polling_while_another_process_holds_the_lock(
    make_cache: CacheFactory, redis_url: str, token: bytes
) -> None:
    """Whether the holder's token sorts before or after the waiter's, the waiter waits for it."""
    cache = make_cache(lock_wait=BOUND, lock_timeout=60)
    computed: list[int] = []

    async def compute_here() -> int:
        computed.append(1)
        return 1

    got, delays = await _wait_on_a_held_lock(cache, redis_url, token, compute_here)
    assert (got, len(delays), computed) == (2, 12, [])


async def test_a_waiter_polls_soon_then_half_again_as_late_each_time_up_to_100_ms(
    make_cache: CacheFactory, redis_url: str
) -> None:
    cache = make_cache(lock_wait=BOUND, lock_timeout=60)
    _, delays = await _wait_on_a_held_lock(cache, redis_url, b"\x00" * 16, _value(1))
    expected = [0.005, 0.0075, 0.01125, 0.016875, 0.0253125, 0.03796875, 0.056953125]
    expected += [0.0854296875, 0.1, 0.1, 0.1, 0.1]
    assert delays == pytest.approx(expected)


async def test_no_early_refresh_runs_while_the_breaker_says_redis_is_down(
    make_cache: CacheFactory,
) -> None:
    """The refresh skips (callers keep the current value) rather than compute with no lock."""
    cache = make_cache()
    breaker = CircuitBreaker(threshold=1, reset_timeout=3600)
    breaker.failure()
    cache.fail_open.breaker = breaker
    computed: list[int] = []

    async def compute_here() -> int:
        computed.append(1)
        return 1

    options = FillOptions(cache.labels, ttl=60, early_ttl=30)
    cache.stampede.refresh_in_background(cache.prefix + "report", compute_here, options)
    async with asyncio.timeout(BOUND):
        await cache.stampede.wait_for_refreshes()
    assert computed == []


async def test_a_lock_lives_lock_timeout_whatever_the_ttl_jitter(
    make_cache: CacheFactory, redis_url: str
) -> None:
    """The jitter that shortens values' TTLs would make a lock expire early: it is left out."""
    client = Redis.from_url(redis_url)
    lives: list[int] = []

    def compute(cache: Cache) -> Callable[[], Awaitable[int]]:
        async def holding_the_lock() -> int:
            lives.append(await client.pttl(cache.stampede.lock_key(cache.prefix + "report")))
            return 1

        return holding_the_lock

    try:
        # A cache draws its lock's lifetime once; jittered, one lands within 10 s of an hour
        # 0.3% of the time, so three caches.
        for _ in range(3):
            cache = make_cache(lock_timeout=3600, ttl_jitter=0.99)
            assert await cache.get_or_set("report", compute(cache), ttl=60) == 1
            await cache.delete("report")
    finally:
        await client.aclose()
    assert len(lives) == 3
    assert all(3_590_000 < life <= 3_600_000 for life in lives), lives


def _value(value: int) -> Callable[[], Awaitable[int]]:
    async def compute() -> int:
        return value

    return compute
