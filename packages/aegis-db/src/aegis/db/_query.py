"""Filters and sort orders built from field names a client may send, never from raw SQL."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, true
from sqlalchemy.orm import InstrumentedAttribute, Mapper
from sqlalchemy.sql.elements import UnaryExpression

from aegis.core.errors import InvalidInputError
from aegis.core.models import SortDirection, SortField

_MAX_IN_VALUES = 1000
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}

OPERATORS = frozenset(
    {
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "in",
        "not_in",
        "like",
        "ilike",
        "contains",
        "icontains",
        "startswith",
        "is_null",
    }
)


@dataclass(frozen=True)
class Filter:
    """One condition: ``field`` (a column, or ``relationship.column``), an operator, a value.

    Operators: ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``in``, ``not_in``, ``like``,
    ``ilike`` (the value is a pattern), ``contains``, ``icontains``, ``startswith`` (the value
    is literal text: ``%`` and ``_`` are escaped), ``is_null`` (value ``True``/``False``).

    Example:
        >>> Filter("age", "ge", 18), Filter("author.name", "icontains", "kim")
    """

    field: str
    op: str = "eq"
    value: Any = None


def filters_from_kwargs(kwargs: Mapping[str, Any]) -> list[Filter]:
    """Read Django-style keywords: ``age__ge=18``, ``author__name__ilike="k%"``, ``id__in=[..]``."""
    found = []
    for key, value in kwargs.items():
        parts = key.split("__")
        op = parts.pop() if len(parts) > 1 and parts[-1] in OPERATORS else "eq"
        found.append(Filter(".".join(parts), op, value))
    return found


def filters_from_object(filters: BaseModel | Iterable[Filter] | None) -> list[Filter]:
    """Read a typed filter object, or :class:`Filter` values.

    A pydantic model's *set* fields use the keyword syntax: ``name__icontains: str | None``.
    """
    if filters is None:
        return []
    if isinstance(filters, BaseModel):
        return filters_from_kwargs(filters.model_dump(exclude_unset=True))
    return list(filters)


def _column(mapper: Mapper[Any], name: str, path: str) -> InstrumentedAttribute[Any]:
    if name not in mapper.column_attrs:
        known = ", ".join(sorted(mapper.column_attrs.keys()))
        raise InvalidInputError(
            f"unknown field '{path}'; known fields: {known}",
            field=path,
            rule="unknown_field",
        )
    attribute: InstrumentedAttribute[Any] = getattr(mapper.class_, name)
    return attribute


def _condition(column: InstrumentedAttribute[Any], item: Filter) -> ColumnElement[bool]:
    op, value = item.op, item.value
    if op in {"in", "not_in"}:
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise InvalidInputError(
                f"'{item.field}__{op}' needs a list of values", field=item.field, rule="type"
            )
        values = list(value)
        if len(values) > _MAX_IN_VALUES:
            raise InvalidInputError(
                f"'{item.field}__{op}' takes at most {_MAX_IN_VALUES} values",
                field=item.field,
                rule="max_items",
            )
        return column.in_(values) if op == "in" else column.not_in(values)
    if op == "is_null":
        if not isinstance(value, bool):
            raise InvalidInputError(
                f"'{item.field}__is_null' needs true or false", field=item.field, rule="type"
            )
        return column.is_(None) if value else column.is_not(None)
    if op in {"like", "ilike", "contains", "icontains", "startswith"}:
        if not isinstance(value, str):
            raise InvalidInputError(
                f"'{item.field}__{op}' needs text", field=item.field, rule="type"
            )
        if op == "like":
            return column.like(value)
        if op == "ilike":
            return column.ilike(value)
        if op == "contains":
            return column.contains(value, autoescape=True)
        if op == "icontains":
            return column.icontains(value, autoescape=True)
        return column.startswith(value, autoescape=True)
    compare = _COMPARISONS.get(op)
    if compare is None:
        known = ", ".join(sorted(OPERATORS))
        raise InvalidInputError(
            f"unknown operator '{op}' for '{item.field}'; use one of {known}",
            field=item.field,
            rule="unknown_operator",
        )
    condition: ColumnElement[bool] = compare(column, value)
    return condition


def build_where(
    mapper: Mapper[Any], filters: Sequence[Filter], allowed: frozenset[str] | None
) -> ColumnElement[bool]:
    """AND every filter into one condition; unknown or disallowed fields raise.

    Raises:
        InvalidInputError: unknown field (rule ``unknown_field``), a field not in ``allowed``
            (``field_not_allowed``), unknown operator or a value of the wrong shape.
    """
    conditions: list[ColumnElement[bool]] = []
    for item in filters:
        if allowed is not None and item.field not in allowed:
            raise InvalidInputError(
                f"cannot filter by '{item.field}'; allowed: {', '.join(sorted(allowed))}",
                field=item.field,
                rule="field_not_allowed",
            )
        name, dot, rest = item.field.partition(".")
        if not dot:
            conditions.append(_condition(_column(mapper, name, item.field), item))
            continue
        relationship = mapper.relationships.get(name)
        if relationship is None or "." in rest:
            raise InvalidInputError(
                f"unknown field '{item.field}': '{name}' is not a relationship of "
                f"{mapper.class_.__name__}, or the path is deeper than one relationship",
                field=item.field,
                rule="unknown_field",
            )
        inner = _condition(_column(relationship.mapper, rest, item.field), item)
        attribute = getattr(mapper.class_, name)
        conditions.append(attribute.any(inner) if relationship.uselist else attribute.has(inner))
    if not conditions:
        return true()
    return and_(*conditions) if len(conditions) > 1 else conditions[0]


def parse_sort(sort: str | Sequence[SortField | str] | None) -> list[SortField]:
    """Read ``"-created_at,name"``, a list of such terms, or :class:`SortField` values."""
    if sort is None:
        return []
    terms = sort.split(",") if isinstance(sort, str) else list(sort)
    fields = []
    for term in terms:
        if isinstance(term, SortField):
            fields.append(term)
            continue
        text = term.strip()
        if text.startswith("-"):
            fields.append(SortField(text[1:].strip(), SortDirection.DESC))
        elif text:
            fields.append(SortField(text.removeprefix("+").strip()))
    return fields


def build_order(
    mapper: Mapper[Any], sort: Sequence[SortField], allowed: frozenset[str] | None
) -> tuple[list[InstrumentedAttribute[Any]], list[SortField]]:
    """Resolve sort fields to columns and append the primary key, so the order is total.

    Raises:
        InvalidInputError: field ``sort``, rule ``sort_field_not_allowed`` or ``unknown_field``.
    """
    primary_keys = [column.key for column in mapper.primary_key if column.key is not None]
    complete = list(sort)
    named = {item.field for item in complete}
    complete += [SortField(key) for key in primary_keys if key not in named]
    columns = []
    for item in complete:
        if allowed is not None and item.field not in allowed and item.field not in primary_keys:
            raise InvalidInputError(
                f"cannot sort by '{item.field}'; sortable fields: {', '.join(sorted(allowed))}",
                field="sort",
                rule="sort_field_not_allowed",
            )
        if item.field not in mapper.column_attrs:
            raise InvalidInputError(
                f"cannot sort by '{item.field}': not a column of {mapper.class_.__name__}",
                field="sort",
                rule="unknown_field",
            )
        columns.append(getattr(mapper.class_, item.field))
    return columns, complete


def order_clauses(
    columns: Sequence[InstrumentedAttribute[Any]], sort: Sequence[SortField], *, reverse: bool
) -> list[UnaryExpression[Any]]:
    """``ORDER BY`` terms for resolved columns; ``reverse`` flips every direction."""
    clauses = []
    for column, item in zip(columns, sort, strict=True):
        descending = (item.direction is SortDirection.DESC) != reverse
        clauses.append(column.desc() if descending else column.asc())
    return clauses
