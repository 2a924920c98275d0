"""The storage interface a :class:`~aegis.cache.Cache` runs on, and its in-memory implementation.

Backends see full keys (namespace included) and bytes; they know nothing of serialization,
metrics or fail-open behaviour, which live in the cache client above them.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

RateAlgorithm = Literal["fixed_window", "sliding_window", "token_bucket"]
"""The rate-limiting algorithms every backend implements atomically."""


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The answer to one rate-limit check.

    Attributes:
        allowed: whether the request is within the limit (and was counted).
        limit: the configured limit.
        remaining: requests still allowed in the current window (or tokens left).
        reset_after: seconds until the limit is fully available again.
        retry_after: seconds to wait before a request can succeed; 0 when allowed.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


class Backend(Protocol):
    """The storage operations a cache needs; implemented for Redis and for process memory."""

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or ``None`` when it is absent."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the values of ``keys`` in order, ``None`` for each absent one."""

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_ms: int | None,
        *,
        only_if_absent: bool = False,
        tag_keys: Sequence[str] = (),
    ) -> bool:
        """Store ``value``; add ``key`` to each tag set. False when ``only_if_absent`` lost."""

    async def set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tag_keys: Sequence[str] = ()
    ) -> None:
        """Store every ``(key, value, ttl_ms)`` in one round trip."""

    async def delete(self, keys: Sequence[str]) -> int:
        """Remove ``keys`` (without blocking the server); return how many existed."""

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` exists."""

    async def pttl(self, key: str) -> int:
        """Milliseconds ``key`` has left: -2 when absent, -1 when it never expires."""

    async def pexpire(self, key: str, ttl_ms: int) -> bool:
        """Set the TTL of ``key``; False when it does not exist."""

    async def incr(self, key: str, amount: int, ttl_ms: int | None) -> int:
        """Add ``amount`` and return the new value; a new key gets ``ttl_ms``."""

    async def delete_matching(self, pattern: str, batch: int) -> int:
        """Delete every key matching the glob ``pattern`` in batches; return how many."""

    async def delete_tagged(self, tag_key: str, batch: int) -> int:
        """Delete every key in the tag set ``tag_key`` and the set itself; return how many."""

    async def release_lock(self, key: str, token: bytes) -> bool:
        """Delete ``key`` only if it still holds ``token`` (our lock, not a successor's)."""

    async def rate_limit(
        self, algorithm: RateAlgorithm, key: str, limit: int, period_ms: int, cost: int
    ) -> RateLimitResult:
        """Count ``cost`` against ``key`` atomically and say whether it is allowed."""

    async def ping(self) -> None:
        """Raise when the storage cannot be reached."""

    def clone(self) -> Backend:
        """A backend on the same storage usable from another event loop."""

    async def close(self) -> None:
        """Release connections."""


class MemoryBackend:
    """Process-local storage with the same behaviour as Redis: TTLs, tags, locks, rate limits.

    For development and unit tests; it is not shared between processes. Expired entries are
    dropped when read and during pattern deletes.
    """

    def __init__(self) -> None:
        self._values: dict[str, tuple[bytes, float]] = {}
        self._sets: dict[str, tuple[set[str], float]] = {}
        self._counters: dict[str, tuple[float, float, float]] = {}

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    @staticmethod
    def _deadline(ttl_ms: int | None, now: float) -> float:
        return math.inf if ttl_ms is None else now + ttl_ms / 1000

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._values[key]
            return None
        return entry[0]

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or ``None`` when it is absent or expired."""
        return self._live(key, self._now())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the values of ``keys`` in order."""
        now = self._now()
        return [self._live(key, now) for key in keys]

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_ms: int | None,
        *,
        only_if_absent: bool = False,
        tag_keys: Sequence[str] = (),
    ) -> bool:
        """Store ``value``; False when ``only_if_absent`` and the key exists."""
        now = self._now()
        if only_if_absent and self._live(key, now) is not None:
            return False
        self._values[key] = (value, self._deadline(ttl_ms, now))
        self._tag([key], tag_keys, ttl_ms, now)
        return True

    def _tag(
        self, keys: Sequence[str], tag_keys: Sequence[str], ttl_ms: int | None, now: float
    ) -> None:
        for tag_key in tag_keys:
            members, deadline = self._sets.get(tag_key, (set(), 0.0))
            if deadline <= now:
                members = set()
            members.update(keys)
            self._sets[tag_key] = (members, max(deadline, self._deadline(ttl_ms, now)))

    async def set_many(
        self, items: Sequence[tuple[str, bytes, int | None]], tag_keys: Sequence[str] = ()
    ) -> None:
        """Store every ``(key, value, ttl_ms)``."""
        now = self._now()
        for key, value, ttl_ms in items:
            self._values[key] = (value, self._deadline(ttl_ms, now))
        if items:
            longest = max((ttl for _, _, ttl in items), key=lambda t: math.inf if t is None else t)
            self._tag([key for key, _, _ in items], tag_keys, longest, now)

    async def delete(self, keys: Sequence[str]) -> int:
        """Remove ``keys``; return how many existed."""
        now = self._now()
        found = 0
        for key in keys:
            if self._live(key, now) is not None:
                found += 1
            self._values.pop(key, None)
            self._sets.pop(key, None)
            self._counters.pop(key, None)
        return found

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` exists."""
        return self._live(key, self._now()) is not None

    async def pttl(self, key: str) -> int:
        """Milliseconds left: -2 when absent, -1 without expiry."""
        now = self._now()
        if self._live(key, now) is not None:
            deadline = self._values[key][1]
        elif key in self._sets and self._sets[key][1] > now:
            deadline = self._sets[key][1]
        else:
            return -2
        return -1 if deadline == math.inf else max(0, round((deadline - now) * 1000))

    async def pexpire(self, key: str, ttl_ms: int) -> bool:
        """Set the TTL of ``key``; False when it does not exist."""
        now = self._now()
        value = self._live(key, now)
        if value is None:
            return False
        self._values[key] = (value, now + ttl_ms / 1000)
        return True

    async def incr(self, key: str, amount: int, ttl_ms: int | None) -> int:
        """Add ``amount``; a new key gets ``ttl_ms``."""
        now = self._now()
        current = self._live(key, now)
        if current is None:
            new, deadline = amount, self._deadline(ttl_ms, now)
        else:
            new, deadline = int(current) + amount, self._values[key][1]
        self._values[key] = (str(new).encode(), deadline)
        return new

    async def delete_matching(self, pattern: str, batch: int) -> int:
        """Delete every live key matching ``pattern``."""
        matched = [key for key in list(self._values) if fnmatch.fnmatchcase(key, pattern)]
        return await self.delete(matched)

    async def delete_tagged(self, tag_key: str, batch: int) -> int:
        """Delete every key tagged with ``tag_key``, then the tag."""
        members, deadline = self._sets.pop(tag_key, (set(), 0.0))
        if deadline <= self._now():
            return 0
        return await self.delete(sorted(members))

    async def release_lock(self, key: str, token: bytes) -> bool:
        """Delete ``key`` if it holds ``token``."""
        if self._live(key, self._now()) != token:
            return False
        del self._values[key]
        return True

    async def rate_limit(
        self, algorithm: RateAlgorithm, key: str, limit: int, period_ms: int, cost: int
    ) -> RateLimitResult:
        """Count ``cost`` against ``key`` with ``algorithm``."""
        now_ms = self._now() * 1000
        previous = self._counters.get(key, (0.0, 0.0, 0.0))
        step = _ALGORITHMS[algorithm]
        state, result = step(previous, now_ms, limit, period_ms, cost)
        self._counters[key] = state
        return result

    async def ping(self) -> None:
        """Memory is always reachable."""

    def clone(self) -> MemoryBackend:
        """The same storage (the dicts are shared by every thread of the process)."""
        return self

    async def close(self) -> None:
        """Nothing to release."""


_State = tuple[float, float, float]


def _fixed_window(
    state: _State, now: float, limit: int, period: int, cost: int
) -> tuple[_State, RateLimitResult]:
    count, window_end, _ = state
    if window_end <= now:
        count, window_end = 0.0, now + period
    reset = (window_end - now) / 1000
    if count + cost > limit:
        return (count, window_end, 0.0), RateLimitResult(
            False, limit, int(limit - count), reset, reset
        )
    count += cost
    return (count, window_end, 0.0), RateLimitResult(True, limit, int(limit - count), reset, 0.0)


def _sliding_window(
    state: _State, now: float, limit: int, period: int, cost: int
) -> tuple[_State, RateLimitResult]:
    current, previous, window = state
    index = float(now // period)
    if index != window:
        previous = current if index == window + 1 else 0.0
        current, window = 0.0, index
    elapsed = now - index * period
    estimate = previous * (1 - elapsed / period) + current
    if estimate + cost > limit:
        free = limit - current - cost
        wait = period - elapsed
        if free >= 0 and previous > 0:
            wait = max(0.0, period * (1 - free / previous) - elapsed)
        return (current, previous, window), RateLimitResult(
            False, limit, max(0, int(limit - estimate)), (2 * period - elapsed) / 1000, wait / 1000
        )
    current += cost
    remaining = max(0, int(limit - estimate - cost))
    return (current, previous, window), RateLimitResult(
        True, limit, remaining, (2 * period - elapsed) / 1000, 0.0
    )


def _token_bucket(
    state: _State, now: float, limit: int, period: int, cost: int
) -> tuple[_State, RateLimitResult]:
    tokens, stamp, seen = state
    rate = limit / period
    tokens = limit if not seen else min(limit, tokens + (now - stamp) * rate)
    allowed = tokens >= cost
    if allowed:
        tokens -= cost
    retry = 0.0 if allowed else (cost - tokens) / rate / 1000
    reset = (limit - tokens) / rate / 1000
    return (tokens, now, 1.0), RateLimitResult(allowed, limit, int(tokens), reset, retry)


_ALGORITHMS = {
    "fixed_window": _fixed_window,
    "sliding_window": _sliding_window,
    "token_bucket": _token_bucket,
}
