"""Checks over a whole registry: names, references across services, cycles.

Every problem carries a stable rule name (:data:`REGISTRY_RULES`), the file and the line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from aegis.schema._graph import DependencyGraph
from aegis.schema._models import SchemaDefinition, SchemaIndex
from aegis.schema._problems import Problem, Severity

REGISTRY_RULES: dict[str, str] = {
    "yaml-syntax": "the file is not valid YAML",
    "schema-invalid": "a definition breaks the model (unknown field, bad name, bad version)",
    "invalid-type": "a column type is not one of the portable types",
    "registry-missing": "the directory has no registry.yaml",
    "registry-invalid": "registry.yaml breaks its model",
    "file-missing": "registry.yaml lists a file that does not exist",
    "service-mismatch": "a file listed under one service defines another service's table",
    "duplicate-table": "two files define the same service.table",
    "duplicate-column": "two columns of a table share a name",
    "duplicate-index": "two indexes of one service share a name (one namespace per database)",
    "unknown-column": "an index or reference names a column the table does not have",
    "missing-primary-key": "a table has no primary key (warning)",
    "reference-unknown-service": "a reference names a service the registry does not have",
    "reference-unknown-table": "a reference names a table its service does not have",
    "reference-unknown-column": "a reference names a column its table does not have",
    "reference-type-mismatch": "the referencing column cannot hold the referenced column's values",
    "reference-not-unique": "a referenced column is neither the primary key nor unique",
    "dependency-cycle": "services reference each other in a cycle: no migration order exists",
}
"""Every registry rule name with what it checks."""


def all_indexes(schema: SchemaDefinition) -> list[SchemaIndex]:
    """Every index of a table: the declared ones, then those its columns ask for.

    A ``unique`` column gets ``uq_<table>_<column>``, an ``index`` column ``ix_<table>_<column>``.
    """
    made: list[SchemaIndex] = []
    for column in schema.columns:
        if column.unique:
            name = f"uq_{schema.table}_{column.name}"
            made.append(SchemaIndex(name=name, columns=(column.name,), unique=True))
        if column.index:
            made.append(
                SchemaIndex(name=f"ix_{schema.table}_{column.name}", columns=(column.name,))
            )
    return [*schema.indexes, *made]


def is_unique_column(schema: SchemaDefinition, name: str) -> bool:
    """Whether column ``name`` alone is the primary key, unique, or has a unique index."""
    keys = [column.name for column in schema.columns if column.primary_key]
    column = schema.column(name)
    return (
        keys == [name]
        or (column is not None and column.unique)
        or any(index.unique and index.columns == (name,) for index in schema.indexes)
    )


def validate_definition(schema: SchemaDefinition) -> list[Problem]:
    """Check one table on its own: duplicate names, unknown columns, a primary key."""
    problems: list[Problem] = []

    def problem(rule: str, message: str, path: str, severity: Severity = Severity.ERROR) -> None:
        file, line = schema.source_file, schema.line_of(path)
        problems.append(Problem(rule, f"{schema.key}: {message}", file, line, severity, schema.key))

    for name, count in Counter(column.name for column in schema.columns).items():
        if count > 1:
            problem(
                "duplicate-column", f"column {name} is defined {count} times", f"columns.{name}"
            )
    for name, count in Counter(index.name for index in all_indexes(schema)).items():
        if count > 1:
            problem("duplicate-index", f"index {name} is defined {count} times", f"indexes.{name}")
    names = {column.name for column in schema.columns}
    for index in schema.indexes:
        for column in index.columns:
            if column not in names:
                problem(
                    "unknown-column",
                    f"index {index.name} names unknown column {column}",
                    f"indexes.{index.name}.columns",
                )
    for position, reference in enumerate(schema.references):
        if reference.column not in names:
            problem(
                "unknown-column",
                f"reference from unknown column {reference.column}",
                f"references.{position}.column",
            )
    if not any(column.primary_key for column in schema.columns):
        problem("missing-primary-key", "the table has no primary key", "columns", Severity.WARNING)
    return problems


def validate_schemas(schemas: Iterable[SchemaDefinition]) -> list[Problem]:
    """Check tables together: each on its own, references between them, index names, cycles.

    A dependency cycle is reported at the reference that closes it: from a table of the cycle's
    last service to one of its first (``policies -> users -> policies``: the reference in a
    ``users`` table to a ``policies`` table).
    """
    tables = list(schemas)
    by_key = {schema.key: schema for schema in tables}
    services = {schema.service for schema in tables}
    problems: list[Problem] = []
    for schema in tables:
        problems.extend(validate_definition(schema))
        for position in range(len(schema.references)):
            problems.extend(_check_reference(schema, position, by_key, services))
    seen: dict[tuple[str, str], SchemaDefinition] = {}
    for schema in tables:
        for name in dict.fromkeys(index.name for index in all_indexes(schema)):
            first = seen.setdefault((schema.service, name), schema)
            if first is not schema:
                problems.append(
                    Problem(
                        "duplicate-index",
                        f"{schema.key}: index {name} is also defined on {first.key}",
                        schema.source_file,
                        schema.line_of("indexes"),
                        subject=schema.key,
                    )
                )
    for cycle in DependencyGraph(tables).cycles():
        schema, position = _closing_reference(tables, cycle)
        path = " -> ".join([*cycle, cycle[0]])
        problems.append(
            Problem(
                "dependency-cycle",
                f"services depend on each other: {path}",
                schema.source_file,
                schema.line_of(f"references.{position}.references"),
                subject=schema.key,
            )
        )
    return problems


def _closing_reference(
    tables: Sequence[SchemaDefinition], cycle: Sequence[str]
) -> tuple[SchemaDefinition, int]:
    """The first reference from a table of ``cycle[-1]`` to one of ``cycle[0]``, by position."""
    last, first = cycle[-1], cycle[0]
    for schema in tables:
        if schema.service != last:
            continue
        for position, reference in enumerate(schema.references):
            if reference.target_service == first:
                return schema, position
    raise AssertionError(f"no reference from {last} to {first} closes the cycle {cycle}")


def _check_reference(
    schema: SchemaDefinition,
    position: int,
    by_key: dict[str, SchemaDefinition],
    services: set[str],
) -> list[Problem]:
    reference = schema.references[position]
    path = f"references.{position}.references"

    def problem(rule: str, message: str) -> list[Problem]:
        text = f"{schema.key}.{reference.column} -> {reference.references}: {message}"
        return [Problem(rule, text, schema.source_file, schema.line_of(path), subject=schema.key)]

    if reference.target_service not in services:
        return problem("reference-unknown-service", f"no service {reference.target_service}")
    target = by_key.get(reference.target_key)
    if target is None:
        return problem(
            "reference-unknown-table",
            f"service {reference.target_service} has no table {reference.target_table}",
        )
    referenced = target.column(reference.target_column)
    if referenced is None:
        return problem(
            "reference-unknown-column",
            f"{reference.target_key} has no column {reference.target_column}",
        )
    found: list[Problem] = []
    column = schema.column(reference.column)
    if column is not None and not column.column_type.can_hold(referenced.column_type):
        found += problem("reference-type-mismatch", f"{column.type} cannot hold {referenced.type}")
    if not is_unique_column(target, reference.target_column):
        found += problem(
            "reference-not-unique", f"{reference.references} is neither the primary key nor unique"
        )
    return found
