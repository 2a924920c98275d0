"""Compatibility between two versions of a table, in Confluent Schema Registry's modes.

Readers are the services' code; data is the rows. BACKWARD: code built for the new version
reads rows written under the old one. FORWARD: code built for the old version reads rows written
under the new one. FULL: both. NONE: no check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aegis.schema._models import SchemaColumn, SchemaDefinition
from aegis.schema._problems import Problem
from aegis.schema._types import TypeChange


class CompatibilityMode(StrEnum):
    """Which readers must keep working across a new version of a table."""

    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"
    NONE = "NONE"


@dataclass(frozen=True)
class _Break:
    rule: str
    backward: bool
    forward: bool
    message: str
    path: str


def matched_columns(
    old: SchemaDefinition, new: SchemaDefinition
) -> tuple[list[tuple[SchemaColumn, SchemaColumn]], list[SchemaColumn], list[SchemaColumn]]:
    """Pair old and new columns (following ``renamed_from``); return pairs, added, dropped."""
    old_by_name = {column.name: column for column in old.columns}
    pairs: list[tuple[SchemaColumn, SchemaColumn]] = []
    added: list[SchemaColumn] = []
    for column in new.columns:
        previous = old_by_name.pop(column.name, None)
        if previous is None and column.renamed_from is not None:
            previous = old_by_name.pop(column.renamed_from, None)
        if previous is None:
            added.append(column)
        else:
            pairs.append((previous, column))
    return pairs, added, list(old_by_name.values())


def _breaks(old: SchemaDefinition, new: SchemaDefinition) -> list[_Break]:
    found: list[_Break] = []
    pairs, added, dropped = matched_columns(old, new)
    if new.renamed_from is not None and new.renamed_from != old.table:
        found.append(
            _Break("table-renamed", True, True, f"table renamed from {old.table}", "table")
        )
    for column in added:
        if column.required:
            found.append(
                _Break(
                    "added-required-column",
                    True,
                    False,
                    f"column {column.name} added as NOT NULL without a default: "
                    "old rows have no value",
                    f"columns.{column.name}",
                )
            )
    for column in dropped:
        if column.required:
            found.append(
                _Break(
                    "removed-required-column",
                    False,
                    True,
                    f"required column {column.name} removed: readers of the old version need it",
                    "columns",
                )
            )
    for before, after in pairs:
        found.extend(_column_breaks(before, after))
    old_keys = [c.name for c in old.columns if c.primary_key]
    new_keys = [c.renamed_from or c.name for c in new.columns if c.primary_key]
    if old_keys != new_keys:
        found.append(
            _Break("primary-key-changed", True, True, "the primary key changed", "columns")
        )
    return found


def _column_breaks(before: SchemaColumn, after: SchemaColumn) -> list[_Break]:
    path = f"columns.{after.name}"
    found: list[_Break] = []
    if before.name != after.name:
        message = f"column {before.name} renamed to {after.name}"
        found.append(_Break("column-renamed", True, True, message, path))
    change = before.column_type.change_to(after.column_type)
    what = f"column {after.name}: {before.type} -> {after.type}"
    if change == TypeChange.WIDENING:
        found.append(
            _Break(
                "type-widened",
                False,
                True,
                f"{what} (old readers cannot hold new values)",
                f"{path}.type",
            )
        )
    elif change == TypeChange.NARROWING:
        found.append(
            _Break("type-narrowed", True, False, f"{what} (old values may not fit)", f"{path}.type")
        )
    elif change == TypeChange.CHANGE:
        found.append(_Break("type-changed", True, True, f"{what}", f"{path}.type"))
    if before.nullable and not after.nullable:
        message = f"column {after.name} made NOT NULL: old rows may hold NULL"
        found.append(_Break("column-made-required", True, False, message, f"{path}.nullable"))
    elif not before.nullable and after.nullable:
        message = f"column {after.name} made nullable: old readers expect a value"
        found.append(_Break("column-made-optional", False, True, message, f"{path}.nullable"))
    return found


def compatibility_problems(
    old: SchemaDefinition, new: SchemaDefinition, mode: CompatibilityMode
) -> list[Problem]:
    """List every change from ``old`` to ``new`` that breaks ``mode``.

    Each problem's rule is the kind of change (``added-required-column``, ``type-narrowed``,
    ``column-renamed`` ...) and points at the line of the new version's file.
    """
    if mode == CompatibilityMode.NONE:
        return []
    check_backward = mode in (CompatibilityMode.BACKWARD, CompatibilityMode.FULL)
    check_forward = mode in (CompatibilityMode.FORWARD, CompatibilityMode.FULL)
    return [
        Problem(
            found.rule,
            f"{new.key} {old.version} -> {new.version}: {found.message} (breaks {mode})",
            new.source_file,
            new.line_of(found.path),
            subject=new.key,
        )
        for found in _breaks(old, new)
        if (found.backward and check_backward) or (found.forward and check_forward)
    ]


def is_compatible(old: SchemaDefinition, new: SchemaDefinition, mode: CompatibilityMode) -> bool:
    """Return whether ``new`` keeps ``mode`` compatibility with ``old``."""
    return not compatibility_problems(old, new, mode)
