"""Time-ordered UUIDs (version 7, RFC 9562) for primary keys that sort by creation time."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from aegis.core.errors import InvalidInputError

_MAX_COUNTER = 0xFFF
# RFC 9562 section 6.2, "Counter Rollover Guards": seed each millisecond's counter with its top bit
# clear, so at least 2048 ids fit in one millisecond before the counter rolls over.
_SEED_MASK = 0x7FF
_RAND_B_BITS = 62
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Uuid7Generator:
    """UUIDv7 generator with RFC 9562 "Method 1": a 12-bit counter in ``rand_a``.

    Within one millisecond the counter goes up by one per id, so ids made in one process sort in
    the order they were made. When the counter runs out (more than ~2048 ids in a millisecond) or
    the wall clock steps back, the timestamp is carried forward by one millisecond instead
    (section 6.2 allows this), so ordering still holds; ``rand_b`` is 62 fresh random bits for
    every id, so ids from different processes do not collide.
    """

    __slots__ = ("_clock_ms", "_counter", "_last_ms", "_lock", "_random_bits")

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int] | None = None,
        random_bits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._clock_ms = clock_ms or _wall_clock_ms
        self._random_bits = random_bits
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def reset_after_fork(self) -> None:
        """Give a forked child a fresh lock: the parent's may have been held by another thread."""
        self._lock = threading.Lock()

    def __call__(self) -> UUID:
        with self._lock:
            now_ms = self._clock_ms()
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = self._random_bits(12) & _SEED_MASK
            elif self._counter < _MAX_COUNTER:
                self._counter += 1
            else:
                self._last_ms += 1
                self._counter = self._random_bits(12) & _SEED_MASK
            timestamp_ms, counter = self._last_ms, self._counter
        if timestamp_ms >= 1 << 48:
            raise OverflowError("the UUIDv7 48-bit millisecond timestamp overflows in year 10889")
        value = (
            (timestamp_ms << 80)
            | _VERSION_7
            | (counter << 64)
            | _VARIANT_RFC
            | self._random_bits(_RAND_B_BITS)
        )
        return UUID(int=value)


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


_default_generator = _Uuid7Generator()
if hasattr(os, "register_at_fork"):  # pragma: no branch - absent only on Windows
    os.register_at_fork(after_in_child=_default_generator.reset_after_fork)


def uuid7() -> UUID:
    """Return a new version 7 UUID: 48-bit Unix milliseconds, a 12-bit counter, 62 random bits.

    Ids from one process are strictly increasing (RFC 9562 Method 1, counter in ``rand_a``);
    ids from different processes sort by their millisecond. Safe to call from many threads.

    Example:
        >>> a, b = uuid7(), uuid7()
        >>> a < b and a.version == 7
        True
    """
    return _default_generator()


def uuid7_timestamp(value: UUID) -> datetime:
    """Return the creation time (UTC, millisecond precision) embedded in a version 7 UUID.

    Raises:
        InvalidInputError: ``value`` is not a version 7 UUID (field ``id``, rule ``uuid_version``).

    Example:
        >>> uuid7_timestamp(UUID("019b76da-a800-7000-8000-000000000000"))
        datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if value.version != 7:  # noqa: PLR2004 - the UUID version this function reads
        raise InvalidInputError(
            f"{value} is a version {value.version} UUID; only version 7 UUIDs carry a timestamp",
            field="id",
            rule="uuid_version",
        )
    return _EPOCH + timedelta(milliseconds=value.int >> 80)
