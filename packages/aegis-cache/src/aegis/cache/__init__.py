"""aegis.cache: a Redis cache that stays correct and fast when Redis is slow or down.

``Cache`` (Redis via redis-py's asyncio client, or process memory) with get/set/TTL and
jitter, ``@cached`` for async and sync functions, stampede control, pattern and tag
invalidation, fail-open reads behind a circuit breaker, Prometheus metrics, an opt-in near cache
kept coherent by Redis, and rate limits (object, decorator, ASGI middleware).
"""

from typing import TYPE_CHECKING

from aegis.cache.__about__ import __version__
from aegis.cache._errors import (
    CacheError,
    CacheKeyError,
    CacheSerializationError,
    CacheUnavailableError,
    CacheValueTooLargeError,
)
from aegis.core.utils.lazy import lazy_getattr

if TYPE_CHECKING:
    from aegis.cache._asgi import RateLimitMiddleware, client_key, route_key, user_key
    from aegis.cache._backend import Backend, MemoryBackend, RateAlgorithm, RateLimitResult
    from aegis.cache._breaker import BreakerState, CircuitBreaker
    from aegis.cache._client import Cache
    from aegis.cache._decorator import cached, get_default_cache, invalidate, set_default_cache
    from aegis.cache._metrics import CacheStats
    from aegis.cache._ratelimit import RateLimiter, rate_limited
    from aegis.cache._redis import RedisBackend
    from aegis.cache._serializers import JsonSerializer, Serializer
    from aegis.cache._settings import CacheSettings
    from aegis.cache._ttl import TTL

# Every name but the errors (which register their codes) is imported on first use (PEP 562),
# so that `import aegis.cache` costs almost nothing: redis-py's asyncio client and the
# settings models load with the first name that needs them (benchmarks/import_time.py).
_LAZY = {
    "Backend": "aegis.cache._backend",
    "BreakerState": "aegis.cache._breaker",
    "Cache": "aegis.cache._client",
    "CacheSettings": "aegis.cache._settings",
    "CacheStats": "aegis.cache._metrics",
    "CircuitBreaker": "aegis.cache._breaker",
    "JsonSerializer": "aegis.cache._serializers",
    "MemoryBackend": "aegis.cache._backend",
    "RateAlgorithm": "aegis.cache._backend",
    "RateLimitMiddleware": "aegis.cache._asgi",
    "RateLimitResult": "aegis.cache._backend",
    "RateLimiter": "aegis.cache._ratelimit",
    "RedisBackend": "aegis.cache._redis",
    "Serializer": "aegis.cache._serializers",
    "TTL": "aegis.cache._ttl",
    "cached": "aegis.cache._decorator",
    "client_key": "aegis.cache._asgi",
    "get_default_cache": "aegis.cache._decorator",
    "invalidate": "aegis.cache._decorator",
    "rate_limited": "aegis.cache._ratelimit",
    "route_key": "aegis.cache._asgi",
    "set_default_cache": "aegis.cache._decorator",
    "user_key": "aegis.cache._asgi",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "TTL",
    "Backend",
    "BreakerState",
    "Cache",
    "CacheError",
    "CacheKeyError",
    "CacheSerializationError",
    "CacheSettings",
    "CacheStats",
    "CacheUnavailableError",
    "CacheValueTooLargeError",
    "CircuitBreaker",
    "JsonSerializer",
    "MemoryBackend",
    "RateAlgorithm",
    "RateLimitMiddleware",
    "RateLimitResult",
    "RateLimiter",
    "RedisBackend",
    "Serializer",
    "__version__",
    "cached",
    "client_key",
    "get_default_cache",
    "invalidate",
    "rate_limited",
    "route_key",
    "set_default_cache",
    "user_key",
]
