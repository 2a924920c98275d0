"""``Cache``: the client services use, composed of a backend and the layers above it.

It adds what peers get wrong: namespaces, serialization with a size limit, TTL jitter, metrics,
failing open behind a circuit breaker, stampede control and a coherent near cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from aegis.cache._backend import Backend, MemoryBackend
from aegis.cache._breaker import CircuitBreaker
from aegis.cache._codec import Codec
from aegis.cache._decorator import cached, invalidate
from aegis.cache._errors import CacheUnavailableError
from aegis.cache._failopen import FAILURES, FailOpen
from aegis.cache._metrics import CacheStats, Labels, metrics_for
from aegis.cache._near import InvalidationListener, tracked_near_cache
from aegis.cache._redis import RedisBackend
from aegis.cache._serializers import JsonSerializer, Serializer
from aegis.cache._settings import CacheSettings
from aegis.cache._stampede import FillOptions, Stampede
from aegis.cache._store import Store
from aegis.cache._sync import SyncBridge
from aegis.cache._ttl import TTL, TtlPolicy

T = TypeVar("T")
R = TypeVar("R")
_BACKEND_NAMES: dict[type, str] = {RedisBackend: "redis", MemoryBackend: "memory"}


def _backend_for(settings: CacheSettings) -> Backend:
    if settings.url is None or settings.url.get_secret_value().startswith("memory://"):
        return MemoryBackend()
    return RedisBackend(settings)


class Cache:
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

    Its parts are attributes: ``backend``, ``fail_open`` (circuit breaker, warnings, error
    counts), ``codec`` (serializer, size limit), ``ttls``, ``store`` (the read and write paths,
    near cache included) and ``stampede``.
    """

    def __init__(
        self,
        settings: CacheSettings | None = None,
        *,
        backend: Backend | None = None,
        serializer: Serializer | None = None,
        registry: CollectorRegistry | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.settings = settings if settings is not None else CacheSettings()
        self.backend: Backend = backend if backend is not None else _backend_for(self.settings)
        self.logger = logger if logger is not None else logging.getLogger("aegis.cache")
        self.prefix = self.settings.key_prefix
        self._registry = registry
        self._metrics = metrics_for(registry)
        self._labels: dict[str, Labels] = {}
        self.labels = self.labels_for(self.settings.namespace.rstrip(":") or "default")
        self.fail_open = FailOpen(
            CircuitBreaker(
                self.settings.circuit_failure_threshold, self.settings.circuit_reset_timeout
            ),
            self.labels,
            self._metrics.circuit_open.labels(self.labels.namespace),
            self.logger,
            self.settings.warning_interval,
        )
        self.codec = Codec(
            serializer if serializer is not None else JsonSerializer(),
            self.settings.max_value_bytes,
        )
        self.ttls = TtlPolicy(self.settings.default_ttl, self.settings.ttl_jitter)
        self._listener: InvalidationListener | None = None
        near = None
        if self.settings.near_cache and isinstance(self.backend, RedisBackend):
            near, self._listener = tracked_near_cache(self.settings, self.prefix, self.logger)
        self.store = Store(self.backend, self.fail_open, self.prefix, near, self._listener)
        self.stampede = Stampede(
            self.store,
            self.codec,
            self.ttls,
            lock_timeout=self.settings.lock_timeout,
            lock_wait=self.settings.lock_wait,
            logger=self.logger,
        )
        self._sync: tuple[SyncBridge, Cache] | None = None
        self._sync_lock = threading.Lock()

    def labels_for(self, namespace: str) -> Labels:
        """The metric children for ``namespace`` (one per decorated namespace, bounded)."""
        found = self._labels.get(namespace)
        if found is None:
            found = self._labels[namespace] = Labels(self._metrics, namespace)
        return found

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

    async def get(self, key: str, default: Any = None, *, type: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` when absent or Redis is unavailable.

        Args:
            key: the key, without the namespace.
            default: returned on a miss.
            type: validate the stored value into this type (``User``, ``list[User]``).
        """
        data = await self.store.read(self.prefix + key, self.labels)
        return default if data is None else self.codec.decode(data, type)

    async def set(
        self, key: str, value: Any, ttl: TTL | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` (default TTL, with jitter); False if skipped.

        Raises:
            CacheValueTooLargeError: the serialized value is over ``max_value_bytes``.
            CacheSerializationError: the serializer cannot encode the value.
        """
        data = self.codec.encode(value)
        return await self.store.write(self.prefix + key, data, self.ttls.milliseconds(ttl), tags)

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``; return how many existed (0 when Redis is unavailable)."""
        return await self.store.delete([self.prefix + key for key in keys])

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` exists (False when Redis is unavailable)."""
        full_key = self.prefix + key
        return await self.fail_open.attempt("exists", lambda: self.backend.exists(full_key), False)

    async def ttl(self, key: str) -> float | None:
        """Seconds ``key`` has left; None when it is absent, never expires, or Redis is down."""
        full_key = self.prefix + key
        left = await self.fail_open.attempt("ttl", lambda: self.backend.pttl(full_key), -2)
        return None if left < 0 else left / 1000

    async def expire(self, key: str, ttl: TTL) -> bool:
        """Give ``key`` a new TTL (exactly, no jitter); False when absent or Redis is down."""
        ms = self.ttls.milliseconds(ttl, jitter=False)
        full_key = self.prefix + key
        return await self.fail_open.attempt(
            "expire", lambda: self.backend.pexpire(full_key, ms), False
        )

    async def get_many(self, keys: Sequence[str], *, type: Any = None) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that exist, in one MGET (near cache first)."""
        values = await self.store.read_many([self.prefix + key for key in keys], self.labels)
        decode = self.codec.decode
        return {
            key: decode(data, type)
            for key, data in zip(keys, values, strict=True)
            if data is not None
        }

    async def set_many(
        self, items: Mapping[str, Any], ttl: TTL | None = None, *, tags: Sequence[str] = ()
    ) -> bool:
        """Store every item in one pipelined round trip; each key gets its own jittered TTL."""
        rows = [
            (self.prefix + key, self.codec.encode(value), self.ttls.milliseconds(ttl))
            for key, value in items.items()
        ]
        return await self.store.write_many(rows, tags)

    async def incr(self, key: str, amount: int = 1, *, ttl: TTL | None = None) -> int:
        """Add ``amount`` to the integer at ``key`` (a new key starts at 0 and gets ``ttl``).

        Raises:
            CacheUnavailableError: Redis is down: a counter has no fail-open value.
        """
        ms = None if ttl is None else self.ttls.milliseconds(ttl, jitter=False)
        full_key = self.prefix + key
        result = await self.fail_open.attempt(
            "incr", lambda: self.backend.incr(full_key, amount, ms), None
        )
        if result is None:
            raise CacheUnavailableError(f"cannot increment {key!r}: the cache is unavailable")
        self.store.forget([full_key])
        return result

    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Awaitable[T]],
        ttl: TTL | None = None,
        *,
        tags: Sequence[str] = (),
        lock: bool = True,
        type: Any = None,
    ) -> T:
        """Return the cached value of ``key``, or await ``factory()``, store and return it.

        Concurrent misses in this process await one ``factory()`` call; with ``lock`` other
        processes wait (up to ``lock_wait``) for the one holding a short Redis lock.
        """
        full_key = self.prefix + key
        data = await self.store.read(full_key, self.labels)
        if data is not None:
            result: T = self.codec.decode(data, type)
            return result
        options = FillOptions(self.labels, ttl=ttl, tags=tags, lock=lock, type_=type)
        return await self.stampede.fill(full_key, factory, options)

    async def delete_pattern(self, pattern: str) -> int:
        """Delete every key in the namespace matching the glob ``pattern`` (``"user:*"``).

        Walks the whole keyspace with SCAN (never KEYS) and deletes with UNLINK every
        ``scan_batch`` keys, so Redis keeps serving other clients meanwhile.
        """
        self.store.forget_everything()
        full = self.prefix + pattern
        return await self.fail_open.attempt(
            "delete_pattern",
            lambda: self.backend.delete_matching(full, self.settings.scan_batch),
            0,
        )

    async def invalidate_tags(self, *tags: str) -> int:
        """Delete every entry stored with any of ``tags``; return how many were deleted."""
        self.store.forget_everything()
        deleted = 0
        for tag in tags:
            tag_key = self.store.tag_key(tag)
            deleted += await self.fail_open.attempt(
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
        self.fail_open.succeeded()
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
        circuit_open = not self.fail_open.closed  # read, not allow(): that starts a probe
        try:
            await self.backend.ping()
        except FAILURES as exc:
            raise CacheUnavailableError(
                f"the cache backend does not answer PING ({type(exc).__name__})"
            ) from exc
        self.fail_open.succeeded()
        backend = _BACKEND_NAMES.get(type(self.backend), "custom")
        return {"backend": backend, "circuit_open": circuit_open}

    def run_sync(self, work: Callable[[Cache], Coroutine[Any, Any, R]]) -> R:
        """Run ``work(twin)`` for a sync caller and wait for its result (sync ``@cached``).

        ``twin`` is this cache's clone on a private event loop in a daemon thread, started on
        first use (a redis-py pool belongs to one loop): one loop for every thread of the
        process, so single flight covers them all. :meth:`stats` counts its work,
        :meth:`close` stops it. Do not call it from a coroutine: it blocks the running loop.
        """
        bridge, twin = self._sync or self._start_sync()
        return bridge.run(work(twin))

    def _start_sync(self) -> tuple[SyncBridge, Cache]:
        with self._sync_lock:
            if self._sync is None:
                twin = Cache(
                    self.settings.model_copy(update={"near_cache": False}),
                    backend=self.backend.clone(),
                    serializer=self.codec.serializer,
                    registry=self._registry,
                    logger=self.logger,
                )
                self._sync = (SyncBridge(), twin)
            return self._sync

    def stats(self) -> CacheStats:
        """Counts since this cache was created, with the hit ratio (sync calls included)."""
        caches = [self] if self._sync is None else [self, self._sync[1]]
        return CacheStats(
            hits=sum(c.store.hits for c in caches),
            near_hits=sum(c.store.near_hits for c in caches),
            misses=sum(c.store.misses for c in caches),
            errors=sum(c.fail_open.errors for c in caches),
        )

    async def close(self) -> None:
        """Stop background work (near cache listener, refreshes, sync bridge), close connections."""
        if self._listener is not None:
            await self._listener.stop()
        await self.stampede.close()
        sync, self._sync = self._sync, None
        if sync is not None:
            bridge, twin = sync
            bridge.stop(twin.close(), self.logger)
        await self.backend.close()

    async def __aenter__(self) -> Cache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
