"""Redis down, slow or restarted: every call still answers, the breaker stops the hammering,
and the cache recovers by itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import anyio
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from aegis.cache import Cache, CacheSettings, CacheUnavailableError, CircuitBreaker, MemoryBackend
from aegis.cache._stampede import FillOptions
from aegis.testing import RestartableServer

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_the_app_keeps_answering_while_redis_is_down_and_the_cache_recovers(
    own_redis: RestartableServer, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CacheSettings(
        url=own_redis.url, namespace="svc", circuit_failure_threshold=3, warning_interval=60
    )
    cache = Cache(settings, registry=registry)
    clock = FakeClock()
    cache.fail_open.breaker = CircuitBreaker(3, 5.0, clock=clock)
    calls = 0

    @cache.cached(ttl=60)
    async def load(user_id: int) -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"id": user_id}

    assert await load(1) == {"id": 1}
    assert await load(1) == {"id": 1}
    assert calls == 1

    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="aegis.cache"):
        for _ in range(20):
            assert await load(1) == {"id": 1}  # the function answers instead of the cache
        assert await cache.set("k", 1) is False
        assert await cache.get("k", "fallback") == "fallback"
    assert calls == 21
    assert cache.fail_open.breaker.state == "open"
    assert _value(registry, "aegis_cache_circuit_open", namespace="svc") == 1
    errors = _value(registry, "aegis_cache_errors_total", namespace="svc", operation="get")
    assert errors >= 20
    # Three real failures, then the breaker skips Redis: a handful of warnings, not one per call.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= 3
    with pytest.raises(CacheUnavailableError):
        await cache.incr("n")

    own_redis.start()
    assert await load(1) == {"id": 1}  # breaker still open: no call to Redis yet
    assert calls == 22
    clock.now += 5.0  # the probe is due
    assert await load(1) == {"id": 1}  # probe: a miss on the restarted (empty) server, stored
    assert _value(registry, "aegis_cache_circuit_open", namespace="svc") == 0
    assert cache.fail_open.breaker.allow()  # closed again
    assert await load(1) == {"id": 1}
    assert calls == 23  # served from the cache again
    await cache.close()


class FlakyReads(MemoryBackend):
    """Process memory whose GETs fail like a reset connection while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    async def get(self, key: str) -> bytes | None:
        if self.failing:
            raise ConnectionResetError("connection reset by peer")
        return await super().get(key)


async def test_only_consecutive_failures_open_the_circuit_successful_reads_count_too(
    registry: CollectorRegistry,
) -> None:
    """A GET that fails now and then, between GETs that work, never opens the circuit."""
    backend = FlakyReads()
    settings = CacheSettings(circuit_failure_threshold=3, warning_interval=60)
    cache = Cache(settings, backend=backend, registry=registry)
    assert await cache.set("k", 1)
    for _ in range(5):
        backend.failing = True
        assert await cache.get("k", "fallback") == "fallback"
        backend.failing = False
        assert await cache.get("k") == 1
    assert _breaker_state(cache) == "closed"
    backend.failing = True
    for _ in range(3):
        assert await cache.get("k", "fallback") == "fallback"
    assert _breaker_state(cache) == "open"
    await cache.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: a hung Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_hung_redis_costs_one_short_timeout_per_call_then_none(
    silent_server: str, registry: CollectorRegistry
) -> None:
    cache = Cache(
        CacheSettings(url=silent_server, timeout=0.05, circuit_failure_threshold=2),
        registry=registry,
    )
    assert await cache.get("k", "fallback") == "fallback"
    assert await cache.get_or_set("k", _answer) == 42
    assert cache.fail_open.breaker.state == "open"
    assert await cache.get("k") is None
    assert not await cache.ping()
    stats = cache.stats()
    assert stats.errors >= 3
    assert stats.hits == 0
    await cache.close()


async def _answer() -> int:
    return 42


async def test_a_stalled_redis_costs_one_short_timeout_per_read_and_per_write(
    own_redis: RestartableServer, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CacheSettings(
        url=own_redis.url,
        namespace="svc",
        timeout=0.05,
        max_value_bytes=64_000_000,
        warning_interval=0,
    )
    cache = Cache(settings, registry=registry)
    assert await cache.set("k", "v")
    # Two connected connections in the pool, so that the stalled calls below use them.
    assert list(await asyncio.gather(cache.get("k"), cache.get("k"))) == ["v", "v"]
    admin = Redis.from_url(own_redis.url)
    pid = int((await admin.info("server"))["process_id"])
    os.kill(pid, signal.SIGSTOP)  # the server hangs: connections stay open, nothing answers
    try:
        with caplog.at_level(logging.WARNING, logger="aegis.cache"), anyio.fail_after(30):
            # Without a timeout on every read and every write this would hang: a GET waits for
            # a reply, and 32 MB fill the socket buffers of a server that does not read.
            read, written = await asyncio.gather(
                cache.get("k", "fallback"), cache.set("big", "x" * 32_000_000)
            )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (read, written) == ("fallback", False)
    assert any("Timeout writing" in record.getMessage() for record in caplog.records)
    for operation in ("get", "set"):
        labels = {"namespace": "svc", "operation": operation}
        assert _value(registry, "aegis_cache_errors_total", **labels) == 1
    with anyio.fail_after(30):
        while (await admin.info("clients"))["connected_clients"] > 1:  # the cache's are gone
            await asyncio.sleep(0.01)
    # The write reported as skipped was dropped, not delivered once the server woke up.
    assert not await admin.exists("svc:big")
    await admin.aclose()
    assert await cache.get("k") == "v"  # the server answers again: so does the cache
    await cache.close()


def test_the_breaker_state_names_the_phase() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    states = [breaker.state]
    breaker.failure()
    states.append(breaker.state)
    clock.now = 1.0
    states.append(breaker.state)
    breaker.success()
    states.append(breaker.state)
    assert states == ["closed", "open", "half_open", "closed"]


def test_the_breaker_lets_one_probe_through_and_reopens_when_it_fails() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(2, 1.0, clock=clock)
    assert breaker.allow()
    assert not breaker.failure()
    assert breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now = 1.0
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    assert breaker.failure()
    assert not breaker.allow()
    clock.now = 2.0
    assert breaker.allow()
    assert breaker.success()
    assert not breaker.success()


async def test_the_near_cache_is_bypassed_while_redis_is_down_and_comes_back_after(
    own_redis: RestartableServer, registry: CollectorRegistry
) -> None:
    settings = CacheSettings(url=own_redis.url, namespace="svc", near_cache=True)
    cache = Cache(settings, registry=registry)
    cache.fail_open.breaker = CircuitBreaker(1, 5.0, clock=FakeClock())
    assert await cache.start()
    await cache.set("k", 1)
    while cache.stats().near_hits == 0:  # the first entry may be dropped by our own write's
        assert await cache.get("k") == 1  # invalidation message, which arrives later
    assert cache.store.near is not None
    assert len(cache.store.near) == 1

    own_redis.stop()
    while cache.store.near.ready:  # the invalidation channel notices the lost connection
        await asyncio.sleep(0.01)
    assert len(cache.store.near) == 0  # nothing is served that could have changed meanwhile
    assert await cache.get("k", "fallback") == "fallback"

    own_redis.start()
    assert await cache.start(timeout=10)  # the listener reconnects by itself
    assert await cache.ping()  # and the breaker closes on a successful call
    await cache.set("k", 2)
    assert await cache.get("k") == 2
    await cache.close()


async def _waiting_on_the_lock(cache: Cache, registry: CollectorRegistry) -> asyncio.Task[str]:
    """Another process holds the lock of "report": start a get_or_set that waits for it."""
    admin = Redis.from_url(cache.settings.url.get_secret_value())  # type: ignore[union-attr]
    await admin.set(cache.stampede.lock_key("svc:report"), b"another-process", px=60_000)
    await admin.aclose()

    async def compute_here() -> str:
        return "computed-here"

    waiting = asyncio.create_task(cache.get_or_set("report", compute_here, ttl=60))
    polls = {"namespace": "svc", "operation": "lock_wait"}
    with anyio.fail_after(30):
        while not _value(registry, "aegis_cache_operation_duration_seconds_count", **polls):
            await asyncio.sleep(0.005)  # until the waiter has polled the lock once
    return waiting


async def test_a_lock_waiter_keeps_waiting_through_a_poll_that_timed_out(
    own_redis: RestartableServer, registry: CollectorRegistry
) -> None:
    """A reply slower than ``timeout`` (a loaded machine) does not mean the lock is free."""
    settings = CacheSettings(
        url=own_redis.url, namespace="svc", lock_wait=60, circuit_failure_threshold=1000
    )
    cache = Cache(settings, registry=registry)
    waiting = await _waiting_on_the_lock(cache, registry)
    admin = Redis.from_url(own_redis.url)
    pid = int((await admin.info("server"))["process_id"])
    os.kill(pid, signal.SIGSTOP)  # the next poll's reply takes longer than the socket timeout
    try:
        failed = {"namespace": "svc", "operation": "lock_wait"}
        with anyio.fail_after(30):
            while not _value(registry, "aegis_cache_errors_total", **failed):
                await asyncio.sleep(0.005)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not waiting.done()
    # The holder finishes: its value is stored, its lock released.
    await admin.set("svc:report", cache.codec.encode("computed-there"), px=60_000)
    await admin.delete(cache.stampede.lock_key("svc:report"))
    with anyio.fail_after(30):
        assert await waiting == "computed-there"
    await admin.aclose()
    await cache.close()


async def test_a_lock_waiter_computes_once_the_breaker_says_redis_is_down(
    own_redis: RestartableServer, registry: CollectorRegistry
) -> None:
    """Nobody can hold a lock on a dead Redis: the waiter stops waiting and computes."""
    settings = CacheSettings(
        url=own_redis.url, namespace="svc", lock_wait=600, circuit_failure_threshold=2
    )
    cache = Cache(settings, registry=registry)
    waiting = await _waiting_on_the_lock(cache, registry)
    own_redis.stop()
    with anyio.fail_after(30):  # far below lock_wait
        assert await waiting == "computed-here"
    assert cache.fail_open.breaker.state == "open"
    await cache.close()


async def _stalled_while_locking(
    cache: Cache, registry: CollectorRegistry, own_redis: RestartableServer
) -> tuple[asyncio.Task[str], list[str]]:
    """Fill the missing "report" while the server hangs; resume it once the SET NX failed.

    The fill starts at the lock (the miss is a given), on a connection already connected: the
    SET NX reaches the server's socket, and the server runs it when it resumes.
    """
    computed: list[str] = []

    async def compute_here() -> str:
        computed.append("here")
        return "computed-here"

    assert await cache.set("warm", 1)  # one connected connection in the pool
    admin = Redis.from_url(own_redis.url)
    pid = int((await admin.info("server"))["process_id"])
    await admin.aclose()
    os.kill(pid, signal.SIGSTOP)
    try:
        fill = cache.stampede.fill("svc:report", compute_here, FillOptions(cache.labels, ttl=60))
        started = asyncio.create_task(fill)
        failed = {"namespace": "svc", "operation": "lock"}
        with anyio.fail_after(30):
            while not _value(registry, "aegis_cache_errors_total", **failed):
                await asyncio.sleep(0.005)
    finally:
        os.kill(pid, signal.SIGCONT)
    return started, computed


async def test_a_lock_whose_reply_timed_out_is_not_taken_for_redis_being_down(
    own_redis: RestartableServer, registry: CollectorRegistry
) -> None:
    """Another process holds the lock; our SET NX times out: wait for its value, not compute."""
    settings = CacheSettings(
        url=own_redis.url, namespace="svc", lock_wait=60, circuit_failure_threshold=1000
    )
    cache = Cache(settings, registry=registry)
    admin = Redis.from_url(own_redis.url)
    lock_key = cache.stampede.lock_key("svc:report")
    await admin.set(lock_key, b"another-process", px=60_000)
    waiting, computed = await _stalled_while_locking(cache, registry, own_redis)
    await admin.set("svc:report", cache.codec.encode("computed-there"), px=60_000)
    await admin.delete(lock_key)
    with anyio.fail_after(30):
        assert await waiting == "computed-there"
    assert computed == []
    await admin.aclose()
    await cache.close()


async def test_a_lock_whose_reply_timed_out_but_which_was_taken_is_used_and_released(
    own_redis: RestartableServer, registry: CollectorRegistry
) -> None:
    """The SET NX landed once the server resumed: the lock is ours, so compute and release."""
    settings = CacheSettings(
        url=own_redis.url,
        namespace="svc",
        lock_wait=120,
        lock_timeout=120,
        circuit_failure_threshold=1000,
    )
    cache = Cache(settings, registry=registry)
    waiting, computed = await _stalled_while_locking(cache, registry, own_redis)
    with anyio.fail_after(30):  # far below lock_wait and lock_timeout: not waiting for itself
        assert await waiting == "computed-here"
    assert computed == ["here"]
    admin = Redis.from_url(own_redis.url)
    assert not await admin.exists(cache.stampede.lock_key("svc:report"))
    assert await admin.get("svc:report") == cache.codec.encode("computed-here")
    await admin.aclose()
    await cache.close()


def _breaker_state(cache: Cache) -> str:
    return cache.fail_open.breaker.state


async def _healthy(check: Callable[[], Awaitable[object]]) -> bool:
    """How a health registry (aegis-obs's HealthRegistry) reads a check: raised means DOWN."""
    try:
        await check()
    except Exception:  # any error is a failed check
        return False
    return True


async def test_health_check_fails_while_redis_is_down_and_passes_once_it_is_back(
    own_redis: RestartableServer, registry: CollectorRegistry
) -> None:
    settings = CacheSettings(url=own_redis.url, namespace="svc", circuit_failure_threshold=1)
    cache = Cache(settings, registry=registry)
    assert await cache.health_check() == {"backend": "redis", "circuit_open": False}

    own_redis.stop()
    # ping() answers False: registered as a check, it would pass while Redis is down.
    assert await _healthy(cache.ping)
    assert not await _healthy(cache.health_check)
    with pytest.raises(CacheUnavailableError) as caught:
        await cache.health_check()
    assert (caught.value.status, caught.value.code) == (503, "CACHE_UNAVAILABLE")
    assert caught.value.__cause__ is not None
    assert await cache.get("k", "fallback") == "fallback"  # reads fail open; the circuit opens
    assert _breaker_state(cache) == "open"

    own_redis.start()
    assert await cache.health_check() == {"backend": "redis", "circuit_open": True}
    assert _breaker_state(cache) == "closed"  # the check's success re-enables the cache at once
    assert await cache.set("k", 1)
    assert await _healthy(cache.health_check)
    await cache.close()


async def test_health_check_of_an_in_memory_cache_always_passes(
    registry: CollectorRegistry,
) -> None:
    cache = Cache(CacheSettings(namespace="svc"), registry=registry)
    assert await cache.health_check() == {"backend": "memory", "circuit_open": False}
    await cache.close()


class _HolderFinishesBetweenReads(MemoryBackend):
    """A lock held by another process, which stores its value and releases the lock right after
    the waiter's first read of either key: the race a poll of two keys on two Cluster nodes has.
    """

    def __init__(self, full_key: str, lock_key: str, value: bytes) -> None:
        super().__init__()
        self.full_key, self.lock_key, self.value = full_key, lock_key, value
        self.polling = False

    def _finish_holder(self) -> None:
        if self.polling:
            self.polling = False
            self._values[self.full_key] = (self.value, float("inf"))
            self._values.pop(self.lock_key, None)

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_ms: int | None,
        *,
        only_if_absent: bool = False,
        tag_keys: Sequence[str] = (),
    ) -> bool:
        stored = await super().set(
            key, value, ttl_ms, only_if_absent=only_if_absent, tag_keys=tag_keys
        )
        # The waiter found the lock taken: it polls next.
        self.polling = self.polling or (key == self.lock_key and only_if_absent and not stored)
        return stored

    async def get(self, key: str) -> bytes | None:
        found = await super().get(key)
        self._finish_holder()
        return found

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found = []
        for key in keys:  # not atomic, as on a Cluster: one read, then the other
            found.append(await super().get(key))
            self._finish_holder()
        return found


async def test_a_lock_waiter_never_computes_when_the_holder_finishes_between_its_reads(
    registry: CollectorRegistry,
) -> None:
    """Reading the lock before the value: a free lock means its holder's value is stored."""
    settings = CacheSettings(namespace="svc", lock_wait=30)
    lock_key = "svc:__lock__:report"
    backend = _HolderFinishesBetweenReads("svc:report", lock_key, b'"computed-there"')
    cache = Cache(settings, backend=backend, registry=registry)
    assert cache.stampede.lock_key("svc:report") == lock_key
    await backend.set(lock_key, b"another-process", 60_000)

    async def compute_here() -> str:
        return "computed-here"

    with anyio.fail_after(30):
        assert await cache.get_or_set("report", compute_here, ttl=60) == "computed-there"
    await cache.close()


async def test_a_cluster_that_cannot_be_reached_fails_open(registry: CollectorRegistry) -> None:
    """redis-py's cluster client raises RedisClusterException (not a RedisError) then."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = CacheSettings(url=f"redis+cluster://127.0.0.1:{port}", namespace="svc")
    cache = Cache(settings, registry=registry)
    assert await cache.get("k", "default") == "default"
    assert not await cache.set("k", 1)
    assert await cache.get_many(["a", "b"]) == {}
    assert await cache.delete_pattern("*") == 0
    with pytest.raises(CacheUnavailableError):
        await cache.health_check()
    assert cache.stats().errors == 4
    await cache.close()
