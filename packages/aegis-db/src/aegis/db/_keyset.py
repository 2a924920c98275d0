"""Keyset (seek) pagination: signed cursors carrying the last row's sort keys.

The cost of a page does not grow with its depth: the next page is ``WHERE (keys) > (last
keys) ORDER BY keys LIMIT n``, an index range scan, where ``OFFSET`` reads and discards every
row before the page.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, or_, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from aegis.core.errors import InvalidInputError
from aegis.core.models import SortDirection, SortField
from aegis.core.utils.pagination import decode_cursor, encode_cursor


def check_not_nullable(columns: Sequence[InstrumentedAttribute[Any]]) -> None:
    """Refuse nullable sort columns: NULLs have no place in a keyset comparison.

    Raises:
        InvalidInputError: field ``sort``, rule ``nullable_sort_field``.
    """
    for column in columns:
        if any(getattr(part, "nullable", False) for part in column.property.columns):
            raise InvalidInputError(
                f"cannot page by cursor sorted on '{column.key}': the column allows NULL; "
                "sort by a NOT NULL column or use offset pagination",
                field="sort",
                rule="nullable_sort_field",
            )


def _dump(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


def _load(column: InstrumentedAttribute[Any], raw: Any) -> Any:
    python_type = column.type.python_type
    # JSON gives int, float, str and bool: each is its own column's key, and a bool is an int
    # to isinstance, but never an int column's key.
    if raw is None or type(raw) is python_type:
        return raw
    if isinstance(raw, python_type) and not isinstance(raw, bool):
        return raw
    if python_type is datetime:
        return datetime.fromisoformat(raw)
    if python_type is date:
        return date.fromisoformat(raw)
    if python_type in {uuid.UUID, Decimal}:
        return python_type(raw)
    raise TypeError(f"{type(raw).__name__} for {python_type.__name__}")


def encode_keys(
    row: Any,
    columns: Sequence[InstrumentedAttribute[Any]],
    spec: str,
    secret: bytes,
    *,
    backward: bool,
) -> str:
    """Sign the sort keys of ``row`` into a cursor for the page after (or before) it."""
    values = [_dump(getattr(row, column.key)) for column in columns]
    return encode_cursor({"s": spec, "v": values, "b": backward}, secret)


def decode_keys(
    cursor: str, columns: Sequence[InstrumentedAttribute[Any]], spec: str, secret: bytes
) -> tuple[list[Any], bool]:
    """Verify ``cursor`` and return its sort keys and whether it points backward.

    Raises:
        InvalidInputError: field ``cursor``; a changed or foreign cursor (``signature``),
            garbled text (``format``), or one issued for another sort order or listing
            (``sort_mismatch``).
    """
    payload = decode_cursor(cursor, secret)
    values = payload.get("v")
    if payload.get("s") != spec or not isinstance(values, list) or len(values) != len(columns):
        raise InvalidInputError(
            "cursor was issued for another sort order or listing; start from the first page",
            field="cursor",
            rule="sort_mismatch",
        )
    try:
        keys = [_load(column, raw) for column, raw in zip(columns, values, strict=True)]
    except (TypeError, ValueError) as exc:  # signed by us: only a changed schema gets here
        raise InvalidInputError(
            "cursor keys do not fit the sort columns", field="cursor", rule="format"
        ) from exc
    return keys, bool(payload.get("b"))


def after(
    columns: Sequence[InstrumentedAttribute[Any]],
    sort: Sequence[SortField],
    keys: Sequence[Any],
    *,
    backward: bool,
) -> ColumnElement[bool]:
    """Rows strictly after ``keys`` in the sort order (strictly before when ``backward``).

    One direction for all columns becomes a row-value comparison ``(a, b) > (:a, :b)``, which
    PostgreSQL answers from a composite index; mixed directions expand to
    ``a > :a OR (a = :a AND b < :b) ...``.
    """
    ascending = [(item.direction is SortDirection.ASC) != backward for item in sort]
    # Typed bound parameters: SQLAlchemy refuses `column > True` with a bare bool.
    bound = [bindparam(None, k, type_=c.type) for c, k in zip(columns, keys, strict=True)]
    if all(ascending):
        return tuple_(*columns) > tuple_(*bound)
    if not any(ascending):
        return tuple_(*columns) < tuple_(*bound)
    branches = []
    for index, column in enumerate(columns):
        equal = [columns[i] == bound[i] for i in range(index)]
        beyond = column > bound[index] if ascending[index] else column < bound[index]
        branches.append(and_(*equal, beyond))
    return or_(*branches)
