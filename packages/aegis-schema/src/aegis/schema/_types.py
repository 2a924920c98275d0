"""The portable column types: parsing, SQLAlchemy types, and how two types relate.

A registry names types in one portable spelling that every supported database can hold:
``uuid``, ``string``/``string(n)``, ``text``, ``integer``, ``bigint``, ``numeric(p,s)``,
``boolean``, ``timestamp``, ``timestamp(tz)``, ``date``, ``json`` and ``enum(a, b, ...)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

_TYPE = re.compile(r"^\s*([a-z]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$", re.IGNORECASE)
_ENUM_VALUE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_SIMPLE_KINDS = frozenset({"uuid", "text", "integer", "bigint", "boolean", "date", "json"})
# Decimal digits the integer kinds need, to decide whether numeric(p, s) can hold them.
_INTEGER_DIGITS = {"integer": 10, "bigint": 19}

PORTABLE_TYPES = (
    "uuid",
    "string",
    "string(n)",
    "text",
    "integer",
    "bigint",
    "numeric(p,s)",
    "boolean",
    "timestamp",
    "timestamp(tz)",
    "date",
    "json",
    "enum(a,b,...)",
)
"""Every portable type spelling a column may use (``n``, ``p``, ``s`` are integers)."""


class TypeChange(StrEnum):
    """How a column's type changes: the values every old value fits into, or not."""

    SAME = "same"
    WIDENING = "widening"
    NARROWING = "narrowing"
    CHANGE = "change"


@dataclass(frozen=True)
class ColumnType:
    """A parsed portable type (see :data:`PORTABLE_TYPES`).

    Example:
        >>> ColumnType.parse("numeric(10, 2)")
        ColumnType(kind='numeric', length=None, precision=10, scale=2, timezone=False, values=())
    """

    kind: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    timezone: bool = False
    values: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ColumnType:
        """Parse a portable type spelling.

        Raises:
            ValueError: the spelling is not one of :data:`PORTABLE_TYPES`; the message says which.
        """
        match = _TYPE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a portable type; use one of {_types_list()}")
        kind, argument = match.group(1).lower(), match.group(2)
        if argument is not None and kind != "enum":
            argument = argument.lower()
        if kind in _SIMPLE_KINDS and argument is None:
            return cls(kind)
        if kind == "string":
            return cls(kind, length=None if argument is None else _positive(text, argument))
        if kind == "timestamp" and argument in (None, "tz"):
            return cls(kind, timezone=argument == "tz")
        if kind == "numeric" and argument is not None:
            parts = [part.strip() for part in argument.split(",")]
            if len(parts) == 2:  # precision and scale
                precision, scale = _positive(text, parts[0]), _natural(text, parts[1])
                if scale <= precision:
                    return cls(kind, precision=precision, scale=scale)
        if kind == "enum" and argument:
            values = tuple(value.strip() for value in argument.split(","))
            if all(_ENUM_VALUE.match(value) for value in values) and len(set(values)) == len(
                values
            ):
                return cls(kind, values=values)
        raise ValueError(f"{text!r} is not a portable type; use one of {_types_list()}")

    def __str__(self) -> str:
        if self.kind == "string" and self.length is not None:
            return f"string({self.length})"
        if self.kind == "numeric":
            return f"numeric({self.precision},{self.scale})"
        if self.kind == "timestamp" and self.timezone:
            return "timestamp(tz)"
        if self.kind == "enum":
            return f"enum({','.join(self.values)})"
        return self.kind

    def to_sqlalchemy(self) -> sa.types.TypeEngine[Any]:
        """Return the SQLAlchemy type that stores this type on every supported dialect.

        Enums are stored as ``VARCHAR`` sized to the longest value (no native enum type), so
        adding a value never needs ``ALTER TYPE`` and SQLite behaves like PostgreSQL.
        """
        simple: dict[str, sa.types.TypeEngine[Any]] = {
            "uuid": sa.Uuid(),
            "text": sa.Text(),
            "integer": sa.Integer(),
            "bigint": sa.BigInteger(),
            "boolean": sa.Boolean(),
            "date": sa.Date(),
            "json": sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
        }
        if self.kind in simple:
            return simple[self.kind]
        if self.kind == "string":
            return sa.String(self.length)
        if self.kind == "numeric":
            return sa.Numeric(self.precision, self.scale)
        if self.kind == "timestamp":
            return sa.DateTime(timezone=self.timezone)
        return sa.String(max(len(value) for value in self.values))

    def change_to(self, new: ColumnType) -> TypeChange:
        """Say whether every value of this type fits ``new`` (widening) or may not (narrowing).

        A change between unrelated kinds, or between ``timestamp`` and ``timestamp(tz)`` (the
        values are reinterpreted in a time zone), is a :attr:`TypeChange.CHANGE`.
        """
        if self == new:
            return TypeChange.SAME
        pair = (self.kind, new.kind)
        if pair in {("string", "text"), ("integer", "bigint"), ("enum", "text")}:
            return TypeChange.WIDENING
        if pair in {("text", "string"), ("bigint", "integer")}:
            return TypeChange.NARROWING
        if pair == ("string", "string"):
            return _compare_sizes(self.length, new.length)
        if pair == ("enum", "enum"):
            if set(self.values) <= set(new.values):
                return TypeChange.WIDENING
            return TypeChange.NARROWING if set(new.values) < set(self.values) else TypeChange.CHANGE
        if pair == ("enum", "string"):
            longest = max(len(value) for value in self.values)
            fits = new.length is None or new.length >= longest
            return TypeChange.WIDENING if fits else TypeChange.NARROWING
        if pair == ("numeric", "numeric"):
            return _compare_numeric(self, new)
        if self.kind in _INTEGER_DIGITS and new.kind == "numeric":
            digits = (new.precision or 0) - (new.scale or 0)
            return (
                TypeChange.WIDENING
                if digits >= _INTEGER_DIGITS[self.kind]
                else TypeChange.NARROWING
            )
        return TypeChange.CHANGE

    def can_hold(self, other: ColumnType) -> bool:
        """Return whether a column of this type can hold every value of ``other``."""
        return other.change_to(self) in (TypeChange.SAME, TypeChange.WIDENING)


def _compare_sizes(old: int | None, new: int | None) -> TypeChange:
    if new is None or (old is not None and new > old):
        return TypeChange.WIDENING
    return TypeChange.NARROWING


def _compare_numeric(old: ColumnType, new: ColumnType) -> TypeChange:
    old_p, old_s, new_p, new_s = (
        old.precision or 0,
        old.scale or 0,
        new.precision or 0,
        new.scale or 0,
    )
    if new_s >= old_s and new_p - new_s >= old_p - old_s:
        return TypeChange.WIDENING
    return TypeChange.NARROWING


def _positive(text: str, argument: str) -> int:
    value = _natural(text, argument)
    if value == 0:
        raise ValueError(f"{text!r}: sizes must be positive")
    return value


def _natural(text: str, argument: str) -> int:
    if not argument.isdigit():
        raise ValueError(f"{text!r}: {argument!r} is not a whole number")
    return int(argument)


def _types_list() -> str:
    return ", ".join(PORTABLE_TYPES)
