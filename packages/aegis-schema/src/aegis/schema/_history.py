"""The coordinator's own database: every run with its steps, and the lock between coordinators."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import sqlalchemy as sa

from aegis.core.errors import NotFoundError
from aegis.schema._engines import create_engine
from aegis.schema._errors import MigrationLockedError
from aegis.schema._plan import MigrationRun
from aegis.schema._status import DEFAULT_HISTORY_URL, MigrationStatus

"""Where the history lives unless told otherwise: a SQLite file in the working directory."""

_LOCK_NAME = "migration"
_metadata = sa.MetaData()
_runs = sa.Table(
    "aegis_schema_runs",
    _metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("rolls_back", sa.String(36)),
    sa.Column("document", sa.Text, nullable=False),
)
_steps = sa.Table(
    "aegis_schema_steps",
    _metadata,
    sa.Column("run_id", sa.String(36), sa.ForeignKey("aegis_schema_runs.id"), primary_key=True),
    sa.Column("step_id", sa.String(200), primary_key=True),
    sa.Column("service", sa.String(63), nullable=False, index=True),
    sa.Column("schema_name", sa.String(127), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
)
_locks = sa.Table(
    "aegis_schema_lock",
    _metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class HistoryStore:
    """Runs and their steps in a database (SQLite by default), queryable by service, status, time.

    The tables (``aegis_schema_runs``, ``aegis_schema_steps``, ``aegis_schema_lock``) are
    created on first use.
    """

    def __init__(self, url: str = DEFAULT_HISTORY_URL) -> None:
        self.url = url
        self._engine = create_engine(url)
        _metadata.create_all(self._engine)

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def save(self, run: MigrationRun) -> None:
        """Insert or replace ``run`` with the current state of its steps."""
        row = {
            "kind": run.kind,
            "status": str(run.status),
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "rolls_back": run.rolls_back,
            "document": run.model_dump_json(),
        }
        with self._engine.begin() as connection:
            updated = connection.execute(_runs.update().where(_runs.c.id == run.id).values(**row))
            if updated.rowcount == 0:
                connection.execute(_runs.insert().values(id=run.id, **row))
            connection.execute(_steps.delete().where(_steps.c.run_id == run.id))
            if run.plan.steps:
                connection.execute(
                    _steps.insert(),
                    [
                        {
                            "run_id": run.id,
                            "step_id": step.id,
                            "service": step.service,
                            "schema_name": step.schema_name,
                            "status": str(step.status),
                        }
                        for step in run.plan.steps
                    ],
                )

    def get(self, run_id: str) -> MigrationRun:
        """Return run ``run_id``.

        Raises:
            NotFoundError: no such run.
        """
        with self._engine.connect() as connection:
            document = connection.execute(
                sa.select(_runs.c.document).where(_runs.c.id == run_id)
            ).scalar_one_or_none()
        if document is None:
            raise NotFoundError(f"no migration run {run_id} in {self.url}")
        return MigrationRun.model_validate_json(document)

    def runs(
        self,
        *,
        service: str | None = None,
        status: MigrationStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[MigrationRun]:
        """Runs newest first, filtered by a service they touched, their status and start time."""
        query = sa.select(_runs.c.document).order_by(_runs.c.started_at.desc(), _runs.c.id.desc())
        if service is not None:
            touched = sa.select(_steps.c.run_id).where(_steps.c.service == service)
            query = query.where(_runs.c.id.in_(touched))
        if status is not None:
            query = query.where(_runs.c.status == str(MigrationStatus(status)))
        if since is not None:
            query = query.where(_runs.c.started_at >= since.astimezone(UTC))
        if until is not None:
            query = query.where(_runs.c.started_at < until.astimezone(UTC))
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as connection:
            documents = connection.execute(query).scalars().all()
        return [MigrationRun.model_validate_json(document) for document in documents]

    def acquire_lock(self) -> str:
        """Take the migration lock and return the owner string written into it.

        Raises:
            MigrationLockedError: another coordinator holds it (the error names who and since
                when; :meth:`break_lock` frees a lock left by a crashed process).
        """
        owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    _locks.insert().values(
                        name=_LOCK_NAME, owner=owner, acquired_at=datetime.now(UTC)
                    )
                )
        except sa.exc.IntegrityError as exc:
            with self._engine.connect() as connection:
                holder = connection.execute(sa.select(_locks.c.owner, _locks.c.acquired_at)).first()
            who, since = (holder.owner, _utc(holder.acquired_at)) if holder else ("unknown", None)
            raise MigrationLockedError(
                f"another migration holds the lock in {self.url} (owner {who}, since {since}); "
                "if that process is gone, break the lock with `aegis-schema migrate --break-lock`",
                details={"owner": who},
            ) from exc
        return owner

    def release_lock(self, owner: str) -> None:
        """Release the lock if ``owner`` holds it."""
        with self._engine.begin() as connection:
            connection.execute(
                _locks.delete().where(_locks.c.name == _LOCK_NAME, _locks.c.owner == owner)
            )

    def break_lock(self) -> bool:
        """Free the lock whoever holds it; return whether there was one."""
        with self._engine.begin() as connection:
            return (
                connection.execute(_locks.delete().where(_locks.c.name == _LOCK_NAME)).rowcount > 0
            )
