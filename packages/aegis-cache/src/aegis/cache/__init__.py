"""aegis.cache: a Redis cache that stays correct and fast when Redis is slow or down.

``Cache`` (Redis via redis-py's asyncio client, or process memory) with get/set/TTL and
jitter, ``@cached`` for async and sync functions, stampede control, pattern and tag
invalidation, fail-open reads behind a circuit breaker, Prometheus metrics, an opt-in near cache
kept coherent by Redis, and rate limits (object, decorator, ASGI middleware).
"""

from aegis.cache.__about__ import __version__
from aegis.cache._asgi import RateLimitMiddleware, client_key, route_key, user_key
from aegis.cache._backend import Backend, MemoryBackend, RateAlgorithm, RateLimitResult
from aegis.cache._breaker import BreakerState, CircuitBreaker
from aegis.cache._client import Cache
from aegis.cache._decorator import cached, get_default_cache, invalidate, set_default_cache
from aegis.cache._errors import (
    CacheError,
    CacheKeyError,
    CacheSerializationError,
    CacheUnavailableError,
    CacheValueTooLargeError,
)
from aegis.cache._metrics import CacheStats
from aegis.cache._ratelimit import RateLimiter, rate_limited
from aegis.cache._redis import RedisBackend
from aegis.cache._serializers import JsonSerializer, Serializer
from aegis.cache._settings import CacheSettings
from aegis.cache._ttl import TTL

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
