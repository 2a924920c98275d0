"""Two real processes: the stampede lock and near-cache coherence across them."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis

from aegis.cache import Cache

pytestmark = pytest.mark.anyio

CacheFactory = Callable[..., Cache]

# The other process: a cache on the same Redis and namespace that obeys commands from a list.
_WORKER = """
import asyncio, json, sys
import redis.asyncio as redis
from aegis.cache import Cache, CacheSettings

url, prefix, near = sys.argv[1], sys.argv[2], sys.argv[3] == "near"

async def main():
    # The blocking pops below wait up to 30 s on the server: redis-py's default socket
    # timeout (5 s since redis-py 8) would end them early on a loaded machine.
    control = redis.Redis.from_url(url, socket_timeout=60)
    # Replies are not timed here: a slow one is test_resilience's subject, and on a loaded
    # machine the default 0.25 s would turn into a skipped write or lock.
    cache = Cache(CacheSettings(url=url, namespace=prefix, near_cache=near, timeout=10))
    await cache.start()

    async def compute():
        await control.incr(prefix + "computations")
        await control.rpush(prefix + "started", 1)
        await control.blpop([prefix + "release"], timeout=30)
        return "from-worker"

    await control.rpush(prefix + "ready", 1)
    while True:
        _, raw = await control.blpop([prefix + "commands"], timeout=30)
        command, key, value = json.loads(raw)
        if command == "stop":
            break
        if command == "get_or_set":
            result = await cache.get_or_set(key, compute, ttl=60)
        elif command == "get":
            result = [await cache.get(key), cache.stats().near_hits]
        else:
            result = await cache.set(key, value, ttl=60)
        await control.rpush(prefix + "replies", json.dumps(result))
    await cache.close()
    await control.aclose()

asyncio.run(main())
"""


class Worker:
    def __init__(self, control: redis.Redis, prefix: str) -> None:
        self.control = control
        self.prefix = prefix

    async def send(self, command: str, key: str = "", value: object = None) -> None:
        await self.control.rpush(self.prefix + "commands", json.dumps([command, key, value]))

    async def reply(self) -> object:
        popped = await self.control.blpop([self.prefix + "replies"], timeout=30)
        assert popped is not None, "the worker process did not answer"
        return json.loads(popped[1])

    async def ask(self, command: str, key: str = "", value: object = None) -> object:
        await self.send(command, key, value)
        return await self.reply()


async def _start_worker(redis_url: str, prefix: str, mode: str) -> AsyncIterator[Worker]:
    control = redis.Redis.from_url(redis_url, socket_timeout=60)  # longer than each pop
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WORKER, redis_url, prefix, mode
    )
    try:
        assert await control.blpop([prefix + "ready"], timeout=30) is not None
        yield Worker(control, prefix)
        await Worker(control, prefix).send("stop")
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await control.aclose()


@pytest.fixture
async def worker(redis_url: str, redis_prefix: str) -> AsyncIterator[Worker]:
    async for started in _start_worker(redis_url, redis_prefix, "plain"):
        yield started


@pytest.fixture
async def near_worker(redis_url: str, redis_prefix: str) -> AsyncIterator[Worker]:
    async for started in _start_worker(redis_url, redis_prefix, "near"):
        yield started


async def test_a_second_process_waits_for_the_first_ones_result_instead_of_computing(
    worker: Worker, make_cache: CacheFactory, redis_prefix: str
) -> None:
    cache = make_cache(lock_wait=30, timeout=10)  # replies are not timed here (see _WORKER)
    await worker.send("get_or_set", "report")
    assert await worker.control.blpop([redis_prefix + "started"], timeout=30) is not None

    async def compute_here() -> str:
        await worker.control.incr(redis_prefix + "computations")
        return "from-test"

    mine = asyncio.create_task(cache.get_or_set("report", compute_here, ttl=60))
    while not cache.stampede.is_computing(redis_prefix + "report"):  # waiting on the lock
        await asyncio.sleep(0)
    await worker.control.rpush(redis_prefix + "release", 1)
    assert await mine == "from-worker"
    assert await worker.reply() == "from-worker"
    assert await worker.control.get(redis_prefix + "computations") == b"1"
    assert not await worker.control.exists(cache.stampede.lock_key(redis_prefix + "report"))


async def _eventually(worker: Worker, key: str, expected: object) -> list[object]:
    """Ask the worker until it reads ``expected``: invalidations arrive asynchronously."""
    for _ in range(500):
        answer = await worker.ask("get", key)
        assert isinstance(answer, list)
        if answer[0] == expected:
            return answer
    raise AssertionError(f"the other process never saw {expected!r} for {key!r}")


async def test_near_caches_in_two_processes_stay_coherent(
    near_worker: Worker, make_cache: CacheFactory, redis_url: str, redis_prefix: str
) -> None:
    cache = make_cache(near_cache=True)
    assert await cache.start()
    await cache.set("user:1", {"v": 1})
    assert await _eventually(near_worker, "user:1", {"v": 1})
    hits_before = (await near_worker.ask("get", "user:1"))[1]  # type: ignore[index]
    hits_after = (await near_worker.ask("get", "user:1"))[1]  # type: ignore[index]
    assert hits_after == hits_before + 1  # served from the worker's near cache

    await cache.set("user:1", {"v": 2})  # a write here is seen there
    await _eventually(near_worker, "user:1", {"v": 2})

    assert await cache.get("user:1") == {"v": 2}
    assert await cache.get("user:1") == {"v": 2}
    assert cache.stats().near_hits >= 1
    assert await near_worker.ask("set", "user:1", {"v": 3}) is True  # and the other way round
    for _ in range(500):
        if await cache.get("user:1") == {"v": 3}:
            break
        await asyncio.sleep(0.002)
    assert await cache.get("user:1") == {"v": 3}

    async with redis.Redis.from_url(redis_url) as outsider:  # any client's write counts
        await outsider.set(redis_prefix + "user:1", b'{"v":4}')
    await _eventually(near_worker, "user:1", {"v": 4})
    await cache.delete("user:1")
    await _eventually(near_worker, "user:1", None)
