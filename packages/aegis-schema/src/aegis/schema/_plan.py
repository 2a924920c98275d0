"""Migration plans: which tables change, in which order, with which operations each way."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from aegis.core.errors import NotFoundError
from aegis.core.models import uuid7
from aegis.schema._diff import diff_schemas, invert
from aegis.schema._errors import SchemaVersionConflictError
from aegis.schema._models import SchemaDefinition
from aegis.schema._operations import Operation
from aegis.schema._status import MigrationStatus

if TYPE_CHECKING:
    from aegis.schema._registry import SchemaRegistry


class MigrationStep(BaseModel):
    """The change of one table: the operations up and down, and what it waits for.

    ``before`` and ``after`` are the table's definitions on either side (None when the step
    creates or drops it); ``depends_on`` lists the ids of steps that must run first.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    service: str
    schema_name: str
    from_version: str | None
    to_version: str | None
    before: SchemaDefinition | None = None
    after: SchemaDefinition | None = None
    up: list[Operation] = Field(default_factory=list)
    down: list[Operation] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    status: MigrationStatus = MigrationStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class MigrationPlan(BaseModel):
    """Ordered steps for a set of schema changes, and every service they affect.

    ``affected_services`` holds the changed services and every service that references them,
    directly or not.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid7()))
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    steps: list[MigrationStep] = Field(default_factory=list)
    changed_services: list[str] = Field(default_factory=list)
    affected_services: list[str] = Field(default_factory=list)

    def step(self, step_id: str) -> MigrationStep:
        """Return the step with ``step_id``.

        Raises:
            NotFoundError: no such step.
        """
        for step in self.steps:
            if step.id == step_id:
                return step
        raise NotFoundError(f"plan {self.id} has no step {step_id}")


class MigrationRun(BaseModel):
    """One execution of a plan (``migrate``) or of a past run's rollback (``rollback``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid7()))
    kind: Literal["migrate", "rollback"] = "migrate"
    plan: MigrationPlan
    status: MigrationStatus = MigrationStatus.PENDING
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    error: str | None = None
    rolls_back: str | None = None
    log: list[str] = Field(default_factory=list)


def plan_migration(
    registry: SchemaRegistry,
    changes: Iterable[SchemaDefinition],
    removed: Iterable[str] = (),
) -> MigrationPlan:
    """Plan the migration from the registry's current versions to ``changes``.

    Args:
        registry: the current (deployed) state.
        changes: new versions of existing tables, or new tables. A new version names its old
            table in ``renamed_from`` when the table is renamed.
        removed: ``service.table`` keys of tables to drop.

    Steps that create or alter run dependencies first; drops run last, dependents first.

    Raises:
        SchemaVersionConflictError: a change does not raise its table's version.
        NotFoundError: a removed table is not in the registry.
        DependencyCycleError: the changed tables reference each other in a cycle.
    """
    new_versions = list(changes)
    pairs: dict[str, tuple[SchemaDefinition | None, SchemaDefinition]] = {}
    replaced: list[str] = []
    for new in new_versions:
        old = registry.find(new.service, new.renamed_from or new.table)
        if old is not None:
            if new.version_tuple <= old.version_tuple:
                raise SchemaVersionConflictError(
                    f"{new.key}: the change's version {new.version} must be higher than the "
                    f"current {old.version}",
                    details={"schema": new.key, "current": old.version},
                )
            if old.key != new.key:
                replaced.append(old.key)
        pairs[new.key] = (old, new)
    drops: list[SchemaDefinition] = []
    for key in removed:
        service, _, table = key.partition(".")
        drops.append(registry.get(service, table))
    proposed = registry.copy_with(new_versions, removed=[*replaced, *(d.key for d in drops)])
    new_graph = proposed.graph()
    old_graph = registry.graph()
    steps: list[MigrationStep] = []
    step_ids: dict[str, str] = {}
    for key in new_graph.table_order(pairs):
        old, new = pairs[key]
        step_ids[key] = f"{key}@{new.version}"
        depends = [step_ids[dep] for dep in _referenced(new) if dep in step_ids and dep != key]
        steps.append(_step(step_ids[key], old, new, depends))
    drop_keys = [schema.key for schema in drops]
    for key in reversed(old_graph.table_order(drop_keys)):
        old = next(schema for schema in drops if schema.key == key)
        dependents = [step_ids[dep] for dep in old_graph.table_dependents(key) if dep in step_ids]
        step_ids[key] = f"{key}@dropped"
        steps.append(_step(step_ids[key], old, None, dependents))
    changed = sorted({step.service for step in steps})
    affected = set(changed)
    for service in changed:
        affected.update(old_graph.dependents(service, transitive=True))
        affected.update(new_graph.dependents(service, transitive=True))
    return MigrationPlan(steps=steps, changed_services=changed, affected_services=sorted(affected))


def _referenced(schema: SchemaDefinition) -> list[str]:
    return sorted({reference.target_key for reference in schema.references})


def _step(
    step_id: str, old: SchemaDefinition | None, new: SchemaDefinition | None, depends: list[str]
) -> MigrationStep:
    either = new if new is not None else old
    assert either is not None  # a step always has one side
    up = diff_schemas(old, new)
    return MigrationStep(
        id=step_id,
        service=either.service,
        schema_name=either.key,
        from_version=old.version if old is not None else None,
        to_version=new.version if new is not None else None,
        before=old,
        after=new,
        up=up,
        down=invert(up),
        depends_on=depends,
    )
