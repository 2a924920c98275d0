"""The plumbing under :class:`~aegis.cache.Cache`.

Fail-open calls behind the circuit breaker, metrics, encoding with a size limit, TTL jitter
and the near-cache read path.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter
from redis.exceptions import RedisError

from aegis.cache._backend import Backend, MemoryBackend
from aegis.cache._breaker import CircuitBreaker, ThrottledWarning
from aegis.cache._errors import CacheValueTooLargeError
from aegis.cache._metrics import CacheMetrics, metrics_for
from aegis.cache._near import InvalidationListener, NearCache
from aegis.cache._redis import RedisBackend
from aegis.cache._serializers import JsonSerializer, Serializer
from aegis.cache._settings import CacheSettings
from aegis.cache._stampede import ENVELOPE, Stampede
from aegis.core.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from aegis.cache._decorator import SyncBridge

T = TypeVar("T")
TTL = float | int | timedelta
"""A time to live: seconds, or a ``timedelta``."""

# What "Redis is down or slow" looks like from redis-py: refused or reset connections, socket
# timeouts, a pool that stayed exhausted for the timeout.
FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
_MISSING = object()


@dataclass(frozen=True)
class CacheStats:
    """Counts of one cache since it was created (this process only).

    Attributes:
        hits: reads that found a value (near cache included).
        near_hits: the part of ``hits`` answered in process by the near cache.
        misses: reads that found nothing, including reads skipped because Redis was down.
        errors: operations that failed or were skipped because Redis was down or slow.
    """

    hits: int
    near_hits: int
    misses: int
    errors: int

    @property
    def hit_ratio(self) -> float:
        """``hits / (hits + misses)``; 0.0 before the first read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0


class Labels:
    """Metric children of one namespace label, bound once (labels() lookups cost microseconds)."""

    def __init__(self, metrics: CacheMetrics, namespace: str) -> None:
        self.namespace = namespace
        self.hit_remote = metrics.hits.labels(namespace, "remote")
        self.hit_near = metrics.hits.labels(namespace, "near")
        self.miss = metrics.misses.labels(namespace)
        self.get_seconds = metrics.duration.labels(namespace, "get")
        self._metrics = metrics

    def error(self, operation: str) -> None:
        """Count a failed or skipped ``operation``."""
        self._metrics.errors.labels(self.namespace, operation).inc()

    def observe(self, operation: str, seconds: float) -> None:
        """Record how long ``operation`` took."""
        self._metrics.duration.labels(self.namespace, operation).observe(seconds)


def _backend_for(settings: CacheSettings) -> Backend:
    if settings.url is None or settings.url.get_secret_value().startswith("memory://"):
        return MemoryBackend()
    return RedisBackend(settings)


class CacheCore:
    """State and fail-open plumbing shared by every :class:`~aegis.cache.Cache` operation."""

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
        self.serializer: Serializer = serializer if serializer is not None else JsonSerializer()
        self.logger = logger if logger is not None else logging.getLogger("aegis.cache")
        self.prefix = self.settings.key_prefix
        self._registry = registry
        self._metrics = metrics_for(registry)
        self._labels: dict[str, Labels] = {}
        self.labels = self.labels_for(self.settings.namespace.rstrip(":") or "default")
        self._circuit_gauge = self._metrics.circuit_open.labels(self.labels.namespace)
        self._circuit_gauge.set(0)
        self.breaker = CircuitBreaker(
            self.settings.circuit_failure_threshold, self.settings.circuit_reset_timeout
        )
        self._warning = ThrottledWarning(self.logger, self.settings.warning_interval)
        self._adapters: dict[Any, TypeAdapter[Any]] = {}
        self._json = isinstance(self.serializer, JsonSerializer)
        self.hits = self.near_hits = self.misses = self.errors = 0
        self.near: NearCache | None = None
        self._listener: InvalidationListener | None = None
        if self.settings.near_cache and isinstance(self.backend, RedisBackend):
            self._setup_near_cache()
        self.stampede = Stampede(self)
        self.bridge: SyncBridge | None = None

    def _setup_near_cache(self) -> None:
        assert self.settings.url is not None  # noqa: S101 - a RedisBackend has a URL
        scheme = urlsplit(self.settings.url.get_secret_value()).scheme
        if "+" in scheme:
            raise ConfigurationError(
                f"near_cache needs a standalone Redis URL (redis://, rediss://, unix://), not "
                f"{scheme}://: invalidations are tracked on one server connection",
                details={"setting": "near_cache"},
            )
        self.near = NearCache(self.settings.near_cache_size, self.settings.near_cache_ttl)
        self._listener = InvalidationListener(self.near, self.settings, self.prefix, self.logger)

    def labels_for(self, namespace: str) -> Labels:
        """The metric children for ``namespace`` (one per decorated namespace, bounded)."""
        found = self._labels.get(namespace)
        if found is None:
            found = self._labels[namespace] = Labels(self._metrics, namespace)
        return found

    def ttl_ms(self, ttl: TTL | None, *, jitter: bool = True) -> int:
        """Milliseconds for ``ttl`` (default TTL when None), shortened by up to the jitter."""
        seconds = self.settings.default_ttl if ttl is None else ttl
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if seconds <= 0:
            raise InvalidInputError(
                f"ttl must be positive, got {seconds!r}", field="ttl", rule="positive"
            )
        if jitter and self.settings.ttl_jitter:
            seconds *= 1 - self.settings.ttl_jitter * random.random()  # noqa: S311 - not crypto
        return max(1, int(seconds * 1000))

    def encode(self, value: Any) -> bytes:
        """Serialize ``value``, refusing it when larger than ``max_value_bytes``."""
        data = self.serializer.dumps(value)
        if len(data) > self.settings.max_value_bytes:
            raise CacheValueTooLargeError(
                f"value of {len(data)} bytes is over max_value_bytes="
                f"{self.settings.max_value_bytes}; store less or raise the limit",
                details={"size": len(data), "limit": self.settings.max_value_bytes},
            )
        return data

    def decode(self, data: bytes, type_: Any = None) -> Any:
        """Deserialize ``data`` (validated into ``type_`` when given)."""
        if data[:2] == ENVELOPE:
            data = data[10:]
        if type_ is None:
            return self.serializer.loads(data)
        adapter = self._adapters.get(type_)
        if adapter is None:
            adapter = self._adapters[type_] = TypeAdapter(type_)
        if self._json:
            return adapter.validate_json(data)
        return adapter.validate_python(self.serializer.loads(data))

    def failed(self, operation: str, exc: BaseException | None, labels: Labels) -> None:
        """Record a failed (``exc``) or skipped (None: circuit open) backend call."""
        self.errors += 1
        labels.error(operation)
        if exc is None:
            return
        if self.breaker.failure():
            self._circuit_gauge.set(1)
            self.logger.warning(
                "cache: Redis failed %d times in a row; skipping it for %.1fs (%s: %s)",
                self.settings.circuit_failure_threshold,
                self.settings.circuit_reset_timeout,
                type(exc).__name__,
                exc,
            )
        else:
            self._warning.warn(
                "cache: %s failed, serving without cache (%s: %s)",
                operation,
                type(exc).__name__,
                exc,
            )

    def succeeded(self) -> None:
        """Record a backend call that worked (closes the breaker after an outage)."""
        if self.breaker.success():
            self._circuit_gauge.set(0)
            self.logger.warning("cache: Redis answers again; cache re-enabled")

    async def attempt(
        self,
        operation: str,
        call: Callable[[], Awaitable[T]],
        fallback: T,
        labels: Labels | None = None,
    ) -> T:
        """Run a backend ``call``; on failure or an open circuit record it, return ``fallback``."""
        labels = labels or self.labels
        if not self.breaker.allow():
            self.failed(operation, None, labels)
            return fallback
        start = time.perf_counter()
        try:
            result = await call()
        except FAILURES as exc:
            self.failed(operation, exc, labels)
            return fallback
        self.succeeded()
        labels.observe(operation, time.perf_counter() - start)
        return result

    async def read(self, full_key: str, labels: Labels) -> bytes | None:
        """The hit path: near cache, then one GET; a failure is a miss."""
        near = self.near
        token = 0
        if near is not None:
            data = near.get(full_key)
            if data is not None:
                self.hits += 1
                self.near_hits += 1
                labels.hit_near.inc()
                return data
            token = near.token()
            if not near.ready and self._listener is not None:
                self._listener.start()
        if not self.breaker.allow():
            self.failed("get", None, labels)
            self.misses += 1
            labels.miss.inc()
            return None
        start = time.perf_counter()
        try:
            data = await self.backend.get(full_key)
        except FAILURES as exc:
            self.failed("get", exc, labels)
            data = None
        else:
            if self.breaker._opened_at is not None:
                self.succeeded()
            labels.get_seconds.observe(time.perf_counter() - start)
        if data is None:
            self.misses += 1
            labels.miss.inc()
            return None
        self.hits += 1
        labels.hit_remote.inc()
        if near is not None:
            near.put(full_key, data, token)
        return data

    def forget_near(self, full_keys: Iterable[str]) -> None:
        """Drop keys this process changed from its near cache at once (read your own writes)."""
        if self.near is not None:
            self.near.invalidate(list(full_keys))

    async def write(
        self,
        full_key: str,
        data: bytes,
        ttl_ms: int,
        tags: Sequence[str] = (),
        labels: Labels | None = None,
    ) -> bool:
        """Store already-encoded ``data``; fails open."""
        tag_keys = [self.tag_key(tag) for tag in tags]
        stored = await self.attempt(
            "set",
            lambda: self.backend.set(full_key, data, ttl_ms, tag_keys=tag_keys),
            False,
            labels,
        )
        self.forget_near([full_key])
        return stored

    def tag_key(self, tag: str) -> str:
        """The full key of the set that lists the entries tagged ``tag``."""
        return f"{self.prefix}__tag__:{tag}"
