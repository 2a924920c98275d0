"""Diff two versions of a table into the operations that turn one into the other."""

from __future__ import annotations

from aegis.schema._compat import matched_columns
from aegis.schema._models import SchemaDefinition
from aegis.schema._operations import (
    AddColumn,
    AddForeignKey,
    AlterColumn,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropForeignKey,
    DropIndex,
    DropTable,
    Operation,
    RenameTable,
    foreign_key_name,
    foreign_keys,
)
from aegis.schema._validation import all_indexes


def diff_schemas(old: SchemaDefinition | None, new: SchemaDefinition | None) -> list[Operation]:
    """Return the operations that turn table ``old`` into ``new``.

    ``old`` None creates the table, ``new`` None drops it. Columns are matched by name, or by
    ``renamed_from``; a changed index or foreign key is dropped and created again. The order is
    safe to run: rename the table, drop foreign keys and indexes, alter, drop and add columns,
    then create indexes and foreign keys.

    Example:
        >>> for operation in diff_schemas(users_v1, users_v2):
        ...     print(operation.describe())
        add column users.display_name string(100) NULL
    """
    if old is None and new is None:
        return []
    if old is None:
        assert new is not None  # narrowed for mypy by the check above
        return [CreateTable(table=new.table, definition=new)]
    if new is None:
        return [DropTable(table=old.table, definition=old)]
    table = new.table
    operations: list[Operation] = []
    if old.table != table:
        operations.append(RenameTable(table=old.table, new_name=table))
    # Names follow the table (fk_<table>_<column>, uq_..., ix_...): after a table rename they
    # differ, so the constraints are dropped and made again under the new names.
    old_keys = {foreign_key_name(old.table, ref): ref for ref in foreign_keys(old)}
    new_keys = {foreign_key_name(table, ref): ref for ref in foreign_keys(new)}
    old_indexes = {index.name: index for index in all_indexes(old)}
    new_indexes = {index.name: index for index in all_indexes(new)}
    operations += [
        DropForeignKey(table=table, name=name, reference=reference)
        for name, reference in old_keys.items()
        if new_keys.get(name) != reference
    ]
    operations += [
        DropIndex(table=table, index=index)
        for name, index in old_indexes.items()
        if new_indexes.get(name) != index
    ]
    operations += _column_operations(old, new)
    operations += [
        CreateIndex(table=table, index=index)
        for name, index in new_indexes.items()
        if old_indexes.get(name) != index
    ]
    operations += [
        AddForeignKey(table=table, name=name, reference=reference)
        for name, reference in new_keys.items()
        if old_keys.get(name) != reference
    ]
    return operations


def _column_operations(old: SchemaDefinition, new: SchemaDefinition) -> list[Operation]:
    """Alter, then drop, then add columns; descriptions and index flags are not DDL here."""
    operations: list[Operation] = []
    pairs, added, dropped = matched_columns(old, new)
    for before, after in pairs:
        target = after.model_copy(update={"renamed_from": None})
        ignored = {
            "description": before.description,
            "unique": before.unique,
            "index": before.index,
        }
        if target.model_copy(update=ignored) != before:
            operations.append(AlterColumn(table=new.table, old=before, new=target))
    operations += [DropColumn(table=new.table, column=column) for column in dropped]
    operations += [AddColumn(table=new.table, column=column) for column in added]
    return operations


def invert(operations: list[Operation]) -> list[Operation]:
    """The operations that undo ``operations``, in reverse order."""
    return [operation.inverse() for operation in reversed(operations)]
