"""The public names of aegis.cache: an addition or removal shows up here in review."""

from __future__ import annotations

import inspect

import aegis.cache


def test_public_names_are_exactly_these() -> None:
    assert aegis.cache.__all__ == [
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
    assert all(hasattr(aegis.cache, name) for name in aegis.cache.__all__)
    assert aegis.cache.__version__ == "0.1.0"


def test_every_public_callable_has_a_docstring() -> None:
    undocumented = [
        name
        for name in aegis.cache.__all__
        if (
            inspect.isclass(getattr(aegis.cache, name))
            or inspect.isfunction(getattr(aegis.cache, name))
        )
        and not getattr(aegis.cache, name).__doc__
    ]
    assert undocumented == []


def test_error_codes_are_stable() -> None:
    codes = {
        aegis.cache.CacheError: ("CACHE_ERROR", 500),
        aegis.cache.CacheUnavailableError: ("CACHE_UNAVAILABLE", 503),
        aegis.cache.CacheValueTooLargeError: ("CACHE_VALUE_TOO_LARGE", 500),
        aegis.cache.CacheSerializationError: ("CACHE_SERIALIZATION", 500),
        aegis.cache.CacheKeyError: ("CACHE_KEY_INVALID", 500),
    }
    for error_type, (code, status) in codes.items():
        error = error_type("x")
        assert (error.code, error.status) == (code, status)
