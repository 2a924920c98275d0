"""Time-ordered UUIDs (version 7, RFC 9562) for primary keys that sort by creation time."""

from __future__ import annotations

import os
import struct
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
_RAND_B_SHIFT = 2  # a 64-bit draw keeps its top 62 bits for rand_b
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# rand_b and counter seeds come from os.urandom read in blocks of 512 64-bit draws: one system
# call per id costs more than all the rest of the id.
_POOL_DRAWS = 512
_UNPACK_POOL = struct.Struct(f"{_POOL_DRAWS}Q").unpack


class _Uuid7Generator:
    """UUIDv7 generator with RFC 9562 "Method 1": a 12-bit counter in ``rand_a``.

    Within one millisecond the counter goes up by one per id, so ids made in one process sort in
    the order they were made. When the counter runs out (more than ~2048 ids in a millisecond) or
    the wall clock steps back, the timestamp is carried forward by one millisecond instead
    (section 6.2 allows this), so ordering still holds; ``rand_b`` is 62 fresh random bits for
    every id from the OS CSPRNG (``entropy``), so ids from different processes do not collide.
    The text of the millisecond part is made once per millisecond for :meth:`text`.
    """

    __slots__ = (
        "_clock_ms",
        "_counter",
        "_draws",
        "_entropy",
        "_last_ms",
        "_lock",
        "_position",
        "_prefix",
    )

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int] | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ms = clock_ms  # None: the wall clock, read inline (the hot path)
        self._entropy = entropy
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0
        self._draws: tuple[int, ...] = ()
        self._position = _POOL_DRAWS
        self._prefix: tuple[int, str] = (-1, "")

    def reset_after_fork(self) -> None:
        """Give a forked child a fresh lock and fresh random bits (never its parent's)."""
        self._lock = threading.Lock()
        self._draws = ()
        self._position = _POOL_DRAWS

    def _next(self) -> tuple[int, int, int]:
        """Return the next (millisecond, counter, rand_b) triple."""
        with self._lock:
            clock_ms = self._clock_ms
            now_ms = time.time_ns() // 1_000_000 if clock_ms is None else clock_ms()
            position = self._position
            if position >= _POOL_DRAWS - 1:  # room for a counter seed and a rand_b
                self._draws = _UNPACK_POOL(self._entropy(8 * _POOL_DRAWS))
                position = 0
            draws = self._draws
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = draws[position] >> 53 & _SEED_MASK
                position += 1
            elif self._counter < _MAX_COUNTER:
                self._counter += 1
            else:
                self._last_ms += 1
                self._counter = draws[position] >> 53 & _SEED_MASK
                position += 1
            self._position = position + 1
            timestamp_ms, counter = self._last_ms, self._counter
        if timestamp_ms >= 1 << 48:
            raise OverflowError("the UUIDv7 48-bit millisecond timestamp overflows in year 10889")
        return timestamp_ms, counter, draws[position] >> _RAND_B_SHIFT

    def __call__(self) -> UUID:
        timestamp_ms, counter, rand_b = self._next()
        return UUID(int=(timestamp_ms << 80) | _VERSION_7 | (counter << 64) | _VARIANT_RFC | rand_b)

    def text(self) -> str:
        """Return the next id in its canonical 36-character text form, without a ``UUID``."""
        timestamp_ms, counter, rand_b = self._next()
        cached = self._prefix  # one tuple, replaced whole, so threads never see half of it
        if cached[0] != timestamp_ms:
            text = "%08x-%04x-7" % (timestamp_ms >> 16, timestamp_ms & 0xFFFF)  # noqa: UP031
            cached = self._prefix = (timestamp_ms, text)
        rand_b |= _VARIANT_RFC
        return "%s%03x-%04x-%012x" % (  # noqa: UP031 - the fastest spelling
            cached[1],
            counter,
            rand_b >> 48,
            rand_b & 0xFFFF_FFFF_FFFF,
        )


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


def uuid7_str() -> str:
    """Return a new version 7 UUID as its canonical text, e.g. ``"019b76da-a800-7abc-8…"``.

    The same id :func:`uuid7` makes (same ordering and randomness), written straight to text
    without building a :class:`~uuid.UUID`: for ids that travel as strings (event ids).

    Example:
        >>> a, b = uuid7_str(), uuid7_str()
        >>> a < b and UUID(a).version == 7
        True
    """
    return _default_generator.text()


def uuid7_timestamp(value: UUID) -> datetime:
    """Return the creation time (UTC, millisecond precision) embedded in a version 7 UUID.

    Raises:
        InvalidInputError: ``value`` is not a version 7 UUID (field ``id``, rule ``uuid_version``).

    Example:
        >>> uuid7_timestamp(UUID("019b76da-a800-7000-8000-000000000000"))
        datetime.datetime(2026, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if value.version != 7:
        raise InvalidInputError(
            f"{value} is a version {value.version} UUID; only version 7 UUIDs carry a timestamp",
            field="id",
            rule="uuid_version",
        )
    return _EPOCH + timedelta(milliseconds=value.int >> 80)
