"""The Redis backend: redis-py's asyncio client with short timeouts, no retries, Lua for atomicity.

Retries are off on purpose: the cache client fails open and its circuit breaker decides when to
try Redis again, so a dead server costs one fast failure per call instead of a retry loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from aegis.cache._backend import RateAlgorithm, RateLimitResult
from aegis.cache._fastpath import BOUNDED, PromptBlockingPool, fast_path_available
from aegis.cache._settings import CacheSettings
from aegis.cache._topologies import CommandSlots
from aegis.core.redis_clients import close_sentinels, cluster_client, sentinel_primary
from aegis.core.redis_urls import parse_redis_url

P = ParamSpec("P")
R = TypeVar("R")

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_FIXED_WINDOW = """
local limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then count = 0; ttl = period end
if count + cost > limit then return {0, limit - count, ttl, ttl} end
if count == 0 then redis.call('SET', KEYS[1], cost, 'PX', period)
else redis.call('INCRBY', KEYS[1], cost) end
return {1, limit - count - cost, ttl, 0}
"""

# Two fixed windows weighted by how far the current one has gone (the "sliding window counter"):
# O(1) memory per client, unlike a log of every request.
_SLIDING_WINDOW = """
local limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local index = math.floor(now / period)
local state = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local window = tonumber(state[1]) or -1
local current = tonumber(state[2]) or 0
local previous = tonumber(state[3]) or 0
if index ~= window then
  if index == window + 1 then previous = current else previous = 0 end
  current = 0
  window = index
end
local elapsed = now - index * period
local estimate = previous * (1 - elapsed / period) + current
local reset = 2 * period - elapsed
local allowed = 1
local wait = 0
if estimate + cost > limit then
  allowed = 0
  wait = period - elapsed
  local free = limit - current - cost
  if free >= 0 and previous > 0 then
    wait = math.max(0, period * (1 - free / previous) - elapsed)
  end
else
  current = current + cost
  estimate = estimate + cost
end
redis.call('HSET', KEYS[1], 'w', window, 'c', current, 'p', previous)
redis.call('PEXPIRE', KEYS[1], 2 * period)
return {allowed, math.max(0, math.floor(limit - estimate)), reset, math.ceil(wait)}
"""

_BUCKET = """
local limit, period, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = limit / period
local state = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(state[1])
if tokens == nil then tokens = limit
else tokens = math.min(limit, tokens + math.max(0, now - tonumber(state[2])) * rate) end
local allowed = 0
local retry = 0
if tokens >= cost then tokens = tokens - cost; allowed = 1
else retry = math.ceil((cost - tokens) / rate) end
redis.call('HSET', KEYS[1], 't', tokens, 's', now)
redis.call('PEXPIRE', KEYS[1], period)
return {allowed, math.floor(tokens), math.ceil((limit - tokens) / rate), retry}
"""

_SCRIPTS: dict[RateAlgorithm, str] = {
    "fixed_window": _FIXED_WINDOW,
    "sliding_window": _SLIDING_WINDOW,
    "token_bucket": _BUCKET,
}


def create_client(settings: CacheSettings, **overrides: Any) -> Redis | RedisCluster:
    """Build the redis-py asyncio client for ``settings.url`` (standalone, Sentinel or Cluster).

    Nothing connects until the first command.

    Raises:
        ConfigurationError: ``settings.url`` is malformed (what is wrong is named).
    """
    assert settings.url is not None  # the caller picked the Redis backend
    url = settings.url.get_secret_value()
    parsed = parse_redis_url(url, name="CacheSettings.url")
    timeouts = {
        "socket_timeout": settings.timeout,
        "socket_connect_timeout": settings.connect_timeout,
    }
    common: dict[str, Any] = {**timeouts, "retry": Retry(NoBackoff(), 0), **overrides}
    if parsed.kind == "cluster":
        return cluster_client(parsed, max_connections=settings.max_connections, **common)
    if parsed.kind == "sentinel":
        return sentinel_primary(
            parsed, sentinel_options=timeouts, max_connections=settings.max_connections, **common
        )
    pool_options: dict[str, Any] = {
        "max_connections": settings.max_connections,
        "timeout": settings.timeout,
        **common,
    }
    if not fast_path_available():
        return Redis(connection_pool=BlockingConnectionPool.from_url(url, **pool_options))
    pool = PromptBlockingPool.from_url(url, **pool_options)
    # The URL's scheme picked the connection class; no connection exists yet.
    pool.connection_class = BOUNDED.get(pool.connection_class, pool.connection_class)
    return Redis(connection_pool=pool)


def _bounded(
    method: Callable[Concatenate[RedisBackend, P], Awaitable[R]],
) -> Callable[Concatenate[RedisBackend, P], Coroutine[Any, Any, R]]:
    """Run ``method`` in one of the backend's command slots, when it has them."""

    @functools.wraps(method)
    async def bounded(backend: RedisBackend, /, *args: P.args, **kwargs: P.kwargs) -> R:
        slots = backend.slots
        if slots is None:
            return await method(backend, *args, **kwargs)
        async with slots:
            return await method(backend, *args, **kwargs)

    return bounded


class RedisBackend:
    """:class:`~aegis.cache.Backend` on a Redis server, Sentinel primary or Cluster.

    On a standalone server a ``GET`` goes straight to a pooled connection (the fast path of
    ``_fastpath``); on Cluster and Sentinel every command takes redis-py's public path, and the
    backend bounds the commands in flight itself (``slots``): their pools do not wait for a free
    connection.
    """

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.client = create_client(settings)
        pool = getattr(self.client, "connection_pool", None)
        self._pool = pool if isinstance(pool, PromptBlockingPool) else None
        self._cluster = isinstance(self.client, RedisCluster)
        self.slots = (
            None
            if isinstance(pool, BlockingConnectionPool)
            else CommandSlots(settings.max_connections, settings.timeout)
        )
        self._release = self.client.register_script(_RELEASE_LOCK)
        self._limits = {name: self.client.register_script(lua) for name, lua in _SCRIPTS.items()}

    async def get(self, key: str) -> bytes | None:
        """GET: on a standalone server, straight on a pooled connection.

        A GET is the whole of a cache hit, so it skips redis-py's command layer (a retry wrapper
        with no retries here, observability hooks, a response callback GET does not have); the
        connection and its pool are redis-py's own, and a connection that failed mid-command is
        dropped by redis-py as on any other path.
        """
        pool = self._pool
        if pool is None:
            slots = self.slots
            if slots is None:
                return await self.client.get(key)  # type: ignore[return-value] # decode_responses off
            async with slots:
                return await self.client.get(key)  # type: ignore[return-value] # decode_responses off
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(connection.pack_command("GET", key))
            return await connection.read_response()  # type: ignore[no-any-return]
        finally:
            await pool.release(connection)

    @_bounded
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One MGET (on a Cluster, one per slot, pipelined to each node)."""
        if not keys:
            return []
        if self._cluster:
            return await self.client.mget_nonatomic(keys)  # type: ignore[union-attr]
        return await self.client.mget(keys)  # type: ignore[return-value] # decode_responses off

    @_bounded
    async def set(
        self,
        key: str,
        value: bytes,
        ttl_ms: int | None,
        *,
        only_if_absent: bool = False,
        tag_keys: Sequence[str] = (),
    ) -> bool:
        """SET with PX (and NX); tags are added in the same round trip."""
        if not tag_keys:
            return bool(await self.client.set(key, value, px=ttl_ms, nx=only_if_absent))
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(key, value, px=ttl_ms, nx=only_if_absent)
            self._add_tags(pipe, tag_keys, [key], ttl_ms)
            replies = await pipe.execute()
        return bool(replies[0])

    @staticmethod
    def _add_tags(pipe: Any, tag_keys: Sequence[str], keys: list[str], ttl_ms: int | None) -> None:
        for tag_key in tag_keys:
            pipe.sadd(tag_key, *keys)
            if ttl_ms is None:
                pipe.persist(tag_key)
            else:
                # A tag lives as long as its longest-lived entry: NX sets a first expiry, GT
                # only ever extends it.
                pipe.pexpire(tag_key, ttl_ms, nx=True)
                pipe.pexpire(tag_key, ttl_ms, gt=True)

    @_bounded
    async def set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tag_keys: Sequence[str] = ()
    ) -> None:
        """Every SET in one pipeline (no MULTI: each key keeps its own TTL)."""
        if not items:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for key, value, ttl_ms in items:
                pipe.set(key, value, px=ttl_ms)
            if tag_keys:
                ttls = [ttl for _, _, ttl in items]
                longest = None if None in ttls else max(t for t in ttls if t is not None)
                self._add_tags(pipe, tag_keys, [key for key, _, _ in items], longest)
            await pipe.execute()

    @_bounded
    async def delete(self, keys: Sequence[str]) -> int:
        """UNLINK: the server frees memory in the background."""
        if not keys:
            return 0
        return int(await self.client.unlink(*keys))

    @_bounded
    async def exists(self, key: str) -> bool:
        """EXISTS."""
        return bool(await self.client.exists(key))

    @_bounded
    async def pttl(self, key: str) -> int:
        """PTTL."""
        return int(await self.client.pttl(key))

    @_bounded
    async def pexpire(self, key: str, ttl_ms: int) -> bool:
        """PEXPIRE."""
        return bool(await self.client.pexpire(key, ttl_ms))

    @_bounded
    async def incr(self, key: str, amount: int, ttl_ms: int | None) -> int:
        """INCRBY, and PEXPIRE NX in the same round trip when a TTL is given."""
        if ttl_ms is None:
            return int(await self.client.incrby(key, amount))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incrby(key, amount)
            pipe.pexpire(key, ttl_ms, nx=True)
            replies = await pipe.execute()
        return int(replies[0])

    @_bounded
    async def delete_matching(self, pattern: str, batch: int) -> int:
        """SCAN MATCH over the whole keyspace (every page), UNLINK every ``batch`` keys."""
        deleted = 0
        found: list[bytes] = []
        async for key in self.client.scan_iter(match=pattern, count=batch):
            found.append(key)
            if len(found) >= batch:
                deleted += int(await self.client.unlink(*found))
                found = []
        if found:
            deleted += int(await self.client.unlink(*found))
        return deleted

    @_bounded
    async def delete_tagged(self, tag_key: str, batch: int) -> int:
        """SSCAN the tag set, UNLINK its members every ``batch`` keys, then the set."""
        deleted = 0
        found: list[bytes] = []
        async for key in self.client.sscan_iter(tag_key, count=batch):
            found.append(key)
            if len(found) >= batch:
                deleted += int(await self.client.unlink(*found))
                found = []
        if found:
            deleted += int(await self.client.unlink(*found))
        await self.client.unlink(tag_key)
        return deleted

    @_bounded
    async def release_lock(self, key: str, token: bytes) -> bool:
        """Compare-and-delete in Lua."""
        return bool(await self._release(keys=[key], args=[token]))

    @_bounded
    async def rate_limit(
        self, algorithm: RateAlgorithm, key: str, limit: int, period_ms: int, cost: int
    ) -> RateLimitResult:
        """One Lua script per algorithm; time is the server's, so clients' clocks do not matter."""
        allowed, remaining, reset_ms, retry_ms = await self._limits[algorithm](
            keys=[key], args=[limit, period_ms, cost]
        )
        return RateLimitResult(
            bool(allowed), limit, max(0, int(remaining)), reset_ms / 1000, retry_ms / 1000
        )

    @_bounded
    async def ping(self) -> None:
        """PING; on a Cluster, every primary (redis-py sends PING to one node by default)."""
        if self._cluster:
            await self.client.ping(target_nodes=RedisCluster.PRIMARIES)
        else:
            await self.client.ping()

    def clone(self) -> RedisBackend:
        """A new client and pool with the same settings (a pool belongs to one event loop)."""
        return RedisBackend(self.settings)

    async def close(self) -> None:
        """Close the client and its pool (and a Sentinel client's connections to the sentinels)."""
        await close_sentinels(self.client)
        await self.client.aclose()
        if isinstance(self.client, Redis):
            # A client given its pool does not own it: close its connections here.
            await self.client.connection_pool.disconnect()
