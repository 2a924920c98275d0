"""Which columns a violated constraint covers, as PostgreSQL or SQLite report it (never values).

PostgreSQL names a unique key's columns only in the message detail (``Key (email)=(...)``, the
values included), asyncpg and psycopg each expose it their own way, and an expression index or a
user who may not read the columns gets no columns at all; then the constraint is looked up in
the table metadata of the statement that failed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql import visitors
from sqlalchemy.sql.schema import ColumnCollectionConstraint

if TYPE_CHECKING:
    from sqlalchemy.engine import ExceptionContext

# Server error fields: (our key, asyncpg's attribute, psycopg's diag attribute).
_DIAGNOSTICS = [
    ("constraint", "constraint_name", "constraint_name"),
    ("table", "table_name", "table_name"),
    ("column", "column_name", "column_name"),
    ("detail", "detail", "message_detail"),
]
# PostgreSQL's unique-violation detail: "Key (tenant_id, email)=(7, kim@example.com) already
# exists." Only the part before ")=(" is read: the values must never reach an error.
_KEY_DETAIL = re.compile(r"Key \((?P<columns>[^()]+?)\)=\(")
_PLAIN_COLUMN = re.compile(r"[^\s(),:\"]+")
_SQLITE_INDEX = re.compile(r"index '(?P<name>[^']+)'")
_METADATA_ATTRIBUTE = "aegis_metadata"


def driver_error(exc: BaseException) -> BaseException | None:
    """The DBAPI (or emulated DBAPI) exception under a SQLAlchemy error."""
    return exc.orig if isinstance(exc, sa_exc.DBAPIError) else None


def _diagnostics(exc: BaseException) -> dict[str, str]:
    """The server's error fields: asyncpg's attributes, or psycopg's ``diag``."""
    orig = driver_error(exc)
    server_error = getattr(orig, "orig", None) or orig  # asyncpg's error under the emulation
    diag = getattr(server_error, "diag", None)  # psycopg
    found: dict[str, str] = {}
    for key, attribute, diag_attribute in _DIAGNOSTICS:
        source, name = (diag, diag_attribute) if diag is not None else (server_error, attribute)
        value = getattr(source, name, None)
        if isinstance(value, str) and value:
            found[key] = value
    return found


def _key_columns(detail: str | None) -> list[str] | None:
    """The columns of ``Key (a, b)=(...) already exists.``; never the values after the ``=``.

    ``None`` when the key is an expression (``lower(email::text)``) rather than columns.
    """
    match = _KEY_DETAIL.match(detail or "")
    if match is None:
        return None
    names = [_unquoted(part.strip()) for part in match["columns"].split(",")]
    return names if all(_PLAIN_COLUMN.fullmatch(name) for name in names) else None


def _unquoted(name: str) -> str:
    if len(name) > 1 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def remember_tables(context: ExceptionContext) -> None:
    """Note on the SQLAlchemy error which table metadata the failed statement wrote to.

    Installed on every engine as a ``handle_error`` hook: when the server's message does not
    list a violated constraint's columns (an expression index, a user who may not read the
    columns), :func:`translate_error` looks the constraint up in that metadata instead.
    """
    compiled = getattr(context.execution_context, "compiled", None)
    table = getattr(getattr(compiled, "statement", None), "table", None)
    if isinstance(table, Table) and context.sqlalchemy_exception is not None:
        setattr(context.sqlalchemy_exception, _METADATA_ATTRIBUTE, table.metadata)


def _metadata_columns(exc: BaseException, table_name: str | None, name: str) -> list[str]:
    """The columns of the constraint or unique index ``name``, from the table metadata."""
    metadata = getattr(exc, _METADATA_ATTRIBUTE, None)
    if not isinstance(metadata, MetaData):
        return []
    tables = [
        table
        for table in metadata.tables.values()
        if table_name is None or table.name == table_name
    ]
    for table in tables:
        for index in table.indexes:
            if index.name is not None and str(index.name) == name:
                referenced = [
                    element.name
                    for expression in index.expressions
                    for element in visitors.iterate(expression)  # type: ignore[arg-type]
                    if isinstance(element, Column)
                ]
                return list(dict.fromkeys(referenced))
        for constraint in table.constraints:
            if (
                isinstance(constraint, ColumnCollectionConstraint)
                and constraint.name is not None
                and str(constraint.name) == name
            ):
                return [column.name for column in constraint.columns]
    return []


def postgres_fields(exc: BaseException) -> dict[str, Any]:
    """Constraint, table and column names the server reports (never the key values).

    ``fields`` come from the column the server names, else the key in its detail
    (``Key (email)=(...)``, the part before the values), else the constraint's columns in the
    table metadata the statement used.
    """
    diagnostics = _diagnostics(exc)
    found: dict[str, Any] = {
        key: diagnostics[key] for key in ("constraint", "table") if key in diagnostics
    }
    columns = _key_columns(diagnostics.get("detail"))
    if "column" in diagnostics:  # a NOT NULL violation names its column
        columns = [diagnostics["column"]]
    if not columns and "constraint" in diagnostics:
        columns = _metadata_columns(exc, diagnostics.get("table"), diagnostics["constraint"])
    if columns:
        found["fields"] = columns
    return found


def sqlite_fields(exc: BaseException) -> dict[str, Any]:
    """Columns SQLite lists after a constraint failure (``UNIQUE constraint failed: t.a, t.b``).

    The error is already classified by its result code; this only names the columns, which
    SQLite reports nowhere else. A unique expression index is named instead
    (``UNIQUE constraint failed: index 'ix_name'``): its columns come from the table metadata.
    """
    orig = driver_error(exc)
    _, colon, columns = str(orig).partition(": ")
    if not colon:
        return {}
    index = _SQLITE_INDEX.fullmatch(columns.strip())
    if index is not None:
        named = _metadata_columns(exc, None, index["name"])
        return {"constraint": index["name"], "fields": named} if named else {}
    names = [part.strip().rpartition(".")[2] for part in columns.split(",")]
    return {"fields": [name for name in names if name.isidentifier()]}
