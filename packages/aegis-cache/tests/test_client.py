"""The cache operations, on real Redis and on the in-memory backend."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from aegis.cache import (
    Cache,
    CacheSerializationError,
    CacheSettings,
    CacheValueTooLargeError,
    MemoryBackend,
)
from aegis.core.errors import InvalidInputError

pytestmark = pytest.mark.anyio


class User(BaseModel):
    id: int
    name: str


async def test_set_then_get_returns_the_value_and_a_miss_returns_the_default(cache: Cache) -> None:
    assert await cache.set("user:1", {"name": "kim", "tags": [1, 2]}, ttl=60)
    assert await cache.get("user:1") == {"name": "kim", "tags": [1, 2]}
    assert await cache.get("user:2") is None
    assert await cache.get("user:2", "nobody") == "nobody"


async def test_models_round_trip_when_a_type_is_given(cache: Cache) -> None:
    await cache.set("user:1", User(id=1, name="kim"))
    assert await cache.get("user:1", type=User) == User(id=1, name="kim")
    assert await cache.get("user:1") == {"id": 1, "name": "kim"}


async def test_ttl_accepts_seconds_and_timedelta_and_is_jittered_down_only(cache: Cache) -> None:
    await cache.set("a", 1, ttl=100)
    await cache.set("b", 1, ttl=timedelta(minutes=10))
    ttl_a, ttl_b = await cache.ttl("a"), await cache.ttl("b")
    assert ttl_a is not None
    assert 100 * 0.9 - 1 <= ttl_a <= 100
    assert ttl_b is not None
    assert 600 * 0.9 - 1 <= ttl_b <= 600


async def test_default_ttl_comes_from_settings() -> None:
    cache = Cache(CacheSettings(default_ttl=42, ttl_jitter=0))
    await cache.set("a", 1)
    ttl = await cache.ttl("a")
    assert ttl is not None
    assert 41 <= ttl <= 42


def test_jitter_spreads_ttls_within_the_configured_fraction() -> None:
    cache = Cache(CacheSettings(ttl_jitter=0.2))
    ttls = {cache.ttls.milliseconds(100) for _ in range(200)}
    assert len(ttls) > 50
    assert all(80_000 <= ttl <= 100_000 for ttl in ttls)
    assert cache.ttls.milliseconds(100, jitter=False) == 100_000


def test_a_non_positive_ttl_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Cache().ttls.milliseconds(0)
    assert caught.value.field == "ttl"


async def test_ttl_is_none_for_missing_keys_and_expire_sets_a_new_ttl(cache: Cache) -> None:
    assert await cache.ttl("missing") is None
    assert not await cache.expire("missing", 10)
    await cache.set("a", 1, ttl=100)
    assert await cache.expire("a", 5)
    ttl = await cache.ttl("a")
    assert ttl is not None
    assert 4 <= ttl <= 5


async def test_delete_and_exists(cache: Cache) -> None:
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert await cache.exists("a")
    assert await cache.delete("a", "b", "c") == 2
    assert not await cache.exists("a")


async def test_get_many_returns_only_found_keys_and_set_many_stores_all(cache: Cache) -> None:
    assert await cache.set_many({f"k{i}": {"i": i} for i in range(50)}, ttl=60)
    found = await cache.get_many([f"k{i}" for i in range(0, 60, 5)])
    assert found == {f"k{i}": {"i": i} for i in range(0, 50, 5)}
    assert await cache.get_many([]) == {}
    ttl = await cache.ttl("k3")
    assert ttl is not None
    assert 50 < ttl <= 60


async def test_incr_counts_and_gives_new_counters_a_ttl(cache: Cache) -> None:
    assert await cache.incr("hits", ttl=30) == 1
    assert await cache.incr("hits", 5, ttl=30) == 6
    ttl = await cache.ttl("hits")
    assert ttl is not None
    assert 29 <= ttl <= 30
    assert await cache.incr("forever") == 1
    assert await cache.ttl("forever") is None


async def test_get_or_set_computes_once_then_reads(cache: Cache) -> None:
    calls = 0

    async def load() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"n": calls}

    assert await cache.get_or_set("x", load, ttl=60) == {"n": 1}
    assert await cache.get_or_set("x", load, ttl=60) == {"n": 1}
    assert calls == 1


async def test_values_over_the_size_limit_are_refused_with_a_clear_error() -> None:
    cache = Cache(CacheSettings(max_value_bytes=100))
    with pytest.raises(CacheValueTooLargeError, match="max_value_bytes=100") as caught:
        await cache.set("big", "x" * 200)
    assert caught.value.code == "CACHE_VALUE_TOO_LARGE"
    assert await cache.get("big") is None


async def test_unserializable_values_raise_a_cache_error(cache: Cache) -> None:
    with pytest.raises(CacheSerializationError, match="cannot store a object"):
        await cache.set("x", object())


async def test_a_pluggable_serializer_is_used_for_both_directions() -> None:
    class Reversed:
        def dumps(self, value: Any) -> bytes:
            return str(value).encode()[::-1]

        def loads(self, data: bytes) -> Any:
            return data[::-1].decode()

    cache = Cache(serializer=Reversed())
    await cache.set("k", "hello")
    assert await cache.backend.get("k") == b"olleh"
    assert await cache.get("k") == "hello"


async def test_dataclasses_are_stored_as_json(cache: Cache) -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    await cache.set("p", Point(1, 2))
    assert await cache.get("p") == {"x": 1, "y": 2}
    assert await cache.get("p", type=Point) == Point(1, 2)


async def test_the_namespace_prefixes_every_key(redis_url: str, redis_prefix: str) -> None:
    async with Cache(CacheSettings(url=redis_url, namespace=redis_prefix + "svc")) as cache:
        await cache.set("k", 1)
        assert await cache.backend.get(redis_prefix + "svc:k") == b"1"


async def test_from_url_and_memory_urls() -> None:
    cache = Cache.from_url("memory://", namespace="m")
    assert isinstance(cache.backend, MemoryBackend)
    assert cache.prefix == "m:"
    assert await cache.start()
    await cache.close()
