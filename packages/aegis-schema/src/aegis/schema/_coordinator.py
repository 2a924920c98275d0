"""The migration coordinator: plan, check, run across service databases, roll back, remember."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from aegis.core.errors import ConfigurationError, ConflictError
from aegis.schema._engines import create_engine, database_url
from aegis.schema._errors import MigrationBlockedError, MigrationFailedError
from aegis.schema._history import HistoryStore
from aegis.schema._models import SchemaDefinition
from aegis.schema._operations import Operation, TableState
from aegis.schema._plan import (
    MigrationPlan,
    MigrationRun,
    MigrationStep,
    plan_migration,
)
from aegis.schema._registry import SchemaRegistry
from aegis.schema._rules import Finding, analyze_plan, blocking, check_data, reference_findings
from aegis.schema._status import DEFAULT_HISTORY_URL, MigrationStatus
from aegis.schema._validation import validate_schemas

logger = logging.getLogger("aegis.schema")

# A rollback is checked against the rules whose findings lose stored rows or values. The
# others (a rename, a type change, a service's last table going) take back a change the run
# itself made, which is what a rollback is for.
_DATA_LOSS_RULES = frozenset({"DS102", "DS103"})

Progress = Callable[[MigrationStep, int, int], None]
"""Called as ``progress(step, position, total)`` when a step starts and when it ends."""


class MigrationCoordinator:
    """Plans schema changes across services and runs them against each service's database.

    Args:
        registry: the current (deployed) state of every table.
        database_urls: one SQLAlchemy URL per service (``postgresql://`` uses psycopg 3).
        history: the history store, or its URL (a SQLite file by default).
        allow: rule codes (``DS103``...) whose errors do not block :meth:`execute`.

    Each step runs in its own transaction (PostgreSQL and SQLite run DDL transactionally).
    When a step fails, the completed steps are undone in reverse order with their down
    operations and marked ``ROLLED_BACK``; the run is kept in the history either way.

    Example:
        >>> with MigrationCoordinator(
        ...     registry, {"users": users_url, "policies": policies_url}
        ... ) as c:
        ...     plan = c.plan_migration([users_v2])
        ...     run = c.execute(plan)
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        database_urls: Mapping[str, str] | None = None,
        *,
        history: HistoryStore | str = DEFAULT_HISTORY_URL,
        allow: Iterable[str] = (),
    ) -> None:
        self.registry = registry
        self.database_urls = dict(database_urls or {})
        self.history = HistoryStore(history) if isinstance(history, str) else history
        self.allow = frozenset(allow)
        self._engines: dict[str, sa.Engine] = {}

    def __enter__(self) -> MigrationCoordinator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Dispose every engine and the history store's connections."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        self.history.close()

    def _engine(self, service: str) -> sa.Engine:
        if service not in self._engines:
            url = self.database_urls.get(service)
            if url is None:
                raise ConfigurationError(
                    f"no database URL for service {service!r}; pass one per service "
                    f"(--url {service}=postgresql://...)",
                    details={"service": service},
                )
            self._engines[service] = create_engine(url)
        return self._engines[service]

    def plan_migration(
        self, changes: Iterable[SchemaDefinition], removed: Iterable[str] = ()
    ) -> MigrationPlan:
        """Plan the change from the registry's current versions; see :func:`plan_migration`."""
        return plan_migration(self.registry, changes, removed)

    def validate_migration(self, plan: MigrationPlan, *, check_data: bool = True) -> list[Finding]:
        """Check ``plan`` against every rule in :data:`RULES`.

        With ``check_data`` and a database URL for a step's service, findings that depend on
        the data are re-graded from the live table: an empty table, an all-NULL column or a
        column without duplicates makes an error a warning; rows that would break keep it an
        error and the finding says how many.
        """
        current = self.registry.schemas()
        findings = analyze_plan(plan, current)
        afters = [step.after for step in plan.steps if step.after is not None]
        removed = [
            step.before.key
            for step in plan.steps
            if step.before is not None and (step.after is None or step.after.key != step.before.key)
        ]
        proposed = self.registry.copy_with(afters, removed).schemas()
        known = {(p.rule, p.message) for p in validate_schemas(current)}
        introduced = [p for p in validate_schemas(proposed) if (p.rule, p.message) not in known]
        findings += reference_findings(plan, introduced, {s.key: s for s in proposed})
        if check_data:
            findings = self._check_data(findings)
        return findings

    def _check_data(self, findings: list[Finding]) -> list[Finding]:
        checked: list[Finding] = []
        for service in dict.fromkeys(finding.service for finding in findings):
            mine = [finding for finding in findings if finding.service == service]
            if service not in self.database_urls or not any(f.query for f in mine):
                checked += mine
                continue
            with self._engine(service).connect() as connection:
                checked += [check_data(finding, connection) for finding in mine]
        return checked

    def plan_sql(self, plan: MigrationPlan, *, dialect: str | None = None) -> dict[str, str]:
        """The SQL of every step's up operations, without connecting (``--dry-run``).

        The dialect is the service's database URL's, else ``dialect``, else PostgreSQL.
        """
        return {
            step.id: self._offline_sql(step.service, step.up, step.before, dialect)
            for step in plan.steps
        }

    def _offline_sql(
        self,
        service: str,
        operations: list[Operation],
        start: SchemaDefinition | None,
        dialect: str | None,
    ) -> str:
        url = self.database_urls.get(service)
        name = database_url(url).get_backend_name() if url else (dialect or "postgresql")
        buffer = io.StringIO()
        context = MigrationContext.configure(
            dialect_name=name,
            opts={"as_sql": True, "output_buffer": buffer, "literal_binds": True},
        )
        _apply(Operations(context), operations, start)
        return buffer.getvalue()

    def execute(
        self,
        plan: MigrationPlan,
        *,
        dry_run: bool = False,
        allow: Iterable[str] = (),
        progress: Progress | None = None,
    ) -> MigrationRun:
        """Run ``plan``'s steps in order, each in a transaction on its service's database.

        Args:
            plan: from :meth:`plan_migration`.
            dry_run: only render each step's SQL into the returned run's ``log``; nothing is
                connected to, locked or stored.
            allow: more rule codes whose errors may pass (added to the coordinator's).
            progress: called when each step starts and ends.

        Raises:
            MigrationBlockedError: a finding is an error whose rule is not allowed.
            MigrationLockedError: another coordinator is running.
            MigrationFailedError: a step failed; completed steps were rolled back and the run,
                with every step's state and error, is stored and attached to the error.
        """
        if dry_run:
            sql = self.plan_sql(plan)
            log = [f"-- {step.id}\n{sql[step.id]}" for step in plan.steps]
            return MigrationRun(plan=plan, log=log)
        blocked = blocking(self.validate_migration(plan), self.allow | set(allow))
        if blocked:
            raise MigrationBlockedError(blocked)
        return self._run(MigrationRun(plan=plan), progress)

    def bootstrap(self, *, dry_run: bool = False, progress: Progress | None = None) -> MigrationRun:
        """Create every table of the registry in empty databases: a new environment, a test.

        The run is planned from an empty registry, so it is ordered (referenced services
        first), checked, executed a transaction per table and stored in the history like any
        migration; it can be rolled back.

        Raises:
            MigrationFailedError: a table could not be created (one that already exists, for
                instance); the tables created before it were dropped again.
            MigrationLockedError: another coordinator is running.
        """
        empty = MigrationCoordinator(
            SchemaRegistry(self.registry.compatibility),
            self.database_urls,
            history=self.history,
            allow=self.allow,
        )
        empty._engines = self._engines  # the same databases: share the open engines
        plan = empty.plan_migration(self.registry.schemas())
        return empty.execute(plan, dry_run=dry_run, progress=progress)

    def rollback(
        self, run_id: str, *, allow: Iterable[str] = (), progress: Progress | None = None
    ) -> MigrationRun:
        """Undo a completed run: its steps' down operations, last step first, as a new run.

        The original run is then marked ``ROLLED_BACK``. Dropped tables and columns come back
        empty: a rollback restores the schema, not the data. What the rollback itself would
        drop (a table or a column the run created) is checked like a migration's drops, with
        the same rules (DS102, DS103) graded from the live data: only rows at risk block it,
        unless their rule is allowed here or in the coordinator's ``allow``.

        Raises:
            NotFoundError: no such run.
            ConflictError: the run is not ``COMPLETED`` (a failed run was already undone).
            MigrationBlockedError: the rollback would drop rows or values and their rule is
                not allowed; ``findings`` says which and how many.
            MigrationFailedError: a step of the rollback failed (its completed steps were
                re-applied, so the schema is as the original run left it).
        """
        original = self.history.get(run_id)
        if original.status != MigrationStatus.COMPLETED or original.kind != "migrate":
            raise ConflictError(
                f"run {run_id} is {original.status}: only a completed migration can be rolled back",
                details={"run_id": run_id, "status": str(original.status)},
            )
        steps = [
            MigrationStep(
                id=f"{step.id}:rollback",
                service=step.service,
                schema_name=step.schema_name,
                from_version=step.to_version,
                to_version=step.from_version,
                before=step.after,
                after=step.before,
                up=step.down,
                down=step.up,
            )
            for step in reversed(original.plan.steps)
        ]
        plan = original.plan.model_copy(update={"steps": steps})
        for service in dict.fromkeys(step.service for step in steps):
            self._engine(service)  # a missing URL is named before the data is checked
        losses = [
            finding
            for finding in analyze_plan(plan, self.registry.schemas())
            if finding.code in _DATA_LOSS_RULES
        ]
        blocked = blocking(self._check_data(losses), self.allow | set(allow))
        if blocked:
            raise MigrationBlockedError(blocked)
        run = self._run(MigrationRun(kind="rollback", plan=plan, rolls_back=run_id), progress)
        original.status = MigrationStatus.ROLLED_BACK
        for step in original.plan.steps:
            step.status = MigrationStatus.ROLLED_BACK
        self.history.save(original)
        return run

    def _run(self, run: MigrationRun, progress: Progress | None) -> MigrationRun:
        for service in dict.fromkeys(step.service for step in run.plan.steps):
            self._engine(service)  # a missing URL stops the run before anything is touched
        owner = self.history.acquire_lock()
        try:
            run.status = MigrationStatus.RUNNING
            self.history.save(run)
            completed: list[MigrationStep] = []
            total = len(run.plan.steps)
            for position, step in enumerate(run.plan.steps, start=1):
                step.status, step.started_at = MigrationStatus.RUNNING, datetime.now(UTC)
                if progress is not None:
                    progress(step, position, total)
                started = time.perf_counter()
                try:
                    self._apply_online(step.service, step.up, step.before)
                # Any failure, from the driver or from Alembic, must undo the completed steps;
                # it is recorded and raised again as MigrationFailedError (chained).
                except Exception as exc:
                    self._fail(run, step, completed, exc, progress=progress, position=position)
                    raise MigrationFailedError(run.error or "", run) from exc
                step.status, step.finished_at = MigrationStatus.COMPLETED, datetime.now(UTC)
                self._log(run, f"{step.id}: completed in {time.perf_counter() - started:.3f}s")
                if progress is not None:
                    progress(step, position, total)
                completed.append(step)
                self.history.save(run)
            run.status, run.finished_at = MigrationStatus.COMPLETED, datetime.now(UTC)
            self.history.save(run)
            return run
        finally:
            self.history.release_lock(owner)

    def _fail(
        self,
        run: MigrationRun,
        step: MigrationStep,
        completed: list[MigrationStep],
        exc: Exception,
        *,
        progress: Progress | None,
        position: int,
    ) -> None:
        step.status, step.finished_at = MigrationStatus.FAILED, datetime.now(UTC)
        step.error = _first_line(exc)
        self._log(run, f"{step.id}: FAILED: {step.error}", level=logging.ERROR)
        if progress is not None:
            progress(step, position, len(run.plan.steps))
        for done in reversed(completed):
            try:
                self._apply_online(done.service, done.down, done.after)
            except Exception as undo_exc:  # keep undoing the others; recorded
                done.status, done.error = (
                    MigrationStatus.FAILED,
                    f"rollback failed: {_first_line(undo_exc)}",
                )
                self._log(run, f"{done.id}: rollback FAILED: {done.error}", level=logging.ERROR)
                continue
            done.status, done.finished_at = MigrationStatus.ROLLED_BACK, datetime.now(UTC)
            self._log(run, f"{done.id}: rolled back")
        undone = sum(1 for done in completed if done.status == MigrationStatus.ROLLED_BACK)
        run.status, run.finished_at = MigrationStatus.FAILED, datetime.now(UTC)
        run.error = (
            f"step {step.id} failed: {step.error}; "
            f"{undone} of {len(completed)} completed step(s) rolled back"
        )
        self.history.save(run)

    def _apply_online(
        self, service: str, operations: list[Operation], start: SchemaDefinition | None
    ) -> None:
        with self._engine(service).begin() as connection:
            _apply(Operations(MigrationContext.configure(connection)), operations, start)

    def _log(self, run: MigrationRun, line: str, level: int = logging.INFO) -> None:
        run.log.append(line)
        logger.log(level, "migration %s: %s", run.id, line)


def _apply(op: Operations, operations: list[Operation], start: SchemaDefinition | None) -> None:
    state = TableState.of(start) if start is not None else None
    for operation in operations:
        state = operation.apply(op, state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
