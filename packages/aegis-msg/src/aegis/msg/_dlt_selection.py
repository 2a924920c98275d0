"""Which records of a dead-letter topic to list or replay: positions, offsets, times, event ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from aegis.core.errors import InvalidInputError
from aegis.core.utils.datetime import format_datetime, parse_datetime, utcnow
from aegis.msg._dlt import DeadLetter

_POSITION: Final = re.compile(r"(\d+):(\d+)(?:-(\d*))?")
_RELATIVE: Final = re.compile(r"(\d+)([smhd])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _iso(value: datetime) -> str:
    return format_datetime(value, timespec="milliseconds")


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``first`` to ``last`` (inclusive; ``None``: to the end) of one partition."""

    partition: int
    first: int
    last: int | None

    def __contains__(self, letter: object) -> bool:
        if not isinstance(letter, DeadLetter) or letter.partition != self.partition:
            return False
        return letter.offset >= self.first and (self.last is None or letter.offset <= self.last)


def parse_position(text: str) -> OffsetRange:
    """``"0:42"`` (one record), ``"0:40-45"`` (inclusive) or ``"0:40-"`` (to the end).

    Raises:
        InvalidInputError: ``text`` is none of these, or a range ends before it starts.
    """
    match = _POSITION.fullmatch(text.strip())
    if match is None:
        raise InvalidInputError(
            f"{text!r} is not a record position: expected PARTITION:OFFSET (0:42), "
            "a range PARTITION:FIRST-LAST (0:40-45) or PARTITION:FIRST- (0:40-)",
            field="position",
            rule="format",
        )
    partition, first, last = match.groups()
    if last is None:
        return OffsetRange(int(partition), int(first), int(first))
    if last and int(last) < int(first):
        raise InvalidInputError(
            f"range {text!r} ends before it starts", field="position", rule="range"
        )
    return OffsetRange(int(partition), int(first), int(last) if last else None)


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it has no offset) or an age: ``90s``, ``30m``, ``2h``, ``1d``.

    Raises:
        InvalidInputError: ``text`` is neither.
    """
    relative = _RELATIVE.fullmatch(text.strip())
    if relative is not None:
        amount, unit = relative.groups()
        return (now or utcnow()) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        return parse_datetime(text, default_tz=UTC, field="time")
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"{text!r} is not a time: expected ISO 8601 (2026-01-02T03:04:05Z; UTC without an "
            "offset) or an age such as 90s, 30m, 2h, 1d",
            field="time",
            rule="format",
        ) from exc


@dataclass(frozen=True)
class DeadLetterSelection:
    """Which records of a dead-letter topic to list or replay.

    Criteria of different kinds must all hold; several positions, or several event ids, are
    alternatives. The empty selection takes every record.

    Args:
        positions: record positions and offset ranges (:func:`parse_position`).
        from_offset: the first offset, in every partition.
        to_offset: the last offset (inclusive), in every partition.
        since: records dead-lettered at or after this time.
        until: records dead-lettered before this time.
        event_ids: records of these CloudEvents ids.
        limit: at most this many records (in partition, then offset order).

    Raises:
        InvalidInputError: a bound is negative, or a lower bound lies above its upper bound.
    """

    positions: tuple[OffsetRange, ...] = ()
    from_offset: int | None = None
    to_offset: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    event_ids: frozenset[str] = frozenset()
    limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("from_offset", "to_offset"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidInputError(f"{name} must not be negative", field=name, rule="min")
        if self.limit is not None and self.limit < 1:
            raise InvalidInputError("limit must be at least 1", field="limit", rule="min")
        if (
            self.from_offset is not None
            and self.to_offset is not None
            and self.from_offset > self.to_offset
        ):
            raise InvalidInputError(
                f"from_offset {self.from_offset} is above to_offset {self.to_offset}",
                field="from_offset",
                rule="range",
            )
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidInputError(
                f"since ({_iso(self.since)}) is not before until ({_iso(self.until)})",
                field="since",
                rule="range",
            )

    @property
    def is_everything(self) -> bool:
        """Whether nothing narrows the selection (a replay asks for ``--all`` then)."""
        return self == DeadLetterSelection(limit=self.limit)

    def bounds(self, partition: int) -> tuple[int, int | None] | None:
        """First and last offset worth reading in ``partition``; ``None``: none of it."""
        first, last = 0, None
        if self.positions:
            ranges = [r for r in self.positions if r.partition == partition]
            if not ranges:
                return None
            first = min(r.first for r in ranges)
            ends = [r.last for r in ranges]
            last = None if None in ends else max(end for end in ends if end is not None)
        if self.from_offset is not None:
            first = max(first, self.from_offset)
        if self.to_offset is not None:
            last = self.to_offset if last is None else min(last, self.to_offset)
        if last is not None and first > last:
            return None
        return first, last

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` is selected (``limit`` aside)."""
        bounds = self.bounds(letter.partition)
        if bounds is None or letter.offset < bounds[0]:
            return False
        if bounds[1] is not None and letter.offset > bounds[1]:
            return False
        if self.positions and not any(letter in r for r in self.positions):
            return False
        if self.event_ids and letter.event_id not in self.event_ids:
            return False
        return self._in_time(letter.timestamp)

    def _in_time(self, moment: datetime | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if moment is None:
            return False
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )
