"""@cached on async and sync functions and methods, invalidation and stampede control."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import BaseModel

from aegis.cache import (
    Cache,
    CacheSettings,
    cached,
    get_default_cache,
    invalidate,
    set_default_cache,
)
from aegis.core.context import request_context, request_id
from aegis.core.errors import ConfigurationError, InvalidInputError

pytestmark = pytest.mark.anyio

CacheFactory = Callable[..., Cache]


class User(BaseModel):
    id: int
    name: str


async def test_100_concurrent_callers_run_the_function_once(cache: Cache) -> None:
    calls = 0
    started, release = asyncio.Event(), asyncio.Event()

    @cache.cached(ttl=60)
    async def load(user_id: int) -> User:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return User(id=user_id, name="kim")

    callers = [asyncio.create_task(load(1)) for _ in range(100)]
    await asyncio.wait_for(started.wait(), 30)
    release.set()
    results = await asyncio.gather(*callers)
    assert calls == 1
    assert all(result == User(id=1, name="kim") for result in results)
    assert await load(1) == User(id=1, name="kim")
    assert calls == 1


async def test_an_exception_reaches_every_waiter_and_nothing_is_cached(cache: Cache) -> None:
    calls = 0
    release = asyncio.Event()

    @cache.cached(ttl=60)
    async def fails() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        raise ValueError("boom")

    callers = [asyncio.create_task(fails()) for _ in range(5)]
    while cache.stats().misses < 5:  # a caller that missed is in the computation or waits for it
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, ValueError) for result in results)
    assert calls == 1
    with pytest.raises(ValueError, match="boom"):
        await fails()


async def test_none_is_cached_only_when_asked(cache: Cache) -> None:
    counts = {"plain": 0, "with_none": 0}

    @cache.cached(ttl=60)
    async def plain() -> None:
        counts["plain"] += 1

    @cache.cached(ttl=60, cache_none=True)
    async def with_none() -> None:
        counts["with_none"] += 1

    for _ in range(3):
        await plain()
        await with_none()
    assert counts == {"plain": 3, "with_none": 1}


async def test_unless_skips_caching_results_it_rejects(cache: Cache) -> None:
    calls = 0

    @cache.cached(ttl=60, unless=lambda result: result["partial"])
    async def report(partial: bool) -> dict[str, bool]:
        nonlocal calls
        calls += 1
        return {"partial": partial}

    await report(True)
    await report(True)
    await report(False)
    await report(False)
    assert calls == 3


async def test_a_version_change_invalidates_every_decorated_entry(
    make_cache: CacheFactory,
) -> None:
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        return calls

    v1 = make_cache(version="1")
    assert await v1.cached(ttl=60)(compute)() == 1
    assert await v1.cached(ttl=60)(compute)() == 1
    assert await make_cache(version="2").cached(ttl=60)(compute)() == 2
    assert await v1.cached(ttl=60, version="b")(compute)() == 3


async def test_namespace_and_key_templates_shape_the_key(cache: Cache) -> None:
    @cache.cached(ttl=60, namespace="users", key="user:{user_id}")
    async def load(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    await load(42)
    assert await cache.get("users:user:42") == {"id": 42}
    assert await cache.delete_pattern("users:*") == 1


async def test_invalidate_deletes_one_call_result(cache: Cache) -> None:
    calls = 0

    @cache.cached(ttl=60)
    async def load(user_id: int, detail: bool = False) -> int:
        nonlocal calls
        calls += 1
        return calls

    await load(1)
    await load(2)
    assert await cache.invalidate(load, user_id=1)
    assert not await invalidate(load, 1)
    await load(1)
    await load(2)
    assert calls == 3


async def test_methods_share_entries_across_instances_and_invalidate_bound(cache: Cache) -> None:
    calls = 0

    class Repo:
        @cache.cached(ttl=60)
        async def load(self, item_id: int) -> int:
            nonlocal calls
            calls += 1
            return item_id * 10

    one, two = Repo(), Repo()
    assert await one.load(1) == 10
    assert await two.load(1) == 10
    assert calls == 1
    assert await invalidate(two.load, 1)
    assert await one.load(1) == 10
    assert calls == 2


async def test_cached_models_come_back_as_models(cache: Cache) -> None:
    @cache.cached(ttl=60)
    async def load(user_id: int) -> User:
        return User(id=user_id, name="kim")

    await load(1)
    again = await load(1)
    assert isinstance(again, User)


async def test_tags_invalidate_related_entries_together(cache: Cache) -> None:
    calls = 0

    @cache.cached(ttl=60, tags=["user:{user_id}"])
    async def profile(user_id: int) -> int:
        nonlocal calls
        calls += 1
        return user_id

    @cache.cached(ttl=60, tags=lambda user_id: [f"user:{user_id}", "orders"])
    async def orders(user_id: int) -> list[int]:
        nonlocal calls
        calls += 1
        return [user_id]

    await profile(1)
    await orders(1)
    await profile(2)
    assert await cache.invalidate_tags("user:1") == 2
    await profile(1)
    await orders(1)
    await profile(2)
    assert calls == 5


async def test_early_recomputation_refreshes_in_the_background(cache: Cache) -> None:
    values = iter([1, 2, 3])

    @cache.cached(ttl=60, early_ttl=59.999)
    async def current() -> int:
        return next(values)

    assert await current() == 1
    await asyncio.sleep(0.01)  # the entry must age past its early-refresh point
    assert await current() == 1  # stale value served while the refresh runs
    await cache.stampede.wait_for_refreshes()
    assert await current() == 2


def test_early_ttl_must_be_positive() -> None:
    with pytest.raises(InvalidInputError):
        cached(early_ttl=0)


@pytest.fixture
def default_cache() -> Iterator[Cache]:
    cache = Cache(CacheSettings(namespace="default"))
    set_default_cache(cache)
    yield cache
    set_default_cache(None)


async def test_without_cache_the_default_cache_is_used(default_cache: Cache) -> None:
    @cached(ttl=60)
    async def load(user_id: int) -> int:
        return user_id

    assert get_default_cache() is default_cache
    await load(3)
    assert default_cache.stats().misses == 1
    await load(3)
    assert default_cache.stats().hits == 1


async def test_no_default_cache_is_a_configuration_error() -> None:
    @cached(ttl=60)
    async def load() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="set_default_cache"):
        await load()
    with pytest.raises(InvalidInputError, match="not decorated"):
        await invalidate(lambda: 1)


def test_sync_functions_are_cached_once_across_threads(redis_url: str, redis_prefix: str) -> None:
    cache = Cache(CacheSettings(url=redis_url, namespace=redis_prefix))
    calls = 0
    lock = threading.Lock()
    seen: list[str | None] = []

    @cache.cached(ttl=60)
    def slow_square(x: int) -> int:
        nonlocal calls
        with lock:
            calls += 1
        seen.append(request_id.get())
        return x * x

    with request_context(request_id="r-1"):
        assert slow_square(4) == 16
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(slow_square, [4] * 50)) == [16] * 50
    assert calls == 1
    assert seen == ["r-1"]
    assert cache.stats().hits == 50
    asyncio.run(cache.close())


def test_sync_code_reaches_the_cache_through_run_sync(redis_url: str, redis_prefix: str) -> None:
    cache = Cache(CacheSettings(url=redis_url, namespace=redis_prefix))
    assert cache.run_sync(lambda twin: twin.set("user:42", {"name": "kim"}))
    assert cache.run_sync(lambda twin: twin.get("user:42")) == {"name": "kim"}
    assert cache.stats().hits == 1  # the twin's work counts as the cache's
    asyncio.run(cache.close())
