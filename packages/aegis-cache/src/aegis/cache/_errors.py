"""The errors aegis-cache raises: :class:`~aegis.core.errors.AegisError` with stable codes."""

from __future__ import annotations

from aegis.core.errors import AegisError, register_error_code

register_error_code("CACHE_ERROR", 500, "Cache error")
register_error_code("CACHE_UNAVAILABLE", 503, "Cache unavailable")
register_error_code("CACHE_VALUE_TOO_LARGE", 500, "Cache value too large")
register_error_code("CACHE_SERIALIZATION", 500, "Cache value cannot be serialized")
register_error_code("CACHE_KEY_INVALID", 500, "Cache key cannot be built")


class CacheError(AegisError):
    """Base of every aegis-cache error (HTTP 500, code ``CACHE_ERROR``)."""

    default_code = "CACHE_ERROR"


class CacheUnavailableError(CacheError):
    """Redis cannot be reached and the operation has no fail-open answer (HTTP 503).

    Raised by ``incr`` and by a rate limit configured to fail closed.
    """

    default_code = "CACHE_UNAVAILABLE"


class CacheValueTooLargeError(CacheError):
    """A value's serialized size is over ``CacheSettings.max_value_bytes``; nothing was written."""

    default_code = "CACHE_VALUE_TOO_LARGE"


class CacheSerializationError(CacheError):
    """A value cannot be encoded by the cache's serializer (or a stored one decoded)."""

    default_code = "CACHE_SERIALIZATION"


class CacheKeyError(CacheError):
    """An argument of a ``@cached`` function cannot be part of a stable cache key.

    The message names the parameter and its type; pass ``key=`` or give the type a
    ``__cache_key__()`` method.
    """

    default_code = "CACHE_KEY_INVALID"
