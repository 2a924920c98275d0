"""The schema registry: every service's tables and their versions, loaded from and saved to YAML."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from aegis.core.errors import NotFoundError
from aegis.schema._compat import CompatibilityMode, compatibility_problems
from aegis.schema._errors import SchemaValidationError, SchemaVersionConflictError
from aegis.schema._graph import DependencyGraph
from aegis.schema._models import SchemaDefinition
from aegis.schema._problems import Problem, Severity
from aegis.schema._validation import validate_schemas
from aegis.schema._yaml import (
    definition_data,
    definitions_from_document,
    line_at,
    merge_into,
    new_table_document,
    read_document,
    table_nodes,
    write_document,
)

REGISTRY_FILE = "registry.yaml"
"""The file that lists a registry's services and their table files."""

HISTORY_DIRECTORY = "history"
"""Where past versions are kept: ``history/<service>.<table>/<version>.yaml``."""


class ServiceInfo(BaseModel):
    """A service of the registry: who owns it and which files hold its tables."""

    model_config = ConfigDict(extra="forbid")

    owner: str = ""
    description: str = ""
    files: list[str] = Field(default_factory=list)


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compatibility: CompatibilityMode = CompatibilityMode.BACKWARD
    services: dict[str, ServiceInfo] = Field(default_factory=dict)


class SchemaRegistry:
    """Every table of every service, with the history of its versions.

    Args:
        compatibility: the mode a new version is checked in against the current one; a change
            that breaks it needs a major version bump.

    Example:
        >>> registry = SchemaRegistry.load("examples/schemas")
        >>> registry.get("policies", "policies").version
        '1.0.0'
        >>> registry.graph().dependencies("policies") == ["users"]
        True
    """

    def __init__(self, compatibility: CompatibilityMode = CompatibilityMode.BACKWARD) -> None:
        self.compatibility = compatibility
        self.directory: Path | None = None
        self._versions: dict[str, list[SchemaDefinition]] = {}
        self._services: dict[str, ServiceInfo] = {}
        self._config_document: CommentedMap | None = None
        self._documents: dict[str, Any] = {}
        self._removed: list[SchemaDefinition] = []
        self._touched: set[str] = set()
        self._deleted: set[str] = set()

    @classmethod
    def load(cls, directory: str | Path) -> SchemaRegistry:
        """Load ``registry.yaml``, the files it lists, and the kept history under ``directory``.

        Raises:
            SchemaValidationError: a file is missing, is not valid YAML, or holds a definition
                that breaks the model (wrong field, invalid type, bad version); every problem
                names its file and line.
        """
        root = Path(directory)
        config_path = root / REGISTRY_FILE
        if not config_path.is_file():
            raise SchemaValidationError(
                [Problem("registry-missing", f"{config_path} does not exist", str(config_path))]
            )
        document, problems = read_document(config_path, REGISTRY_FILE)
        config = _RegistryFile()
        if document is not None:
            try:
                config = _RegistryFile.model_validate(document or {})
            except ValidationError as exc:
                for error in exc.errors():
                    line = line_at(document, tuple(error["loc"]))
                    where = ".".join(str(part) for part in error["loc"])
                    problems.append(
                        Problem("registry-invalid", f"{where}: {error['msg']}", REGISTRY_FILE, line)
                    )
        registry = cls(config.compatibility)
        registry.directory = root
        registry._config_document = document if isinstance(document, CommentedMap) else None
        registry._services = dict(config.services)
        for service, info in config.services.items():
            for position, file in enumerate(info.files):
                problems.extend(registry._load_file(root, file, service, position))
        problems.extend(registry._load_history(root))
        errors = [problem for problem in problems if problem.severity == Severity.ERROR]
        if errors:
            raise SchemaValidationError(problems)
        return registry

    def _load_file(self, root: Path, file: str, service: str, position: int) -> list[Problem]:
        path = root / file
        if not path.is_file():
            line = self._listing_line(service, position)
            return [
                Problem("file-missing", f"{file} is listed but does not exist", REGISTRY_FILE, line)
            ]
        document, problems = read_document(path, file)
        if document is None:
            return problems
        self._documents[file] = document
        definitions, problems = definitions_from_document(document, file)
        for definition in definitions:
            if definition.service != service:
                problems.append(
                    Problem(
                        "service-mismatch",
                        f"{definition.key} is listed under service {service!r}",
                        file,
                        definition.line_of("service"),
                        subject=definition.key,
                    )
                )
            elif definition.key in self._versions:
                first = self._versions[definition.key][-1].source_file
                problems.append(
                    Problem(
                        "duplicate-table",
                        f"{definition.key} is also defined in {first}",
                        file,
                        definition.line_of("table"),
                        subject=definition.key,
                    )
                )
            else:
                self._versions[definition.key] = [definition]
        return problems

    def _load_history(self, root: Path) -> list[Problem]:
        problems: list[Problem] = []
        for path in sorted((root / HISTORY_DIRECTORY).glob("*/*.yaml")):
            relative = str(path.relative_to(root))
            document, read_problems = read_document(path, relative)
            definitions, more = definitions_from_document(document, relative)
            problems += read_problems + more
            for definition in definitions:
                # Only older versions of tables the files still define: a removed table's or a
                # reverted version's file stays on disk as a record, not as the current state.
                versions = self._versions.get(definition.key, [])
                older = versions and definition.version_tuple < versions[-1].version_tuple
                if older and all(known.version != definition.version for known in versions):
                    # Saved back (after a revert), it goes to the table's file.
                    versions.append(definition.with_source(versions[-1].source_file, {}))
                    versions.sort(key=lambda known: known.version_tuple)
        return problems

    def _listing_line(self, service: str, position: int) -> int | None:
        document = self._config_document
        if document is None:
            return None
        return line_at(document, ("services", service, "files", position))

    def register(self, definition: SchemaDefinition) -> SchemaDefinition:
        """Add a new table, or a new version of a known one, and return it.

        The version must be higher than the current one. A change that breaks the registry's
        compatibility mode needs a higher major version; the current version stays in the history.

        Raises:
            SchemaVersionConflictError: the version does not increase, or the change is breaking
                and the major version stays the same (the message lists each breaking change).
        """
        versions = self._versions.get(definition.key)
        if versions:
            current = versions[-1]
            if definition.version_tuple <= current.version_tuple:
                raise SchemaVersionConflictError(
                    f"{definition.key}: version {definition.version} must be higher than the "
                    f"current {current.version}",
                    details={"schema": definition.key, "current": current.version},
                )
            breaking = compatibility_problems(current, definition, self.compatibility)
            if breaking and definition.version_tuple[0] == current.version_tuple[0]:
                changes = "; ".join(problem.message for problem in breaking)
                raise SchemaVersionConflictError(
                    f"{definition.key}: {changes}. A breaking change under "
                    f"{self.compatibility} compatibility needs a major version bump "
                    f"({current.version_tuple[0] + 1}.0.0)",
                    details={"schema": definition.key, "rules": [p.rule for p in breaking]},
                )
            if definition.source_file is None:
                definition = definition.with_source(current.source_file, {})
            versions.append(definition)
        else:
            self._versions[definition.key] = [definition]
        self._services.setdefault(definition.service, ServiceInfo())
        return definition

    def revert(self, service: str, table: str, version: str) -> SchemaDefinition:
        """Make ``version`` current again, forgetting the newer versions (after a rollback).

        Raises:
            NotFoundError: the table or that version is unknown.
        """
        target = self.get(service, table, version)
        versions = self._versions[target.key]
        del versions[versions.index(target) + 1 :]
        return target

    def remove(self, service: str, table: str) -> SchemaDefinition:
        """Remove a dropped table; its versions stay in the history when the registry is saved.

        Raises:
            NotFoundError: the table is unknown.
        """
        current = self.get(service, table)
        self._removed.extend(self._versions.pop(current.key))
        file = current.source_file
        document = self._documents.get(file) if file is not None else None
        if document is not None and isinstance(document.get("tables"), CommentedSeq):
            nodes = document["tables"]
            for index in reversed(range(len(nodes))):
                if nodes[index].get("table") == table:
                    del nodes[index]
            self._touched.add(str(file))
        elif file is not None:
            self._documents.pop(file, None)
            info = self._services.get(service)
            if info is not None and file in info.files:
                info.files.remove(file)
            self._deleted.add(file)
        return current

    def find(self, service: str, table: str, version: str | None = None) -> SchemaDefinition | None:
        """Return the current (or the given) version of ``service.table``, or None."""
        versions = self._versions.get(f"{service}.{table}", [])
        if version is None:
            return versions[-1] if versions else None
        return next((known for known in versions if known.version == version), None)

    def get(self, service: str, table: str, version: str | None = None) -> SchemaDefinition:
        """Return the current (or the given) version of ``service.table``.

        Raises:
            NotFoundError: no such table or version.
        """
        found = self.find(service, table, version)
        if found is None:
            what = f"{service}.{table}" + (f" version {version}" if version else "")
            raise NotFoundError(f"schema {what} is not in the registry")
        return found

    def versions(self, service: str, table: str) -> list[SchemaDefinition]:
        """Every known version of ``service.table``, oldest first."""
        return list(self._versions.get(f"{service}.{table}", []))

    def schemas(self) -> list[SchemaDefinition]:
        """The current version of every table, ordered by ``service.table``."""
        return [self._versions[key][-1] for key in sorted(self._versions) if self._versions[key]]

    def services(self) -> list[str]:
        """Every service name, sorted."""
        names = set(self._services) | {key.split(".")[0] for key in self._versions}
        return sorted(names)

    def service_info(self, service: str) -> ServiceInfo:
        """Owner, description and files of ``service`` (empty for one only seen in tables)."""
        return self._services.get(service, ServiceInfo())

    def tables(self, service: str) -> list[SchemaDefinition]:
        """The current version of each table of ``service``."""
        return [schema for schema in self.schemas() if schema.service == service]

    def graph(self) -> DependencyGraph:
        """The dependency graph of the current versions."""
        return DependencyGraph(self.schemas())

    def validate(self) -> list[Problem]:
        """Check the current versions together (see :data:`~aegis.schema.REGISTRY_RULES`)."""
        return validate_schemas(self.schemas())

    def copy_with(
        self, definitions: Iterable[SchemaDefinition], removed: Iterable[str] = ()
    ) -> SchemaRegistry:
        """Return a registry whose current versions are these (``removed`` keys dropped).

        No version rule is applied: this is how the planner sees a proposed state.
        """
        other = SchemaRegistry(self.compatibility)
        other._services = dict(self._services)
        other._versions = {key: list(versions) for key, versions in self._versions.items()}
        for key in removed:
            other._versions.pop(key, None)
        for definition in definitions:
            other._versions.setdefault(definition.key, []).append(definition)
        return other

    def save(self, directory: str | Path | None = None) -> Path:
        """Write the registry back: comments and key order of existing files are kept.

        A new table gets the file name it was read from, else ``<service>.<table>.yaml``,
        listed in ``registry.yaml``; versions
        that are no longer current go under ``history/``.

        Raises:
            ValueError: no directory given and the registry was not loaded from one.
        """
        root = Path(directory) if directory is not None else self.directory
        if root is None:
            raise ValueError("save() needs a directory: this registry was not loaded from one")
        root.mkdir(parents=True, exist_ok=True)
        touched = set(self._touched)
        for schema in self.schemas():
            touched.add(self._store_current(schema))
        for file in sorted(touched):
            write_document(self._documents[file], root / file)
        for file in sorted(self._deleted):
            (root / file).unlink(missing_ok=True)
        write_document(self._config(), root / REGISTRY_FILE)
        past = [old for versions in self._versions.values() for old in versions[:-1]]
        for old in [*past, *self._removed]:
            path = root / HISTORY_DIRECTORY / old.key / f"{old.version}.yaml"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                write_document(new_table_document(old), path)
        self._touched.clear()
        self._deleted.clear()
        self.directory = root
        return root

    def _store_current(self, schema: SchemaDefinition) -> str:
        file = schema.source_file
        if file is None or file not in self._documents:
            # A new table keeps the file name it was read from (another registry's), if free.
            taken = any(file in info.files for info in self._services.values())
            file = f"{schema.key}.yaml" if file is None or taken else file
            self._documents[file] = new_table_document(schema)
            info = self._services.setdefault(schema.service, ServiceInfo())
            if file not in info.files:
                info.files.append(file)
            self._versions[schema.key][-1] = schema.with_source(file, {})
            return file
        full, minimal = definition_data(schema)
        for node, inherited in table_nodes(self._documents[file]):
            if node.get("table") == schema.table:
                for key in inherited:
                    full.pop(key, None)
                    minimal.pop(key, None)
                merge_into(node, full, minimal)
        return file

    def _config(self) -> CommentedMap:
        document = self._config_document if self._config_document is not None else CommentedMap()
        if "compatibility" in document or self.compatibility != CompatibilityMode.BACKWARD:
            document["compatibility"] = str(self.compatibility)
        services = document.setdefault("services", CommentedMap())
        for name in self.services():
            info = self._services.get(name, ServiceInfo())
            entry = services.setdefault(name, CommentedMap())
            for field in ("owner", "description"):
                if getattr(info, field) and entry.get(field) != getattr(info, field):
                    entry[field] = getattr(info, field)
            files = entry.setdefault("files", CommentedSeq())
            for index in reversed(range(len(files))):
                if files[index] in self._deleted:
                    del files[index]
            files.extend(file for file in info.files if file not in files)
        self._config_document = document
        return document
