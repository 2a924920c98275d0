"""Documentation from the registry: Markdown per service, an index, Mermaid diagrams."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.schema._graph import DependencyGraph
from aegis.schema._models import SchemaDefinition
from aegis.schema._table_facts import COLUMN_HEADINGS, column_facts, index_facts
from aegis.schema._types import ColumnType
from aegis.schema._validation import is_unique_column

if TYPE_CHECKING:
    from aegis.schema._registry import SchemaRegistry

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")


def _entity(key: str) -> str:
    return _UNSAFE_ID.sub("_", key.replace(".", "__"))


def _text(value: str) -> str:
    # Mermaid labels are double-quoted and end at the first quote; newlines end the line.
    return " ".join(value.replace('"', "'").split())


def _type_token(parsed: ColumnType) -> str:
    # Mermaid attribute types are one word: letters, digits, _ - ( ) [ ] but no comma.
    if parsed.kind == "numeric":
        return f"numeric({parsed.precision}_{parsed.scale})"
    if parsed.kind == "timestamp":
        return "timestamptz" if parsed.timezone else "timestamp"
    if parsed.kind == "enum":
        return "enum"
    return str(parsed)


def render_erd(schemas: Iterable[SchemaDefinition]) -> str:
    """A Mermaid ``erDiagram`` of ``schemas`` and the references between them.

    Entities are named ``<service>__<table>`` and labelled ``service.table``; keys are marked
    PK, FK (any reference) and UK (unique). A reference to a unique column is drawn one-to-one.
    """
    tables = sorted(schemas, key=lambda schema: schema.key)
    by_key = {schema.key: schema for schema in tables}
    lines = ["erDiagram"]
    for schema in tables:
        lines.append(f'    {_entity(schema.key)}["{schema.key}"] {{')
        referencing = {reference.column for reference in schema.references}
        for attribute in schema.columns:
            keys = [
                mark
                for mark, present in [
                    ("PK", attribute.primary_key),
                    ("FK", attribute.name in referencing),
                    ("UK", attribute.unique and not attribute.primary_key),
                ]
                if present
            ]
            parts = [_type_token(attribute.column_type), attribute.name]
            if keys:
                parts.append(", ".join(keys))
            if attribute.description:
                parts.append(f'"{_text(attribute.description)}"')
            lines.append("        " + " ".join(parts))
        lines.append("    }")
    for schema in tables:
        for reference in schema.references:
            if reference.target_key not in by_key:
                continue
            column = schema.column(reference.column)
            many = "o|" if is_unique_column(schema, reference.column) else "o{"
            one = "|o" if column is not None and column.nullable else "||"
            target, source = _entity(reference.target_key), _entity(schema.key)
            lines.append(f'    {target} {one}--{many} {source} : "{reference.column}"')
    return "\n".join(lines) + "\n"


def render_service_graph(graph: DependencyGraph) -> str:
    """A Mermaid flowchart of services; an arrow points from a service to one it depends on."""
    lines = ["flowchart LR"]
    for service in graph.services:
        lines.append(f'    {_entity(service)}["{_text(service)}"]')
    for service, dependency in graph.edges():
        lines.append(f"    {_entity(service)} --> {_entity(dependency)}")
    return "\n".join(lines) + "\n"


def render_service_markdown(registry: SchemaRegistry, service: str) -> str:
    """Markdown for one service: owner, dependencies both ways, and every table in detail."""
    info = registry.service_info(service)
    graph = registry.graph()
    tables = registry.tables(service)
    out = [f"# {service}", ""]
    if info.description:
        out += [info.description, ""]
    if info.owner:
        out += [f"Owner: {info.owner}", ""]
    depends = ", ".join(f"[{name}]({name}.md)" for name in graph.dependencies(service)) or "none"
    used_by = ", ".join(f"[{name}]({name}.md)" for name in graph.dependents(service)) or "none"
    out += [f"Depends on: {depends}. Used by: {used_by}.", ""]
    out += ["```mermaid", render_erd(tables).rstrip(), "```", ""]
    for schema in tables:
        out += _table_markdown(schema, graph)
    return "\n".join(out).rstrip() + "\n"


def _table_markdown(schema: SchemaDefinition, graph: DependencyGraph) -> list[str]:
    out = [f"## {schema.table} (version {schema.version})", ""]
    if schema.description:
        out += [schema.description, ""]
    out += ["| " + " | ".join(COLUMN_HEADINGS) + " |", "|---" * len(COLUMN_HEADINGS) + "|"]
    for column in column_facts(schema):
        default = "" if column.default is None else f"`{column.default}`"
        description = column.description.replace("|", "\\|")
        out.append(
            f"| {column.name} | `{column.type}` | {column.null} | {default} | {column.key} "
            f"| {description} |"
        )
    out.append("")
    if schema.references:
        out += ["References:", ""]
        for reference in schema.references:
            out.append(
                f"- `{reference.column}` → `{reference.references}` "
                f"(on delete {reference.on_delete.lower()}, "
                f"on update {reference.on_update.lower()})"
            )
        out.append("")
    indexes = index_facts(schema)
    if indexes:
        out += ["Indexes:", ""]
        out += [f"- `{index.name}`: {index.summary}" for index in indexes]
        out.append("")
    users = graph.table_dependents(schema.key)
    if users:
        out += ["Referenced by: " + ", ".join(f"`{key}`" for key in users), ""]
    return out


def render_index_markdown(registry: SchemaRegistry) -> str:
    """Markdown index of every service with its tables and the service dependency graph."""
    graph = registry.graph()
    out = [
        "# Schema registry",
        "",
        "| service | owner | tables | depends on |",
        "|---|---|---|---|",
    ]
    for service in registry.services():
        tables = ", ".join(schema.table for schema in registry.tables(service))
        depends = ", ".join(graph.dependencies(service))
        owner = registry.service_info(service).owner
        out.append(f"| [{service}]({service}.md) | {owner} | {tables} | {depends} |")
    out += [
        "",
        "## Service dependencies",
        "",
        "```mermaid",
        render_service_graph(graph).rstrip(),
        "```",
    ]
    out += [
        "",
        "## All tables",
        "",
        "```mermaid",
        render_erd(registry.schemas()).rstrip(),
        "```",
        "",
    ]
    return "\n".join(out)


def write_docs(registry: SchemaRegistry, directory: str | Path) -> list[Path]:
    """Write ``index.md`` and one ``<service>.md`` per service into ``directory``."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    written = [root / "index.md"]
    written[0].write_text(render_index_markdown(registry), encoding="utf-8")
    for service in registry.services():
        path = root / f"{service}.md"
        path.write_text(render_service_markdown(registry, service), encoding="utf-8")
        written.append(path)
    return written
