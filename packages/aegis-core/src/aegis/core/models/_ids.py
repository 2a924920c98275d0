"""Time-ordered UUIDs (version 7, RFC 9562) for primary keys that sort by creation time."""

from __future__ import annotations

import itertools
import os
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from time import time_ns
from uuid import UUID

from aegis.core.errors import InvalidInputError

_MAX_COUNTER = 0xFFF
# RFC 9562 section 6.2, "Counter Rollover Guards": seed each millisecond's counter with its top bit
# clear, so at least 2048 ids fit in one millisecond before the counter rolls over.
_SEED_MASK = 0x7FF
_SEED_SHIFT = 53  # a 64-bit draw gives its top 11 bits to a counter seed
_RAND_B_SHIFT = 2  # a 64-bit draw keeps its top 62 bits for rand_b
_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# rand_b and counter seeds come from os.urandom read in blocks of 512 64-bit draws: one system
# call per id costs more than all the rest of the id.
_POOL_DRAWS = 512
_UNPACK_POOL = struct.Struct(f"{_POOL_DRAWS}Q").unpack
# With the GIL, one next() on a C iterator (itertools.count, a tuple's) is atomic, which the
# lock-free path relies on; a free-threaded build (3.13t: no GIL) takes the lock for every id.
_GIL = bool(getattr(sys, "_is_gil_enabled", lambda: True)())

_Millisecond = tuple[int, int, Iterator[int], str]
"""(The millisecond the lock-free path may use, -1 without the GIL; the millisecond; its counter;
its text prefix)."""


class _Uuid7Generator:
    """UUIDv7 generator with RFC 9562 "Method 1": a 12-bit counter in ``rand_a``.

    Within one millisecond the counter goes up by one per id, so ids made in one process sort in
    the order they were made. When the counter runs out (more than ~2048 ids in a millisecond) or
    the wall clock steps back, the timestamp is carried forward by one millisecond instead
    (section 6.2 allows this), so ordering still holds; ``rand_b`` is 62 fresh random bits for
    every id from the OS CSPRNG (``entropy``), so ids from different processes do not collide.

    Each millisecond has one counter (an :func:`itertools.count`) and one text prefix, installed
    together under the lock by its first id (``_advance``). Every other id of that millisecond
    takes no lock: one ``next()`` on the counter and one on the pool of random draws, each atomic
    under the GIL, so no two ids share a counter value and an id begun after another returned
    draws a later one. A counter that runs out goes through the lock, like a new millisecond.
    """

    __slots__ = ("_clock_ms", "_entropy", "_lock", "_pool", "_state")

    def __init__(
        self,
        *,
        clock_ms: Callable[[], int] | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock_ms = clock_ms
        self._entropy = entropy
        self._lock = threading.Lock()
        self._pool: Iterator[int] = iter(())
        self._state: _Millisecond = (-1, -1, iter(()), "")

    def reset_after_fork(self) -> None:
        """Give a forked child a fresh lock and fresh random bits (never its parent's)."""
        self._lock = threading.Lock()
        self._pool = iter(())

    def _draw(self) -> int:
        """Return the next 64 random bits of the pool, refilled when it runs out."""
        try:
            return next(self._pool)
        except StopIteration:
            # Two threads may both refill: each takes the first draw of its own block.
            pool = self._pool = iter(_UNPACK_POOL(self._entropy(8 * _POOL_DRAWS)))
            return next(pool)

    def _advance(self, now_ms: int) -> tuple[_Millisecond, int, int]:
        """Return (millisecond, counter, random bits), under the lock.

        Taken for a millisecond later than the current one, a counter that ran out, and for
        every id without the GIL.
        """
        with self._lock:
            state = self._state
            if now_ms <= state[1]:  # this millisecond, or the clock is behind the last one
                counter = next(state[2])
                if counter <= _MAX_COUNTER:
                    return state, counter, self._draw()
                now_ms = state[1] + 1  # the counter ran out: carry on in the next millisecond
            if now_ms >= 1 << 48:
                raise OverflowError(
                    "the UUIDv7 48-bit millisecond timestamp overflows in year 10889"
                )
            counter = self._draw() >> _SEED_SHIFT & _SEED_MASK
            prefix = "%08x-%04x-7" % (now_ms >> 16, now_ms & 0xFFFF)  # noqa: UP031 - as in text()
            state = (now_ms if _GIL else -1, now_ms, itertools.count(counter + 1), prefix)
            self._state = state  # one tuple, replaced whole: a thread sees all of it or none
            return state, counter, self._draw()

    def _next(self) -> tuple[_Millisecond, int, int]:
        """Return the next (millisecond, counter, random bits); see :meth:`text` for the steps."""
        clock_ms = self._clock_ms
        now_ms = time_ns() // 1_000_000 if clock_ms is None else clock_ms()
        state = self._state
        if now_ms > state[0] or (counter := next(state[2])) > _MAX_COUNTER:
            return self._advance(now_ms)
        return state, counter, self._draw()

    def __call__(self) -> UUID:
        state, counter, rand = self._next()
        return UUID(
            int=state[1] << 80 | _VERSION_7 | counter << 64 | _VARIANT_RFC | rand >> _RAND_B_SHIFT
        )

    def text(self) -> str:
        """Return the next id in its canonical 36-character text form, without a ``UUID``."""
        # The steps of _next, inlined: event ids are made on the publishing hot path.
        clock_ms = self._clock_ms
        now_ms = time_ns() // 1_000_000 if clock_ms is None else clock_ms()
        state = self._state
        if now_ms > state[0] or (counter := next(state[2])) > _MAX_COUNTER:
            state, counter, rand = self._advance(now_ms)
        else:
            try:
                rand = next(self._pool)
            except StopIteration:
                rand = self._draw()
        rand = rand >> _RAND_B_SHIFT | _VARIANT_RFC
        return "%s%03x-%04x-%012x" % (  # noqa: UP031 - the fastest spelling
            state[3],
            counter,
            rand >> 48,
            rand & 0xFFFF_FFFF_FFFF,
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
