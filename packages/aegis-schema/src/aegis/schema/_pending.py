"""What the registry has that the databases do not yet: read from the coordinator's history.

Every run the coordinator completed says which version of each table it left in the databases
(``to_version`` per step; a rollback run moves it back). The registry's current versions beyond
those are pending, and the plan from the deployed versions to them is what ``aegis-schema
migrate`` would run next.
"""

from __future__ import annotations

from aegis.schema._coordinator import MigrationCoordinator
from aegis.schema._graph import DependencyGraph
from aegis.schema._history import HistoryStore
from aegis.schema._impact import ImpactReport
from aegis.schema._plan import plan_migration
from aegis.schema._registry import SchemaRegistry
from aegis.schema._status import MigrationStatus


def deployed_versions(history: HistoryStore) -> dict[str, str | None]:
    """The version of each table (``service.table``) that the completed runs left deployed.

    A table the history never touched is absent; a dropped one maps to ``None``. Completed
    migrations count, oldest first. One that was rolled back is marked ``ROLLED_BACK`` and
    counts no more (its rollback only restored what the runs before it had left); a failed run
    undid its own steps.
    """
    deployed: dict[str, str | None] = {}
    for run in reversed(history.runs()):
        if run.kind != "migrate" or run.status != MigrationStatus.COMPLETED:
            continue
        for step in run.plan.steps:
            deployed[step.schema_name] = step.to_version
    return deployed


def pending_migration(registry: SchemaRegistry, history: HistoryStore) -> ImpactReport:
    """The impact report of the plan from the deployed versions to the registry's current ones.

    The plan has no steps when the databases hold every current version. A table the history
    never saw counts as not created. The findings are the rules' (no database is connected to
    check the data).

    Example:
        >>> report = pending_migration(SchemaRegistry.load("schemas"), HistoryStore(url))
        >>> report.plan.steps[0].id
        'users.users@1.1.0'
    """
    deployed = deployed_versions(history)
    base = SchemaRegistry(registry.compatibility)
    changes = []
    for schema in registry.schemas():
        version = deployed.get(schema.key)
        known = registry.versions(schema.service, schema.table)
        at = next((index for index, old in enumerate(known) if old.version == version), None)
        if version is not None and at is None:
            continue  # the database has a version this registry does not know: nothing to plan
        if at is not None:
            base = base.copy_with(known[: at + 1])
        if version != schema.version:
            changes.append(schema)
    plan = plan_migration(base, changes)
    # validate_migration needs no connection without check_data; the history stays open.
    findings = MigrationCoordinator(base, history=history).validate_migration(
        plan, check_data=False
    )
    return ImpactReport(plan, tuple(findings), DependencyGraph(registry.schemas()))
