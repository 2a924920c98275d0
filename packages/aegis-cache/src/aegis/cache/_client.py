"""``Cache``: the client services use, on top of a backend.

It adds what peers get wrong: namespaces, serialization with a size limit, TTL jitter, metrics,
and failing open behind a circuit breaker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from aegis.cache._backend import MemoryBackend
from aegis.cache._core import FAILURES, TTL, CacheCore, CacheStats
from aegis.cache._decorator import cached, invalidate
from aegis.cache._errors import CacheUnavailableError
from aegis.cache._redis import RedisBackend
from aegis.cache._settings import CacheSettings
from aegis.cache._stampede import FillOptions

T = TypeVar("T")
_BACKEND_NAMES: dict[type, str] = {RedisBackend: "redis", MemoryBackend: "memory"}


class Cache(CacheCore):
    """An async cache on Redis (or process memory) that never fails a request because of Redis.

    Reads and writes fail open: when Redis is down or slower than ``settings.timeout`` a read is a
    miss and a write is skipped, a warning is logged at most once per ``warning_interval`` and
    ``aegis_cache_errors_total`` counts it. After ``circuit_failure_threshold`` consecutive
    failures the circuit opens and Redis is not called at all until a probe succeeds.

    Example:
        >>> cache = Cache(CacheSettings(url="redis://127.0.0.1:6379/0", namespace="users"))
        >>> await cache.set("user:42", {"name": "kim"}, ttl=60)
        >>> await cache.get("user:42")
        {'name': 'kim'}

    Args:
        settings: configuration; the default is the in-memory backend.
        backend: storage to use instead of the one ``settings.url`` names.
        serializer: value encoding; JSON by default.
        registry: Prometheus registry for the ``aegis_cache_*`` metrics (the default registry
            when None).
        logger: where warnings go (``aegis.cache`` by default).
    """

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> Cache:
        """``Cache(CacheSettings(url=url, **settings))``."""
        return cls(CacheSettings(url=url, **settings))

    async def start(self, timeout: float = 1.0) -> bool:
        """Connect the near cache's invalidation channel; True when the near cache is on.

        Without a near cache this only checks that the backend answers. The near cache also
        starts by itself on first use; calling this at startup makes it hot sooner.
        """
        if self._listener is not None:
            return await self._listener.wait_ready(timeout)
        return await self.ping()

    async def get(self, key: str, default: Any = None, *, type: Any = None) -> Any:  # noqa: A002
        """Return the value of ``key``, or ``default`` when absent or Redis is unavailable.

        Args:
            key: the key, without the namespace.
            default: returned on a miss.
            type: validate the stored value into this type (``User``, ``list[User]``).
        """
        data = await self.read(self.prefix + key, self.labels)
        return default if data is None else self.decode(data, type)

    async def set(
        self, key: str, value: Any, ttl: TTL | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` (default TTL, with jitter); False if skipped.

        Raises:
            CacheValueTooLargeError: the serialized value is over ``max_value_bytes``.
            CacheSerializationError: the serializer cannot encode the value.
        """
        return await self.write(self.prefix + key, self.encode(value), self.ttl_ms(ttl), tags)

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``; return how many existed (0 when Redis is unavailable)."""
        full = [self.prefix + key for key in keys]
        self.forget_near(full)
        return await self.attempt("delete", lambda: self.backend.delete(full), 0)

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` exists (False when Redis is unavailable)."""
        return await self.attempt("exists", lambda: self.backend.exists(self.prefix + key), False)

    async def ttl(self, key: str) -> float | None:
        """Seconds ``key`` has left; None when it is absent, never expires, or Redis is down."""
        left = await self.attempt("ttl", lambda: self.backend.pttl(self.prefix + key), -2)
        return None if left < 0 else left / 1000

    async def expire(self, key: str, ttl: TTL) -> bool:
        """Give ``key`` a new TTL (exactly, no jitter); False when absent or Redis is down."""
        ms = self.ttl_ms(ttl, jitter=False)
        return await self.attempt(
            "expire", lambda: self.backend.pexpire(self.prefix + key, ms), False
        )

    async def get_many(self, keys: Sequence[str], *, type: Any = None) -> dict[str, Any]:  # noqa: A002
        """Return ``{key: value}`` for the keys that exist, in one MGET (near cache first)."""
        labels = self.labels
        found: dict[str, Any] = {}
        wanted = list(keys)
        near = self.near
        token = 0
        if near is not None and near.ready:
            token = near.token()
            remaining = []
            for key in wanted:
                data = near.get(self.prefix + key)
                if data is None:
                    remaining.append(key)
                else:
                    found[key] = self.decode(data, type)
            self.hits += len(found)
            self.near_hits += len(found)
            labels.hit_near.inc(len(found))
            wanted = remaining
        if not wanted:
            return found
        full = [self.prefix + key for key in wanted]
        nothing: list[bytes | None] = [None] * len(full)
        values = await self.attempt("get_many", lambda: self.backend.get_many(full), nothing)
        hits = 0
        for key, full_key, data in zip(wanted, full, values, strict=True):
            if data is not None:
                hits += 1
                found[key] = self.decode(data, type)
                if near is not None:
                    near.put(full_key, data, token)
        self.hits += hits
        self.misses += len(wanted) - hits
        labels.hit_remote.inc(hits)
        labels.miss.inc(len(wanted) - hits)
        return found

    async def set_many(
        self, items: Mapping[str, Any], ttl: TTL | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store every item in one pipelined round trip; each key gets its own jittered TTL."""
        rows = [
            (self.prefix + key, self.encode(value), self.ttl_ms(ttl))
            for key, value in items.items()
        ]
        tag_keys = [self.tag_key(tag) for tag in tags]
        self.forget_near(row[0] for row in rows)

        async def call() -> bool:
            await self.backend.set_many(rows, tag_keys)
            return True

        return await self.attempt("set_many", call, False)

    async def incr(self, key: str, amount: int = 1, *, ttl: TTL | None = None) -> int:
        """Add ``amount`` to the integer at ``key`` (a new key starts at 0 and gets ``ttl``).

        Raises:
            CacheUnavailableError: Redis is down: a counter has no fail-open value.
        """
        ms = None if ttl is None else self.ttl_ms(ttl, jitter=False)
        result = await self.attempt(
            "incr", lambda: self.backend.incr(self.prefix + key, amount, ms), None
        )
        if result is None:
            raise CacheUnavailableError(f"cannot increment {key!r}: the cache is unavailable")
        self.forget_near([self.prefix + key])
        return result

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        ttl: TTL | None = None,
        *,
        tags: Sequence[str] = (),
        lock: bool = True,
        type: Any = None,  # noqa: A002
    ) -> T:
        """Return the cached value of ``key``, or await ``factory()``, store and return it.

        Concurrent misses in this process await one ``factory()`` call; with ``lock`` other
        processes wait (up to ``lock_wait``) for the one holding a short Redis lock.
        """
        full_key = self.prefix + key
        data = await self.read(full_key, self.labels)
        if data is not None:
            result: T = self.decode(data, type)
            return result
        options = FillOptions(self.labels, ttl=ttl, tags=tags, lock=lock, type_=type)
        return await self.stampede.fill(full_key, factory, options)

    async def delete_pattern(self, pattern: str) -> int:
        """Delete every key in the namespace matching the glob ``pattern`` (``"user:*"``).

        Walks the whole keyspace with SCAN (never KEYS) and deletes with UNLINK every
        ``scan_batch`` keys, so Redis keeps serving other clients meanwhile.
        """
        if self.near is not None:
            self.near.clear()
        full = self.prefix + pattern
        return await self.attempt(
            "delete_pattern",
            lambda: self.backend.delete_matching(full, self.settings.scan_batch),
            0,
        )

    async def invalidate_tags(self, *tags: str) -> int:
        """Delete every entry stored with any of ``tags``; return how many were deleted."""
        if self.near is not None:
            self.near.clear()
        deleted = 0
        for tag in tags:
            tag_key = self.tag_key(tag)
            deleted += await self.attempt(
                "invalidate_tags",
                lambda tag_key=tag_key: self.backend.delete_tagged(
                    tag_key, self.settings.scan_batch
                ),  # type: ignore[misc]
                0,
            )
        return deleted

    def cached(
        self, ttl: TTL | None = None, **options: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """:func:`aegis.cache.cached` bound to this cache (same options)."""
        return cached(ttl, cache=self, **options)

    async def invalidate(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Delete the cached result of the ``@cached`` call ``func(*args, **kwargs)``."""
        return await invalidate(func, *args, **kwargs)

    async def ping(self) -> bool:
        """Whether the backend answers now (ignores the circuit breaker).

        Not a health check: it answers ``False`` rather than raising, and a health registry
        counts any answer as healthy. Register :meth:`health_check` instead.
        """
        try:
            await self.backend.ping()
        except FAILURES:
            return False
        self.succeeded()
        return True

    async def health_check(self) -> dict[str, Any]:
        """A health check: returns details when the backend answers ``PING``, raises when not.

        Any async check registry that reads "returned" as healthy and "raised" as unhealthy takes
        it as is, e.g. aegis-obs: ``health.add("cache", cache.health_check)``. It ignores the
        circuit breaker (a success closes it, as any successful call does) and waits at most
        ``settings.timeout`` per reply, as every Redis call does.

        Returns:
            ``backend`` (``"redis"``, ``"memory"`` or ``"custom"``) and ``circuit_open``:
            whether reads and writes were skipping Redis until this check.

        Raises:
            CacheUnavailableError: the backend did not answer (HTTP 503, ``CACHE_UNAVAILABLE``),
                with the client's error as its cause.
        """
        circuit_open = self.breaker.state != "closed"  # read, not allow(): that starts a probe
        try:
            await self.backend.ping()
        except FAILURES as exc:
            raise CacheUnavailableError(
                f"the cache backend does not answer PING ({type(exc).__name__})"
            ) from exc
        self.succeeded()
        backend = _BACKEND_NAMES.get(type(self.backend), "custom")
        return {"backend": backend, "circuit_open": circuit_open}

    def stats(self) -> CacheStats:
        """Counts since this cache was created, with the hit ratio (sync calls included)."""
        caches = [self] if self.bridge is None else [self, self.bridge.cache]
        return CacheStats(
            hits=sum(c.hits for c in caches),
            near_hits=sum(c.near_hits for c in caches),
            misses=sum(c.misses for c in caches),
            errors=sum(c.errors for c in caches),
        )

    async def close(self) -> None:
        """Stop background work (near cache listener, refreshes, sync bridge), close connections."""
        if self._listener is not None:
            await self._listener.stop()
        await self.stampede.close()
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        await self.backend.close()

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
