"""Rate limits on the cache's Redis: fixed window, sliding window and token bucket.

Each check is one atomic Lua script (one synchronous step in memory); use it as an object, a
decorator, or through the ASGI middleware.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from aegis.cache._backend import RateAlgorithm, RateLimitResult
from aegis.cache._client import Cache
from aegis.cache._errors import CacheUnavailableError
from aegis.core.errors import InvalidInputError, RateLimitedError

P = ParamSpec("P")
R = TypeVar("R")


class RateLimiter:
    """``limit`` requests per ``period`` for each key (a client, user or route).

    Example:
        >>> limiter = RateLimiter(cache, 100, 60, algorithm="token_bucket", name="api")
        >>> result = await limiter.hit("client:203.0.113.7")
        >>> result.allowed, result.remaining
        (True, 99)

    Args:
        cache: the cache whose backend (and namespace) holds the counters.
        limit: requests allowed per period (the bucket size for ``token_bucket``).
        period: seconds or timedelta.
        algorithm: ``fixed_window`` (cheapest; allows bursts at window edges),
            ``sliding_window`` (two weighted windows; smooth) or ``token_bucket``
            (refills ``limit`` tokens per period; allows a burst of ``limit``).
        name: keeps this limiter's counters apart from other limiters'.
        fail_open: when Redis is unavailable, allow (True) or refuse with
            :class:`~aegis.cache.CacheUnavailableError` (False).
    """

    def __init__(
        self,
        cache: Cache,
        limit: int,
        period: float | timedelta,
        *,
        algorithm: RateAlgorithm = "sliding_window",
        name: str = "default",
        fail_open: bool = True,
    ) -> None:
        seconds = period.total_seconds() if isinstance(period, timedelta) else float(period)
        if limit < 1:
            raise InvalidInputError("limit must be at least 1", field="limit", rule="min")
        if seconds < 0.001:  # Redis expiries are in whole milliseconds
            raise InvalidInputError("period must be at least 1 ms", field="period", rule="min")
        if algorithm not in ("fixed_window", "sliding_window", "token_bucket"):
            raise InvalidInputError(
                f"unknown algorithm {algorithm!r}", field="algorithm", rule="choice"
            )
        self.cache = cache
        self.limit = limit
        self.period_ms = round(seconds * 1000)
        self.algorithm = algorithm
        self.name = name
        self.fail_open = fail_open

    async def hit(self, key: str, cost: int = 1) -> RateLimitResult:
        """Count ``cost`` requests for ``key`` and return whether they are allowed.

        Raises:
            CacheUnavailableError: Redis is unavailable and ``fail_open`` is False.
        """
        full_key = f"{self.cache.prefix}__rate__:{self.name}:{key}"
        result = await self.cache.fail_open.attempt(
            "rate_limit",
            lambda: self.cache.backend.rate_limit(
                self.algorithm, full_key, self.limit, self.period_ms, cost
            ),
            None,
        )
        if result is not None:
            return result
        if not self.fail_open:
            raise CacheUnavailableError(
                f"rate limit {self.name!r} cannot be checked: the cache is unavailable"
            )
        return RateLimitResult(True, self.limit, self.limit, 0.0, 0.0)

    async def check(self, key: str, cost: int = 1) -> RateLimitResult:
        """Like :meth:`hit`, but raise when the limit is exceeded.

        Raises:
            RateLimitedError: over the limit; ``retry_after`` and ``headers`` are set.
            CacheUnavailableError: Redis is unavailable and ``fail_open`` is False.
        """
        result = await self.hit(key, cost)
        if not result.allowed:
            error = RateLimitedError(
                f"rate limit {self.name!r} exceeded: {self.limit} per {self.period_ms / 1000:g}s",
                retry_after=math.ceil(result.retry_after),
            )
            error.headers = self.headers(result)  # type: ignore[attr-defined]
            raise error
        return result

    def headers(self, result: RateLimitResult) -> dict[str, str]:
        """``RateLimit-Limit``/``-Remaining``/``-Reset`` (and ``Retry-After`` when refused)."""
        headers = {
            "RateLimit-Limit": str(result.limit),
            "RateLimit-Remaining": str(result.remaining),
            "RateLimit-Reset": str(math.ceil(result.reset_after)),
        }
        if not result.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(result.retry_after)))
        return headers


def rate_limited(
    limiter: RateLimiter, *, key: str | Callable[..., str] = "", cost: int = 1
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Rate-limit an async function; over the limit it raises ``RateLimitedError`` (429).

    Args:
        limiter: the limit to apply.
        key: a template formatted with the call's arguments (``"user:{user_id}"``), or a
            callable given the arguments; empty: one shared limit for every call.
        cost: requests each call counts for.
    """

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        signature = inspect.signature(func)

        def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            if callable(key):
                return key(*args, **kwargs)
            if "{" not in key:
                return key
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return key.format(**bound.arguments)

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            await limiter.check(key_of(args, kwargs), cost)
            return await func(*args, **kwargs)

        return wrapper

    return decorate
