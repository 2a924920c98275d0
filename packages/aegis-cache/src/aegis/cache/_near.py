"""The near cache: a bounded in-process LRU in front of Redis, kept coherent by Redis itself.

Coherence comes from server-assisted client-side caching: one connection per process runs
``CLIENT TRACKING ON REDIRECT <itself> BCAST PREFIX <namespace>`` and subscribes to
``__redis__:invalidate``, so Redis reports every change to a key under the namespace - writes
from any client, deletes, expiries, evictions, FLUSHDB. The connection speaks RESP2 because in
RESP2 invalidations arrive as ordinary pub/sub messages. While that connection is down the near
cache is bypassed and emptied, so it never serves a value it could have missed a change to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from aegis.cache._settings import CacheSettings
from aegis.core.errors import ConfigurationError
from aegis.core.redis_urls import parse_redis_url

_CHANNEL = "__redis__:invalidate"
_RECENT_LIMIT = 10_000
_FIRST_RETRY = 0.05


class NearCache:
    """LRU of serialized values with a TTL; entries are bytes so callers never share objects.

    A read that missed takes a :meth:`token` before asking Redis and passes it to :meth:`put`:
    if the key was invalidated in between, the (possibly stale) value is not kept.
    """

    def __init__(
        self, max_size: int, ttl: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self.ready = False
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._sequence = 0
        self._invalidated: OrderedDict[str, int] = OrderedDict()
        self._forgotten_before = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        """Return the value of ``key`` if present, fresh and the tracker is connected."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock() or not self.ready:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def token(self) -> int:
        """The invalidation sequence number now; pass it to :meth:`put`."""
        return self._sequence

    def put(self, key: str, value: bytes, token: int) -> None:
        """Keep ``value`` unless ``key`` was invalidated after ``token`` was taken."""
        if not self.ready or token < self._forgotten_before:
            return
        if self._invalidated.get(key, -1) > token:
            return
        self._entries[key] = (value, self._clock() + self.ttl)
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def invalidate(self, keys: list[str]) -> None:
        """Drop ``keys`` and remember that they changed (for reads in flight)."""
        self._sequence += 1
        for key in keys:
            self._entries.pop(key, None)
            self._invalidated[key] = self._sequence
            self._invalidated.move_to_end(key)
        while len(self._invalidated) > _RECENT_LIMIT:
            _, sequence = self._invalidated.popitem(last=False)
            self._forgotten_before = max(self._forgotten_before, sequence)

    def clear(self) -> None:
        """Drop everything, and refuse values read before now."""
        self._sequence += 1
        self._entries.clear()
        self._invalidated.clear()
        self._forgotten_before = self._sequence


class InvalidationListener:
    """The background task that feeds Redis's invalidation messages into a :class:`NearCache`."""

    def __init__(
        self, near: NearCache, settings: CacheSettings, prefix: str, logger: logging.Logger
    ) -> None:
        self._near = near
        self._settings = settings
        self._prefix = prefix
        self._logger = logger
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._delay = _FIRST_RETRY

    def start(self) -> None:
        """Start listening (idempotent); the near cache turns on once subscribed."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until the listener is subscribed; False after ``timeout`` seconds."""
        self.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        return self._near.ready

    def _is_stopping(self) -> bool:
        return self._stopping

    async def _run(self) -> None:
        while not self._is_stopping():
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                self._logger.warning("near cache: invalidation channel lost (%s); bypassing", exc)
            self._near.ready = False
            self._near.clear()
            self._connected.clear()
            if self._is_stopping():
                return
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, self._settings.circuit_reset_timeout)

    async def _listen(self) -> None:
        assert self._settings.url is not None  # only built for Redis URLs
        client: Redis = Redis.from_url(
            self._settings.url.get_secret_value(),
            protocol=2,
            socket_connect_timeout=self._settings.connect_timeout,
            socket_timeout=self._settings.timeout,
        )
        pubsub = client.pubsub()
        try:
            await pubsub.execute_command("CLIENT", "ID")
            client_id = await pubsub.parse_response(block=False, timeout=self._settings.timeout)
            tracking: list[Any] = ["CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST"]
            if self._prefix:
                tracking += ["PREFIX", self._prefix]
            await pubsub.execute_command(*tracking)
            reply = await pubsub.parse_response(block=False, timeout=self._settings.timeout)
            if reply != b"OK":
                raise RedisError(f"CLIENT TRACKING answered {reply!r}")
            await pubsub.subscribe(_CHANNEL)
            while not self._stopping:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self._near.clear()
                    self._near.ready = True
                    self._delay = _FIRST_RETRY
                    self._connected.set()
                elif message["type"] == "message":
                    self._apply(message["data"])
        finally:
            # PubSub.aclose() is typed from redis-py 8.2 on, not in 8.1 (the floor): through a
            # typed name, mypy is clean with both, where a "type: ignore" is unused on one.
            close_pubsub: Callable[[], Awaitable[None]] = pubsub.aclose
            with contextlib.suppress(RedisError, OSError):
                await close_pubsub()
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def _apply(self, data: Any) -> None:
        if data is None:  # FLUSHDB / FLUSHALL: every key changed
            self._near.clear()
        else:
            self._near.invalidate([k.decode() if isinstance(k, bytes) else str(k) for k in data])

    async def stop(self) -> None:
        """Stop listening and empty the near cache."""
        self._stopping = True
        self._near.ready = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._near.clear()


def tracked_near_cache(
    settings: CacheSettings, prefix: str, logger: logging.Logger
) -> tuple[NearCache, InvalidationListener]:
    """The near cache ``settings`` ask for and the listener that keeps it coherent.

    Raises:
        ConfigurationError: ``settings.url`` is not a standalone Redis URL.
    """
    assert settings.url is not None  # only called for a Redis backend
    url = parse_redis_url(settings.url.get_secret_value(), name="CacheSettings.url")
    if url.kind != "standalone":
        raise ConfigurationError(
            f"near_cache needs a standalone Redis URL (redis://, rediss://, unix://), not "
            f"{url.scheme}://: invalidations are tracked on one server connection",
            details={"setting": "near_cache"},
        )
    near = NearCache(settings.near_cache_size, settings.near_cache_ttl)
    return near, InvalidationListener(near, settings, prefix, logger)
