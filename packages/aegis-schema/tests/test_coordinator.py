"""The coordinator on real databases: PostgreSQL (two databases) and SQLite (two files)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aegis.core.errors import ConfigurationError, ConflictError
from aegis.schema import (
    HistoryStore,
    ImpactReport,
    MigrationBlockedError,
    MigrationCoordinator,
    MigrationFailedError,
    MigrationLockedError,
    MigrationStatus,
    MigrationStep,
    SchemaColumn,
    SchemaDefinition,
    SchemaReference,
    SchemaRegistry,
)
from aegis.schema._engines import create_engine


@pytest.fixture
def history(tmp_path: Path) -> Iterator[HistoryStore]:
    store = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")
    yield store
    store.close()


@pytest.fixture
def deployed(
    registry: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> SchemaRegistry:
    """The registry's tables created in each service's database by the coordinator itself."""
    with MigrationCoordinator(registry, service_urls, history=history) as coordinator:
        run = coordinator.bootstrap()
    assert run.status == MigrationStatus.COMPLETED
    return registry


def _columns(url: str, table: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        return {c["name"]: c for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _indexes(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {str(index["name"]) for index in sa.inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
    engine.dispose()


def _with(
    schema: SchemaDefinition, version: str, *extra: SchemaColumn, drop: str = "", **changes: object
) -> SchemaDefinition:
    columns = tuple(c for c in schema.columns if c.name != drop) + extra
    return schema.model_copy(update={"version": version, "columns": columns, **changes})


_POLICY = (
    "INSERT INTO policies (id, number, holder_id, premium, starts_on) "
    "VALUES ('{id}', '{number}', '{holder}', 10, '2026-01-01')"
)
_HOLDER = "6f0c1c56-0d7a-4a4e-9b44-3c0b6f0e8d11"


def _policy(number: str, index: int) -> str:
    return _POLICY.format(id=f"00000000-0000-0000-0000-{index:012d}", number=number, holder=_HOLDER)


def test_step_two_fails_and_step_one_is_rolled_back_for_real(
    deployed: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> None:
    _sql(service_urls["policies"], _policy("P-1", 1))
    users, policies = deployed.get("users", "users"), deployed.get("policies", "policies")
    new_users = _with(users, "1.1.0", SchemaColumn(name="display_name", type="string(100)"))
    # NOT NULL without a default on a table with a row: allowed here, so the database refuses it.
    channel = SchemaColumn(name="channel", type="string(20)", nullable=False)
    new_policies = _with(policies, "2.0.0", channel)
    seen: list[tuple[str, str, int, int]] = []

    def progress(step: MigrationStep, position: int, total: int) -> None:
        seen.append((step.id, str(step.status), position, total))

    with MigrationCoordinator(
        deployed, service_urls, history=history, allow={"MF103"}
    ) as coordinator:
        plan = coordinator.plan_migration([new_policies, new_users])
        assert [step.service for step in plan.steps] == ["users", "policies"]
        with pytest.raises(MigrationFailedError, match="1 of 1 completed step") as caught:
            coordinator.execute(plan, progress=progress)
    run = caught.value.run
    assert caught.value.code == "SCHEMA_MIGRATION_FAILED"
    assert run.status == MigrationStatus.FAILED
    assert [(s.id, s.status) for s in run.plan.steps] == [
        ("users.users@1.1.0", MigrationStatus.ROLLED_BACK),
        ("policies.policies@2.0.0", MigrationStatus.FAILED),
    ]
    assert "channel" in (run.plan.steps[1].error or "") or "NOT NULL" in (
        run.plan.steps[1].error or ""
    )
    assert run.log[-1] == "users.users@1.1.0: rolled back"
    assert seen == [
        ("users.users@1.1.0", "RUNNING", 1, 2),
        ("users.users@1.1.0", "COMPLETED", 1, 2),
        ("policies.policies@2.0.0", "RUNNING", 2, 2),
        ("policies.policies@2.0.0", "FAILED", 2, 2),
    ]
    # The schema really is back where it was, in both databases.
    assert "display_name" not in _columns(service_urls["users"], "users")
    assert "channel" not in _columns(service_urls["policies"], "policies")
    assert set(_columns(service_urls["users"], "users")) == {c.name for c in users.columns}
    stored = history.get(run.id)
    assert stored.status == MigrationStatus.FAILED
    with MigrationCoordinator(deployed, service_urls, history=history) as coordinator:
        findings = coordinator.validate_migration(stored.plan)
    report = ImpactReport(stored.plan, tuple(findings), deployed.graph(), stored).to_markdown()
    assert f"Run {run.id} (migrate): **FAILED**" in report
    assert "## policies.policies 1.0.0 → 2.0.0 (FAILED)" in report
    assert "- **MF103 add-required-column** (error)" in report
    assert "  - data: the table has 1 rows" in report
    assert [s.status for s in stored.plan.steps] == [
        MigrationStatus.ROLLED_BACK,
        MigrationStatus.FAILED,
    ]


def test_a_completed_run_is_stored_and_can_be_rolled_back(
    deployed: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> None:
    users = deployed.get("users", "users")
    columns = [
        c.model_copy(update={"name": "full_name", "renamed_from": "name", "type": "string(300)"})
        if c.name == "name"
        else c.model_copy(update={"nullable": False, "default": "CURRENT_TIMESTAMP"})
        if c.name == "deleted_at"
        else c.model_copy(update={"index": True})
        if c.name == "role"
        else c
        for c in users.columns
    ]
    locale = SchemaColumn(name="locale", type="string(8)", nullable=False, default="en")
    new_users = _with(users, "2.0.0", columns=(*columns, locale))
    with MigrationCoordinator(
        deployed, service_urls, history=history, allow={"BC102"}
    ) as coordinator:
        run = coordinator.execute(coordinator.plan_migration([new_users]))
        assert run.status == MigrationStatus.COMPLETED
        after = _columns(service_urls["users"], "users")
        assert {"full_name", "locale"} <= set(after)
        assert "name" not in after
        assert after["deleted_at"]["nullable"] is False
        assert "ix_users_role" in _indexes(service_urls["users"], "users")
        undo = coordinator.rollback(run.id)
        assert (undo.kind, undo.status, undo.rolls_back) == (
            "rollback",
            MigrationStatus.COMPLETED,
            run.id,
        )
        with pytest.raises(ConflictError, match="only a completed migration"):
            coordinator.rollback(run.id)
    restored = _columns(service_urls["users"], "users")
    assert set(restored) == {c.name for c in users.columns}
    assert restored["deleted_at"]["nullable"] is True
    assert "ix_users_role" not in _indexes(service_urls["users"], "users")
    assert history.get(run.id).status == MigrationStatus.ROLLED_BACK


def test_errors_block_unless_allowed_and_live_data_regrades_them(
    deployed: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> None:
    policies = deployed.get("policies", "policies")
    dropped = _with(policies, "2.0.0", drop="starts_on", indexes=())
    with MigrationCoordinator(deployed, service_urls, history=history) as coordinator:
        plan = coordinator.plan_migration([dropped])
        static = coordinator.validate_migration(plan, check_data=False)
        assert [(f.code, str(f.severity)) for f in static] == [("DS103", "error")]
        # An empty table: the column holds no values, so nothing is lost.
        (empty,) = coordinator.validate_migration(plan)
        assert (empty.severity, empty.data) == ("warning", "no row has a value")
        _sql(service_urls["policies"], _policy("P-1", 1))
        with pytest.raises(MigrationBlockedError, match="DS103") as caught:
            coordinator.execute(plan)
        assert caught.value.findings[0].data == "1 rows have a value"
        run = coordinator.execute(plan, allow={"DS103"})
    assert run.status == MigrationStatus.COMPLETED
    assert "starts_on" not in _columns(service_urls["policies"], "policies")


@pytest.mark.parametrize(
    ("change", "code", "clean", "dirty"),
    [
        ("unique", "MF101", "no duplicates now", "1 duplicated values"),
        ("required", "MF104", "no row is NULL", "2 rows are NULL"),
        ("narrow", "TC101", "every value fits", "2 values are longer"),
        ("add_required", "MF103", "the table is empty", "the table has 2 rows"),
        ("drop_table", "DS102", "the table is empty", "the table has 2 rows"),
    ],
)
def test_data_checks_downgrade_safe_changes_and_count_what_would_break(  # noqa: PLR0917 - fixtures
    deployed: SchemaRegistry,
    service_urls: dict[str, str],
    history: HistoryStore,
    change: str,
    code: str,
    clean: str,
    dirty: str,
) -> None:
    users = deployed.get("users", "users")
    changed = {
        "unique": lambda c: c.model_copy(update={"unique": True}) if c.name == "name" else c,
        "required": lambda c: (
            c.model_copy(update={"nullable": False}) if c.name == "deleted_at" else c
        ),
        "narrow": lambda c: c.model_copy(update={"type": "string(3)"}) if c.name == "name" else c,
    }
    removed: list[str] = []
    if change in changed:
        new = [_with(users, "2.0.0", columns=tuple(map(changed[change], users.columns)))]
    elif change == "add_required":
        new = [_with(users, "2.0.0", SchemaColumn(name="tenant", type="text", nullable=False))]
    else:
        new, removed = [], ["users.users"]
    with MigrationCoordinator(deployed, service_urls, history=history) as coordinator:
        plan = coordinator.plan_migration(new, removed)
        findings = [f for f in coordinator.validate_migration(plan) if f.code == code]
        assert [(str(f.severity), f.data) for f in findings] == [("warning", clean)]
        insert = (
            "INSERT INTO users (id, email, name, password_hash) "
            "VALUES ('{id}', '{email}', 'same name', 'x')"
        )
        _sql(
            service_urls["users"],
            insert.format(id="00000000-0000-0000-0000-000000000001", email="a@example.com"),
            insert.format(id="00000000-0000-0000-0000-000000000002", email="b@example.com"),
        )
        findings = [f for f in coordinator.validate_migration(plan) if f.code == code]
    assert [(str(f.severity), f.data) for f in findings] == [("error", dirty)]


def test_two_coordinators_cannot_run_at_once(
    deployed: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> None:
    users = deployed.get("users", "users")
    owner = history.acquire_lock()
    with MigrationCoordinator(deployed, service_urls, history=history.url) as other:
        plan = other.plan_migration([_with(users, "1.1.0", SchemaColumn(name="x", type="text"))])
        with pytest.raises(
            MigrationLockedError, match="another migration holds the lock"
        ) as caught:
            other.execute(plan)
        assert caught.value.code == "SCHEMA_MIGRATION_LOCKED"
        assert "x" not in _columns(service_urls["users"], "users")
        history.release_lock(owner)
        assert other.execute(plan).status == MigrationStatus.COMPLETED
    assert history.break_lock() is False
    history.acquire_lock()
    assert history.break_lock() is True


def test_a_dry_run_prints_sql_and_touches_nothing(
    deployed: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> None:
    users = deployed.get("users", "users")
    with MigrationCoordinator(deployed, service_urls, history=history) as coordinator:
        plan = coordinator.plan_migration([_with(users, "2.0.0", drop="deleted_at")])
        run = coordinator.execute(plan, dry_run=True)
    assert "DROP COLUMN deleted_at" in run.log[0] or "_alembic_tmp_users" in run.log[0]
    assert run.log[0].startswith("-- users.users@2.0.0\n")
    assert "deleted_at" in _columns(service_urls["users"], "users")
    assert history.runs() != []
    assert all(r.plan.id != plan.id for r in history.runs())


def test_history_is_queryable_by_service_status_and_time(
    deployed: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> None:
    policies = deployed.get("policies", "policies")
    with MigrationCoordinator(deployed, service_urls, history=history) as coordinator:
        run = coordinator.execute(
            coordinator.plan_migration(
                [_with(policies, "1.1.0", SchemaColumn(name="note", type="text"))]
            )
        )
    now = datetime.now(UTC)
    assert [r.id for r in history.runs(service="policies", limit=1)] == [run.id]
    assert len(history.runs(service="policies")) == 2  # the set-up created the table too
    assert len(history.runs(service="users")) == 1
    assert len(history.runs(status="COMPLETED")) == 2
    assert history.runs(status=MigrationStatus.FAILED) == []
    assert (
        len(history.runs(since=now - timedelta(minutes=5), until=now + timedelta(minutes=5))) == 2
    )
    assert history.runs(since=now + timedelta(minutes=5)) == []


def test_a_service_without_a_database_url_is_a_configuration_error(
    registry: SchemaRegistry, history: HistoryStore
) -> None:
    users = registry.get("users", "users")
    with MigrationCoordinator(registry, {}, history=history) as coordinator:
        plan = coordinator.plan_migration(
            [_with(users, "1.1.0", SchemaColumn(name="x", type="text"))]
        )
        assert "ALTER TABLE users ADD COLUMN x TEXT" in coordinator.plan_sql(plan)[plan.steps[0].id]
        with pytest.raises(ConfigurationError, match="--url users="):
            coordinator.execute(plan)


def test_foreign_keys_defaults_and_table_renames_inside_one_service(
    service_urls: dict[str, str], history: HistoryStore, make_table: Any
) -> None:
    teams = make_table(
        "users.teams",
        "1.0.0",
        SchemaColumn(name="active", type="boolean", nullable=False, default=True),
    )
    team_id = SchemaColumn(name="team_id", type="uuid")
    members = make_table(
        "users.members", "1.0.0", team_id, SchemaColumn(name="rank", type="integer", default=3)
    )
    linked = members.model_copy(
        update={
            "version": "1.1.0",
            "references": (
                SchemaReference(column="team_id", references="users.teams.id", on_delete="CASCADE"),
            ),
        }
    )
    with MigrationCoordinator(SchemaRegistry(), service_urls, history=history) as bootstrap:
        bootstrap.execute(bootstrap.plan_migration([teams, members]))
    registry = SchemaRegistry()
    registry.register(teams)
    registry.register(members)
    url = service_urls["users"]

    def foreign_keys(table: str) -> list[str | None]:
        engine = create_engine(url)
        try:
            return [fk["name"] for fk in sa.inspect(engine).get_foreign_keys(table)]
        finally:
            engine.dispose()

    with MigrationCoordinator(registry, service_urls, history=history) as coordinator:
        add = coordinator.execute(coordinator.plan_migration([linked]))
        assert foreign_keys("members") == ["fk_members_team_id"]
        registry.register(linked)
        renamed = linked.model_copy(
            update={
                "version": "2.0.0",
                "table": "people",
                "renamed_from": "members",
                "references": (),
            }
        )
        rename = coordinator.execute(coordinator.plan_migration([renamed]), allow={"BC101"})
        assert foreign_keys("people") == []
        assert set(_columns(url, "people")) == {"id", "team_id", "rank"}
        coordinator.rollback(rename.id)
        assert foreign_keys("members") == ["fk_members_team_id"]
        coordinator.rollback(add.id)
        assert foreign_keys("members") == []
    _sql(url, "INSERT INTO teams (id) VALUES ('00000000-0000-0000-0000-000000000001')")
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT active FROM teams")).scalar_one() in (True, 1)
    engine.dispose()


def test_bootstrap_creates_every_table_in_dependency_order_as_a_recorded_run(
    registry: SchemaRegistry, service_urls: dict[str, str], history: HistoryStore
) -> None:
    with MigrationCoordinator(registry, service_urls, history=history) as coordinator:
        dry = coordinator.bootstrap(dry_run=True)
        assert "CREATE TABLE users" in dry.log[0]
        assert history.runs() == []
        assert "users" not in _tables(service_urls["users"])

        run = coordinator.bootstrap()
        assert [step.id for step in run.plan.steps] == [
            "users.users@1.0.0",
            "policies.policies@1.0.0",
        ]
        assert run.status == MigrationStatus.COMPLETED
        assert [r.id for r in history.runs()] == [run.id]
        assert _tables(service_urls["users"]) == ["users"]
        assert _tables(service_urls["policies"]) == ["policies"]

        with pytest.raises(MigrationFailedError) as failed:  # the tables exist already
            coordinator.bootstrap()
        assert failed.value.run.plan.steps[0].status == MigrationStatus.FAILED
        assert _tables(service_urls["users"]) == ["users"]

        coordinator.rollback(run.id)
    assert _tables(service_urls["users"]) == _tables(service_urls["policies"]) == []


def test_a_lone_integer_key_is_numbered_by_the_database(
    service_urls: dict[str, str], history: HistoryStore
) -> None:
    events = SchemaDefinition(
        service="users",
        table="events",
        version="1.0.0",
        columns=(
            SchemaColumn(name="position", type="bigint", primary_key=True),
            SchemaColumn(name="name", type="text", nullable=False),
        ),
    )
    registry = SchemaRegistry()
    registry.register(events)
    with MigrationCoordinator(registry, service_urls, history=history) as coordinator:
        coordinator.bootstrap()
    url = service_urls["users"]
    _sql(url, "INSERT INTO events (name) VALUES ('a')", "INSERT INTO events (name) VALUES ('b')")
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT position, name FROM events ORDER BY 1")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [(1, "a"), (2, "b")]
    # SQLite numbers rows only through an INTEGER key (its 64-bit rowid); PostgreSQL: BIGSERIAL
    kind = "INTEGER" if url.startswith("sqlite") else "BIGINT"
    assert str(_columns(url, "events")["position"]["type"]) == kind


def test_current_timestamp_keeps_the_fraction_of_a_second(
    service_urls: dict[str, str], history: HistoryStore, make_table: Any
) -> None:
    now = SchemaColumn(name="at", type="timestamp(tz)", nullable=False, default="CURRENT_TIMESTAMP")
    table = make_table("users.clock", "1.0.0", now)
    registry = SchemaRegistry()
    registry.register(table)
    with MigrationCoordinator(SchemaRegistry(), history=history) as offline:
        create = offline.plan_migration([table])
        sqlite_sql = offline.plan_sql(create, dialect="sqlite")[create.steps[0].id]
        postgres_sql = offline.plan_sql(create, dialect="postgresql")[create.steps[0].id]
    assert "at DATETIME DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')) NOT NULL" in sqlite_sql
    assert "at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL" in postgres_sql
    with MigrationCoordinator(registry, service_urls, history=history) as coordinator:
        coordinator.bootstrap()
    url = service_urls["users"]
    _sql(url, "INSERT INTO clock (id) VALUES ('00000000-0000-0000-0000-000000000001')")
    engine = create_engine(url)
    at = sa.column("at", sa.DateTime(timezone=True))
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT CAST(at AS TEXT) FROM clock")).scalar_one()
        read = connection.execute(sa.select(at).select_from(sa.table("clock"))).scalar_one()
        # The value read back, bound again, finds its row: the layouts agree.
        same = sa.select(sa.func.count()).select_from(sa.table("clock")).where(at >= read)
        assert connection.execute(same).scalar_one() == 1
    engine.dispose()
    if url.startswith("sqlite"):  # SQLAlchemy's own layout, not CURRENT_TIMESTAMP's seconds
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}000", stored), stored
    else:
        assert str(_columns(url, "clock")["at"]["default"]) == "CURRENT_TIMESTAMP"


def _tables(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
