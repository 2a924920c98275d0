"""Reading and writing registry YAML with ruamel.yaml: comments, key order and lines survive."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from aegis.schema._models import SchemaDefinition
from aegis.schema._problems import Problem
from aegis.schema._types import ColumnType

# Lists of mappings are matched item by item on these keys when a file is updated, so a comment
# on a column stays with that column.
_IDENTITY_KEYS = ("name", "column")


def yaml_processor() -> YAML:
    """Return the round-trip YAML processor every registry file is read and written with."""
    processor = YAML(typ="rt")
    processor.indent(mapping=2, sequence=4, offset=2)
    processor.preserve_quotes = True
    processor.width = 100
    return processor


def read_document(path: Path, name: str) -> tuple[Any, list[Problem]]:
    """Read one YAML file; a syntax error becomes a ``yaml-syntax`` problem naming ``name``."""
    try:
        return yaml_processor().load(path.read_text(encoding="utf-8")), []
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = f"{exc.problem or exc.context}"
        return None, [Problem("yaml-syntax", message, name, line)]


def write_document(document: Any, path: Path) -> None:
    """Write ``document`` to ``path`` (through a temporary file, so a crash leaves no half file)."""
    buffer = io.StringIO()
    yaml_processor().dump(document, buffer)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(buffer.getvalue(), encoding="utf-8")
    temporary.replace(path)


def table_nodes(document: Any) -> Iterator[tuple[CommentedMap, dict[str, Any]]]:
    """Yield each table mapping of a file with the keys it inherits from a service file.

    A file holds one table (``service:``, ``table:``, ``columns:`` ...) or one service's tables
    (``service:`` and a ``tables:`` list).
    """
    if isinstance(document, CommentedMap) and isinstance(document.get("tables"), CommentedSeq):
        inherited = {"service": document.get("service")}
        for node in document["tables"]:
            if isinstance(node, CommentedMap):
                yield node, inherited
    elif isinstance(document, CommentedMap):
        yield document, {}


def definitions_from_document(
    document: Any, file: str
) -> tuple[list[SchemaDefinition], list[Problem]]:
    """Validate every table in a loaded file; each failure is a problem naming its line."""
    definitions: list[SchemaDefinition] = []
    problems: list[Problem] = []
    if not isinstance(document, CommentedMap):
        return [], [Problem("schema-invalid", "the file must hold a mapping", file, 1)]
    for node, inherited in table_nodes(document):
        data = {**inherited, **node} if inherited.get("service") is not None else dict(node)
        try:
            definition = SchemaDefinition.model_validate(data)
        except ValidationError as exc:
            subject = f"{data.get('service')}.{data.get('table')}"
            for error in exc.errors():
                loc = tuple(error["loc"])
                invalid_type = loc[-1:] == ("type",) and error["type"] == "value_error"
                rule = "invalid-type" if invalid_type else "schema-invalid"
                where = ".".join(str(part) for part in loc) or "table"
                message = f"{where}: {error['msg']}"
                problems.append(Problem(rule, message, file, line_at(node, loc), subject=subject))
            continue
        definitions.append(definition.with_source(file, definition_lines(node)))
    return definitions, problems


def line_at(node: Any, loc: Sequence[str | int]) -> int:
    """Return the 1-based line of the deepest entry of ``node`` that ``loc`` reaches."""
    line: int = node.lc.line + 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def definition_lines(node: CommentedMap) -> dict[str, int]:
    """Map the paths a problem can point at (``columns.email.type``) to their lines."""
    lines = {"": node.lc.line + 1}
    for key in node:
        lines[str(key)] = node.lc.key(key)[0] + 1
    for section in ("columns", "indexes", "references"):
        items = node.get(section)
        if not isinstance(items, CommentedSeq):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, CommentedMap):
                continue
            name = item.get("name", item.get("column", index)) if section != "references" else index
            prefix = f"{section}.{name}"
            lines[prefix] = items.lc.item(index)[0] + 1
            for key in item:
                lines[f"{prefix}.{key}"] = item.lc.key(key)[0] + 1
    return lines


def definition_data(definition: SchemaDefinition) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the definition as full data and as data without default values.

    A primary key column's ``nullable: false`` counts as a default too: the model implies it.
    """
    minimal = definition.model_dump(mode="json", exclude_defaults=True)
    for column in minimal["columns"]:
        if column.get("primary_key"):
            column.pop("nullable", None)
    return definition.model_dump(mode="json"), minimal


def merge_into(node: CommentedMap, full: Mapping[str, Any], minimal: Mapping[str, Any]) -> None:
    """Update ``node`` in place to hold ``full``, keeping its comments and key order.

    Keys the file already has keep their place (also when the value is the default); new keys
    are added only when they differ from the default (``minimal``); keys no longer present go.
    """
    for key in list(node):
        if key not in full:
            del node[key]
    for key, value in full.items():
        if key in node:
            node[key] = _merged(node[key], value, minimal.get(key, value), str(key))
        elif key in minimal:
            node[key] = minimal[key]


def _canonical(key: str, value: Any) -> Any:
    """The value the model stores for what a file spells ``value`` (``numeric(12, 2)``)."""
    try:
        if key == "type" and isinstance(value, str):
            return str(ColumnType.parse(value))
    except ValueError:
        return value
    if key in ("on_delete", "on_update") and isinstance(value, str):
        return " ".join(value.upper().split())
    if key == "version" and isinstance(value, int) and not isinstance(value, bool):
        return f"{value}.0.0"
    return value


def _merged(old: Any, full: Any, minimal: Any, key: str) -> Any:
    if isinstance(old, CommentedMap) and isinstance(full, dict):
        merge_into(old, full, minimal)
        return old
    if isinstance(old, CommentedSeq) and isinstance(full, list):
        return _merged_list(old, full, minimal)
    # Keep the loaded scalar (its spelling and quoting) when the value is unchanged; 1 is not True.
    same = _canonical(key, old) == full and isinstance(old, bool) == isinstance(full, bool)
    return old if same else full


def _merged_list(old: CommentedSeq, full: list[Any], minimal: list[Any]) -> CommentedSeq:
    identity = _identity_key(full)
    if identity is None or not all(isinstance(item, CommentedMap) for item in old):
        if list(old) != full:
            old[:] = full
        return old
    existing = {item.get(identity): item for item in old}
    for index in reversed(range(len(old))):
        if old[index].get(identity) not in {item[identity] for item in full}:
            del old[index]
    for index, (item, small) in enumerate(zip(full, minimal, strict=True)):
        current = existing.get(item[identity])
        if current is None:
            old.insert(index, small)
            continue
        merge_into(current, item, small)
        if old.index(current) != index:
            old.remove(current)
            old.insert(index, current)
    return old


def _identity_key(items: list[Any]) -> str | None:
    for key in _IDENTITY_KEYS:
        if items and all(isinstance(item, dict) and key in item for item in items):
            values = [item[key] for item in items]
            if len(set(values)) == len(values):
                return key
    return None


def new_table_document(definition: SchemaDefinition) -> CommentedMap:
    """Return a fresh one-table document for ``definition`` (defaults left out)."""
    document = CommentedMap()
    _, minimal = definition_data(definition)
    for key, value in minimal.items():
        document[key] = value
    return document
