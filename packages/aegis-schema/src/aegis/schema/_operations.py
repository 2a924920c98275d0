"""Schema operations: serialisable DDL steps, each with its inverse, emitted through Alembic.

Every operation works on one table of one service. Column and foreign-key changes run inside
Alembic's ``batch_alter_table`` with the table's known shape as ``copy_from``: PostgreSQL gets
plain ``ALTER TABLE`` statements, SQLite gets the copy-and-rename dance it needs, and neither
reflects the live table (so ``--dry-run`` works offline too).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from alembic.operations import Operations
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from aegis.schema._models import SchemaColumn, SchemaDefinition, SchemaIndex, SchemaReference
from aegis.schema._validation import all_indexes

_CURRENT_TIMESTAMP = "CURRENT_TIMESTAMP"


def foreign_keys(schema: SchemaDefinition) -> list[SchemaReference]:
    """The references that become real foreign keys: those inside the table's own service."""
    return [ref for ref in schema.references if ref.target_service == schema.service]


def foreign_key_name(table: str, reference: SchemaReference) -> str:
    """The constraint name of a foreign key: ``fk_<table>_<column>``."""
    return f"fk_{table}_{reference.column}"


@dataclass(frozen=True)
class TableState:
    """A table's shape between two operations, enough to build it as SQLAlchemy metadata."""

    name: str
    columns: tuple[SchemaColumn, ...]
    indexes: tuple[SchemaIndex, ...] = ()
    foreign_keys: tuple[tuple[str, SchemaReference], ...] = ()

    @classmethod
    def of(cls, schema: SchemaDefinition) -> TableState:
        """The state of a table as ``schema`` defines it."""
        keys = tuple((foreign_key_name(schema.table, ref), ref) for ref in foreign_keys(schema))
        return cls(schema.table, schema.columns, tuple(all_indexes(schema)), keys)

    def to_table(self) -> sa.Table:
        """Build the table (with stub tables for the foreign keys' targets) in fresh metadata.

        A foreign key's DDL names the target column but not its type, so the stubs need none.
        """
        metadata = sa.MetaData()
        for _, reference in self.foreign_keys:
            if (
                reference.target_table != self.name
                and reference.target_table not in metadata.tables
            ):
                sa.Table(
                    reference.target_table, metadata, sa.Column(reference.target_column, sa.Integer)
                )
        return sa.Table(
            self.name,
            metadata,
            *to_sa_columns(self.columns),
            *(_constraint(name, reference) for name, reference in self.foreign_keys),
            *(sa.Index(index.name, *index.columns, unique=index.unique) for index in self.indexes),
        )


class _DatabaseNow(FunctionElement[datetime]):
    """The database's current time as the default of a timestamp column."""

    type = sa.DateTime()
    inherit_cache = True


@compiles(_DatabaseNow)
def _database_now(element: _DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    return _CURRENT_TIMESTAMP


@compiles(_DatabaseNow, "sqlite")
def _database_now_sqlite(element: _DatabaseNow, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's CURRENT_TIMESTAMP is whole seconds ("2026-01-01 12:00:00"), while SQLAlchemy binds
    # and reads "2026-01-01 12:00:00.123000": rows made in one second would tie and compare
    # before bound values of the same instant. Keep the milliseconds, in SQLAlchemy's layout.
    return "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


def _server_default(column: SchemaColumn) -> Any:
    value = column.default
    if value is None:
        return None
    if isinstance(value, bool):
        return sa.true() if value else sa.false()
    if isinstance(value, str):
        if value.upper() != _CURRENT_TIMESTAMP:
            return value
        timestamp = column.column_type.kind == "timestamp"
        return _DatabaseNow() if timestamp else sa.text(_CURRENT_TIMESTAMP)
    return sa.text(repr(value))


def to_sa_column(column: SchemaColumn, *, numbered: bool = False) -> sa.Column[Any]:
    """The SQLAlchemy column for ``column`` (indexes and uniqueness are separate indexes).

    ``numbered``: the column is the table's only key and an integer kind, so the database
    numbers new rows (``SERIAL``/``BIGSERIAL`` on PostgreSQL, the rowid on SQLite).
    """
    sql_type = column.column_type.to_sqlalchemy()
    if numbered:
        # SQLite numbers rows only through a key declared INTEGER, its 64-bit rowid.
        sql_type = sql_type.with_variant(sa.Integer(), "sqlite")
    return sa.Column(
        column.name,
        sql_type,
        primary_key=column.primary_key,
        nullable=column.nullable,
        server_default=_server_default(column),
        comment=column.description or None,
    )


def to_sa_columns(columns: tuple[SchemaColumn, ...]) -> list[sa.Column[Any]]:
    """The SQLAlchemy columns of a table; a lone ``integer``/``bigint`` key numbers the rows."""
    keys = [column for column in columns if column.primary_key]
    numbered = len(keys) == 1 and keys[0].column_type.kind in {"integer", "bigint"}
    return [to_sa_column(column, numbered=numbered and column.primary_key) for column in columns]


def _constraint(name: str, reference: SchemaReference) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [reference.column],
        [f"{reference.target_table}.{reference.target_column}"],
        name=name,
        ondelete=None if reference.on_delete == "NO ACTION" else reference.on_delete,
        onupdate=None if reference.on_update == "NO ACTION" else reference.on_update,
    )


class _Operation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str


class CreateTable(_Operation):
    """Create a table with its primary key, in-service foreign keys and indexes."""

    kind: Literal["create_table"] = "create_table"
    definition: SchemaDefinition

    def describe(self) -> str:
        """One line for people."""
        return f"create table {self.table} ({len(self.definition.columns)} columns)"

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return DropTable(table=self.table, definition=self.definition)

    def apply(self, op: Operations, state: TableState | None) -> TableState:
        """Emit the DDL and return the table's new state."""
        new = TableState.of(self.definition)
        op.create_table(
            self.table,
            *to_sa_columns(new.columns),
            *(_constraint(name, reference) for name, reference in new.foreign_keys),
        )
        for index in new.indexes:
            op.create_index(index.name, self.table, list(index.columns), unique=index.unique)
        return new


class DropTable(_Operation):
    """Drop a table (its rows are lost)."""

    kind: Literal["drop_table"] = "drop_table"
    definition: SchemaDefinition

    def describe(self) -> str:
        """One line for people."""
        return f"drop table {self.table}"

    def inverse(self) -> Operation:
        """The operation that undoes this one (the table comes back empty)."""
        return CreateTable(table=self.table, definition=self.definition)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        op.drop_table(self.table)
        return None


class RenameTable(_Operation):
    """Rename a table (``table`` is the old name)."""

    kind: Literal["rename_table"] = "rename_table"
    new_name: str

    def describe(self) -> str:
        """One line for people."""
        return f"rename table {self.table} to {self.new_name}"

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return RenameTable(table=self.new_name, new_name=self.table)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        op.rename_table(self.table, self.new_name)
        return replace(state, name=self.new_name) if state is not None else None


class AddColumn(_Operation):
    """Add a column."""

    kind: Literal["add_column"] = "add_column"
    column: SchemaColumn

    def describe(self) -> str:
        """One line for people."""
        null = "NULL" if self.column.nullable else "NOT NULL"
        return f"add column {self.table}.{self.column.name} {self.column.type} {null}"

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return DropColumn(table=self.table, column=self.column)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        with _batch(op, state) as batch:
            batch.add_column(to_sa_column(self.column))
        return _evolve(state, columns=(*_columns(state), self.column))


class DropColumn(_Operation):
    """Drop a column (its values are lost)."""

    kind: Literal["drop_column"] = "drop_column"
    column: SchemaColumn

    def describe(self) -> str:
        """One line for people."""
        return f"drop column {self.table}.{self.column.name}"

    def inverse(self) -> Operation:
        """The operation that undoes this one (the column comes back empty)."""
        return AddColumn(table=self.table, column=self.column)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        with _batch(op, state) as batch:
            batch.drop_column(self.column.name)
        return _evolve(
            state, columns=tuple(c for c in _columns(state) if c.name != self.column.name)
        )


class AlterColumn(_Operation):
    """Change a column's name, type, nullability or default."""

    kind: Literal["alter_column"] = "alter_column"
    old: SchemaColumn
    new: SchemaColumn

    def describe(self) -> str:
        """One line for people."""
        changes = [
            f"{what} {before} -> {after}"
            for what, before, after in [
                ("name", self.old.name, self.new.name),
                ("type", self.old.type, self.new.type),
                ("nullable", self.old.nullable, self.new.nullable),
                ("default", self.old.default, self.new.default),
            ]
            if before != after
        ]
        return f"alter column {self.table}.{self.old.name}: {', '.join(changes)}"

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return AlterColumn(table=self.table, old=self.new, new=self.old)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        old_type, new_type = self.old.column_type, self.new.column_type
        arguments: dict[str, Any] = {
            "existing_type": old_type.to_sqlalchemy(),
            "existing_nullable": self.old.nullable,
            "existing_server_default": _server_default(self.old),
        }
        if self.new.name != self.old.name:
            arguments["new_column_name"] = self.new.name
        if new_type != old_type:
            arguments["type_"] = new_type.to_sqlalchemy()
            sql_type = new_type.to_sqlalchemy().compile(dialect=op.get_context().dialect)
            arguments["postgresql_using"] = f"{self.old.name}::{sql_type}"
        if self.new.nullable != self.old.nullable:
            arguments["nullable"] = self.new.nullable
        if self.new.default != self.old.default:
            arguments["server_default"] = _server_default(self.new)
        with _batch(op, state) as batch:
            batch.alter_column(self.old.name, **arguments)
        columns = tuple(self.new if c.name == self.old.name else c for c in _columns(state))
        return _evolve(state, columns=columns)


class CreateIndex(_Operation):
    """Create an index (a unique one fails on duplicate values)."""

    kind: Literal["create_index"] = "create_index"
    index: SchemaIndex

    def describe(self) -> str:
        """One line for people."""
        unique = "unique " if self.index.unique else ""
        columns = ", ".join(self.index.columns)
        return f"create {unique}index {self.index.name} on {self.table} ({columns})"

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return DropIndex(table=self.table, index=self.index)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        op.create_index(
            self.index.name, self.table, list(self.index.columns), unique=self.index.unique
        )
        return _evolve(state, indexes=(*(state.indexes if state else ()), self.index))


class DropIndex(_Operation):
    """Drop an index."""

    kind: Literal["drop_index"] = "drop_index"
    index: SchemaIndex

    def describe(self) -> str:
        """One line for people."""
        return f"drop index {self.index.name} on {self.table}"

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return CreateIndex(table=self.table, index=self.index)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        op.drop_index(self.index.name, table_name=self.table)
        indexes = tuple(i for i in (state.indexes if state else ()) if i.name != self.index.name)
        return _evolve(state, indexes=indexes)


class AddForeignKey(_Operation):
    """Add a foreign key to a table of the same service."""

    kind: Literal["add_foreign_key"] = "add_foreign_key"
    name: str
    reference: SchemaReference

    def describe(self) -> str:
        """One line for people."""
        return (
            f"add foreign key {self.table}.{self.reference.column} -> {self.reference.references}"
        )

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return DropForeignKey(table=self.table, name=self.name, reference=self.reference)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        reference = self.reference
        keys = (*(state.foreign_keys if state else ()), (self.name, reference))
        new = _evolve(state, foreign_keys=keys)
        with _batch(op, new) as batch:
            batch.create_foreign_key(
                self.name,
                reference.target_table,
                [reference.column],
                [reference.target_column],
                ondelete=None if reference.on_delete == "NO ACTION" else reference.on_delete,
                onupdate=None if reference.on_update == "NO ACTION" else reference.on_update,
            )
        return new


class DropForeignKey(_Operation):
    """Drop a foreign key."""

    kind: Literal["drop_foreign_key"] = "drop_foreign_key"
    name: str
    reference: SchemaReference

    def describe(self) -> str:
        """One line for people."""
        return (
            f"drop foreign key {self.table}.{self.reference.column} -> {self.reference.references}"
        )

    def inverse(self) -> Operation:
        """The operation that undoes this one."""
        return AddForeignKey(table=self.table, name=self.name, reference=self.reference)

    def apply(self, op: Operations, state: TableState | None) -> TableState | None:
        """Emit the DDL and return the table's new state."""
        with _batch(op, state) as batch:
            batch.drop_constraint(self.name, type_="foreignkey")
        kept = tuple(key for key in (state.foreign_keys if state else ()) if key[0] != self.name)
        return _evolve(state, foreign_keys=kept)


Operation = Annotated[
    CreateTable
    | DropTable
    | RenameTable
    | AddColumn
    | DropColumn
    | AlterColumn
    | CreateIndex
    | DropIndex
    | AddForeignKey
    | DropForeignKey,
    Field(discriminator="kind"),
]
"""Any schema operation; ``kind`` tells them apart in JSON."""


def _columns(state: TableState | None) -> tuple[SchemaColumn, ...]:
    return state.columns if state is not None else ()


def _evolve(state: TableState | None, **changes: Any) -> TableState | None:
    return replace(state, **changes) if state is not None else None


def _batch(op: Operations, state: TableState | None) -> Any:
    if state is None:
        raise ValueError("a column or foreign-key change needs the table's current definition")
    return op.batch_alter_table(state.name, copy_from=state.to_table(), recreate="auto")
