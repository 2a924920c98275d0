"""What the Markdown and HTML pages say about a table's columns and indexes, in one place.

The renderers only format and escape these facts; what a column's key is, or how an index is
summed up, is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aegis.schema._models import SchemaColumn, SchemaDefinition
from aegis.schema._validation import all_indexes

COLUMN_HEADINGS: Final = ("column", "type", "null", "default", "key", "description")
"""The headings of a table's column list, in the order of :class:`ColumnFacts`' fields."""


@dataclass(frozen=True)
class ColumnFacts:
    """One row of a table's column list, as plain text (the renderer escapes it)."""

    name: str
    type: str
    null: str
    """``yes`` or ``no``."""
    default: str | None
    """The default value's text; None without a default."""
    key: str
    """``PK``, ``unique``, ``index`` or empty: the strongest the column has."""
    description: str


@dataclass(frozen=True)
class IndexFacts:
    """One index of a table: its name and ``unique (a, b)`` or ``(a, b)``."""

    name: str
    summary: str


def column_key(column: SchemaColumn) -> str:
    """``PK``, ``unique``, ``index`` or empty: the strongest key the column has."""
    if column.primary_key:
        return "PK"
    if column.unique:
        return "unique"
    return "index" if column.index else ""


def column_facts(schema: SchemaDefinition) -> list[ColumnFacts]:
    """The rows of ``schema``'s column list, in the columns' order."""
    return [
        ColumnFacts(
            name=column.name,
            type=column.type,
            null="yes" if column.nullable else "no",
            default=None if column.default is None else str(column.default),
            key=column_key(column),
            description=column.description,
        )
        for column in schema.columns
    ]


def index_facts(schema: SchemaDefinition) -> list[IndexFacts]:
    """Every index of ``schema``: the declared ones, then those its columns ask for."""
    return [
        IndexFacts(
            name=index.name,
            summary=("unique " if index.unique else "") + f"({', '.join(index.columns)})",
        )
        for index in all_indexes(schema)
    ]
