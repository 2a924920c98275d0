"""The destructive-change rules a plan is checked against, with optional checks of live data.

Codes follow Atlas's analyzers where one exists (DS1xx destructive, MF1xx data-dependent,
BC1xx backward-incompatible, CD1xx constraint deleted); TC1xx (type changes, squawk's
``changing-column-type``) and RI101 (a reference the change breaks) are aegis's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from aegis.schema._models import SchemaDefinition
from aegis.schema._operations import (
    AddColumn,
    AlterColumn,
    CreateIndex,
    DropColumn,
    DropForeignKey,
    DropIndex,
    DropTable,
    Operation,
    RenameTable,
)
from aegis.schema._plan import MigrationPlan, MigrationStep
from aegis.schema._problems import Problem, Severity
from aegis.schema._types import TypeChange


@dataclass(frozen=True)
class MigrationRule:
    """A named check: its stable code, default severity, and the safe way to get there."""

    code: str
    name: str
    severity: Severity
    summary: str
    safe_alternative: str


RULES: dict[str, MigrationRule] = {
    rule.code: rule
    for rule in [
        MigrationRule(
            "DS101",
            "drop-schema",
            Severity.ERROR,
            "every table of a service is dropped",
            "Retire the service's readers first; keep a backup; drop the tables a release later.",
        ),
        MigrationRule(
            "DS102",
            "drop-table",
            Severity.ERROR,
            "a table is dropped with its rows",
            "Stop writing, back up or archive the rows, and drop once the table is empty.",
        ),
        MigrationRule(
            "DS103",
            "drop-column",
            Severity.ERROR,
            "a column is dropped with its values",
            "Stop reading and writing the column, deploy, then drop it (expand/contract).",
        ),
        MigrationRule(
            "MF101",
            "add-unique-index",
            Severity.ERROR,
            "a unique index on an existing table fails on duplicate rows",
            "Remove duplicates first; on PostgreSQL create the index CONCURRENTLY, then attach it.",
        ),
        MigrationRule(
            "MF102",
            "make-index-unique",
            Severity.ERROR,
            "an existing index becomes unique and fails on duplicate rows",
            "Remove duplicates first and build the unique index beside the old one.",
        ),
        MigrationRule(
            "MF103",
            "add-required-column",
            Severity.ERROR,
            "a NOT NULL column without a default is added to a table that may have rows",
            "Add it nullable or with a default, backfill, then set NOT NULL.",
        ),
        MigrationRule(
            "MF104",
            "make-column-required",
            Severity.ERROR,
            "a nullable column becomes NOT NULL and fails on existing NULLs",
            "Backfill the NULLs; on PostgreSQL add CHECK (col IS NOT NULL) NOT VALID, "
            "validate it, then set NOT NULL.",
        ),
        MigrationRule(
            "BC101",
            "rename-table",
            Severity.ERROR,
            "a table is renamed: readers using the old name break",
            "Create the new table (or a view under the old name), move readers, drop the old one.",
        ),
        MigrationRule(
            "BC102",
            "rename-column",
            Severity.ERROR,
            "a column is renamed: readers using the old name break",
            "Add the new column, write both, backfill, move readers, then drop the old column.",
        ),
        MigrationRule(
            "BC103",
            "drop-add-looks-like-rename",
            Severity.WARNING,
            "a column is dropped and another of the same type added: "
            "a rename written as drop+add loses the data",
            "Declare renamed_from on the new column so the plan renames it.",
        ),
        MigrationRule(
            "CD101",
            "drop-foreign-key",
            Severity.WARNING,
            "a foreign key is dropped: the database stops enforcing the reference",
            "Make sure the application keeps the rows consistent before dropping it.",
        ),
        MigrationRule(
            "TC101",
            "narrow-type",
            Severity.ERROR,
            "a column type narrows: existing values may not fit",
            "Add a column of the new type, backfill checked values, switch readers, drop the old.",
        ),
        MigrationRule(
            "TC102",
            "change-type",
            Severity.ERROR,
            "a column changes to an unrelated type: values are converted or the change fails",
            "Add a column of the new type, backfill, switch readers, drop the old.",
        ),
        MigrationRule(
            "RI101",
            "broken-reference",
            Severity.ERROR,
            "after the change a reference points at a missing or incompatible column",
            "Migrate the referencing service first, or keep the referenced column.",
        ),
    ]
}
"""Every migration rule by code."""


@dataclass(frozen=True)
class Finding:
    """One rule a plan breaks: where, how badly, who depends on it, and what to do instead.

    ``data`` says what a check of the live table found, when a database was connected.
    """

    code: str
    message: str
    severity: Severity
    step_id: str
    service: str
    table: str
    column: str | None = None
    dependents: tuple[str, ...] = ()
    data: str | None = None
    query: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def rule(self) -> MigrationRule:
        """The rule this finding breaks."""
        return RULES[self.code]

    @property
    def suggestion(self) -> str:
        """The rule's safe alternative."""
        return self.rule.safe_alternative

    def to_dict(self) -> dict[str, Any]:
        """The finding as a JSON-ready dict."""
        return {
            "code": self.code,
            "rule": self.rule.name,
            "severity": str(self.severity),
            "message": self.message,
            "step": self.step_id,
            "service": self.service,
            "table": self.table,
            "column": self.column,
            "dependents": list(self.dependents),
            "data": self.data,
            "suggestion": self.suggestion,
        }


def blocking(
    findings: list[Finding], allow: set[str] | frozenset[str] = frozenset()
) -> list[Finding]:
    """The error findings whose rule is not in ``allow``: these stop :meth:`execute`."""
    return [f for f in findings if f.severity == Severity.ERROR and f.code not in allow]


def analyze_plan(plan: MigrationPlan, current: list[SchemaDefinition]) -> list[Finding]:
    """Check every step of ``plan`` against :data:`RULES` (no database needed)."""
    graph_schemas = {schema.key: schema for schema in current}
    findings: list[Finding] = []
    for step in plan.steps:
        findings.extend(_step_findings(step, graph_schemas))
    dropped = {step.schema_name for step in plan.steps if step.to_version is None}
    for service in {step.service for step in plan.steps if step.to_version is None}:
        tables = [schema.key for schema in current if schema.service == service]
        kept = [
            step for step in plan.steps if step.service == service and step.to_version is not None
        ]
        if tables and set(tables) <= dropped and not kept:
            step = next(step for step in plan.steps if step.service == service)
            findings.append(_finding("DS101", step, f"every table of service {service} is dropped"))
    return findings


def _finding(code: str, step: MigrationStep, message: str, **extra: Any) -> Finding:
    table = step.schema_name.split(".", 1)[1]
    return Finding(code, message, RULES[code].severity, step.id, step.service, table, **extra)


def _dependents(
    current: dict[str, SchemaDefinition], key: str, column: str | None
) -> tuple[str, ...]:
    found: set[str] = set()
    for schema in current.values():
        for reference in schema.references:
            if (
                reference.target_key == key
                and schema.key != key
                and column in (None, reference.target_column)
            ):
                found.add(f"{schema.key}.{reference.column}")
    return tuple(sorted(found))


def _referenced_key(step: MigrationStep) -> str:
    """The key other tables refer to now: the old one when the step renames the table."""
    return step.before.key if step.before is not None else step.schema_name


def _step_findings(step: MigrationStep, current: dict[str, SchemaDefinition]) -> list[Finding]:
    key = step.schema_name
    existing = step.before is not None
    found: list[Finding] = []
    dropped_indexes = {op.index.name: op.index for op in step.up if isinstance(op, DropIndex)}
    added = [op.column for op in step.up if isinstance(op, AddColumn)]
    for operation in step.up:
        found.extend(_operation_findings(step, operation, current, existing, dropped_indexes))
    for operation in step.up:
        if isinstance(operation, DropColumn):
            twins = [c.name for c in added if c.type == operation.column.type]
            if twins:
                dropped = operation.column
                message = (
                    f"{key}: {dropped.name} dropped, {twins[0]} ({dropped.type}) added: a rename?"
                )
                found.append(_finding("BC103", step, message, column=operation.column.name))
    return found


def _operation_findings(
    step: MigrationStep,
    operation: Operation,
    current: dict[str, SchemaDefinition],
    existing: bool,
    dropped_indexes: dict[str, Any],
) -> list[Finding]:
    key, table = step.schema_name, operation.table
    if isinstance(operation, DropTable):
        query = ("empty", table)
        return [
            _finding(
                "DS102",
                step,
                f"drop table {key}",
                dependents=_dependents(current, _referenced_key(step), None),
                query=query,
            )
        ]
    if isinstance(operation, RenameTable):
        return [
            _finding(
                "BC101",
                step,
                f"rename table {operation.table} to {operation.new_name}",
                dependents=_dependents(current, _referenced_key(step), None),
            )
        ]
    if isinstance(operation, DropColumn):
        name = operation.column.name
        return [
            _finding(
                "DS103",
                step,
                f"drop column {key}.{name}",
                column=name,
                dependents=_dependents(current, _referenced_key(step), name),
                query=("all_null", table, name),
            )
        ]
    if isinstance(operation, AddColumn) and existing and operation.column.required:
        name = operation.column.name
        return [
            _finding(
                "MF103",
                step,
                f"add NOT NULL column {key}.{name} without a default",
                column=name,
                query=("empty", table),
            )
        ]
    if isinstance(operation, DropForeignKey):
        return [
            _finding(
                "CD101",
                step,
                f"drop foreign key {operation.name}",
                column=operation.reference.column,
            )
        ]
    if isinstance(operation, CreateIndex) and existing and operation.index.unique:
        before = dropped_indexes.get(operation.index.name)
        columns = operation.index.columns
        made_unique = before is not None and not before.unique and before.columns == columns
        code = "MF102" if made_unique else "MF101"
        message = f"unique index {operation.index.name} on {key} ({', '.join(columns)})"
        return [
            _finding(code, step, message, column=columns[0], query=("duplicates", table, *columns))
        ]
    if isinstance(operation, AlterColumn):
        return _alter_findings(step, operation, current)
    return []


def _alter_findings(
    step: MigrationStep, operation: AlterColumn, current: dict[str, SchemaDefinition]
) -> list[Finding]:
    key, table = step.schema_name, operation.table
    old, new = operation.old, operation.new
    dependents = _dependents(current, _referenced_key(step), old.name)
    found: list[Finding] = []
    if old.name != new.name:
        found.append(
            _finding(
                "BC102",
                step,
                f"rename column {key}.{old.name} to {new.name}",
                column=old.name,
                dependents=dependents,
            )
        )
    change = old.column_type.change_to(new.column_type)
    if change == TypeChange.NARROWING:
        query: tuple[str, ...] = ()
        if new.column_type.kind == "string" and new.column_type.length is not None:
            query = ("longer_than", table, old.name, str(new.column_type.length))
        message = f"narrow {key}.{old.name} from {old.type} to {new.type}"
        found.append(
            _finding("TC101", step, message, column=old.name, dependents=dependents, query=query)
        )
    elif change == TypeChange.CHANGE:
        message = f"change {key}.{old.name} from {old.type} to {new.type}"
        found.append(_finding("TC102", step, message, column=old.name, dependents=dependents))
    if old.nullable and not new.nullable:
        message = f"make {key}.{old.name} NOT NULL"
        found.append(
            _finding("MF104", step, message, column=old.name, query=("nulls", table, old.name))
        )
    return found


def reference_findings(
    plan: MigrationPlan, problems: list[Problem], schemas: dict[str, SchemaDefinition]
) -> list[Finding]:
    """Turn reference problems of the proposed state into RI101 findings on the step causing them.

    ``problems`` are those the plan introduces (not those the registry already had); each goes
    to the referencing table's step, else to the step that changed a table it references.
    """
    found: list[Finding] = []
    by_key = {step.schema_name: step for step in plan.steps}
    for problem in problems:
        if not problem.rule.startswith("reference-") or problem.severity != Severity.ERROR:
            continue
        step = by_key.get(problem.subject)
        referencing = schemas.get(problem.subject)
        if step is None and referencing is not None:
            targets = [ref.target_key for ref in referencing.references if ref.target_key in by_key]
            step = by_key[targets[0]] if targets else None
        if step is not None:
            found.append(_finding("RI101", step, problem.message, dependents=(problem.subject,)))
    return found


def check_data(finding: Finding, connection: sa.Connection) -> Finding:
    """Re-grade ``finding`` from the live table: empty tables, all-NULL columns, duplicates.

    A check that shows no data can be lost downgrades the finding to a warning; one that shows
    rows would break keeps it an error and says how many. (One return per kind of check.)
    """
    if not finding.query:
        return finding
    check, table_name, *columns = finding.query
    inspector = sa.inspect(connection)
    if not inspector.has_table(table_name):
        return replace(finding, data="table not found in the database; not checked")
    table = sa.table(table_name, *(sa.column(name) for name in columns if not name.isdigit()))
    if check == "empty":
        rows = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        return _graded(
            finding, rows == 0, "the table is empty" if rows == 0 else f"the table has {rows} rows"
        )
    column = table.c[columns[0]]
    if check == "all_null":
        rows = connection.execute(
            sa.select(sa.func.count()).select_from(table).where(column.is_not(None))
        ).scalar_one()
        return _graded(
            finding, rows == 0, "no row has a value" if rows == 0 else f"{rows} rows have a value"
        )
    if check == "nulls":
        rows = connection.execute(
            sa.select(sa.func.count()).select_from(table).where(column.is_(None))
        ).scalar_one()
        return _graded(
            finding, rows == 0, "no row is NULL" if rows == 0 else f"{rows} rows are NULL"
        )
    if check == "longer_than":
        length = sa.func.length(column)
        rows = connection.execute(
            sa.select(sa.func.count()).select_from(table).where(length > int(columns[1]))
        ).scalar_one()
        return _graded(
            finding, rows == 0, "every value fits" if rows == 0 else f"{rows} values are longer"
        )
    keys = [table.c[name] for name in columns]
    groups = (
        sa.select(*keys)
        .where(*(key.is_not(None) for key in keys))
        .group_by(*keys)
        .having(sa.func.count() > 1)
    )
    rows = connection.execute(
        sa.select(sa.func.count()).select_from(groups.subquery())
    ).scalar_one()
    return _graded(
        finding, rows == 0, "no duplicates now" if rows == 0 else f"{rows} duplicated values"
    )


def _graded(finding: Finding, safe: bool, data: str) -> Finding:
    if safe:
        return replace(finding, severity=Severity.WARNING, data=data)
    return replace(finding, severity=Severity.ERROR, data=data)
