"""Diffing two versions of a table into operations, and planning ordered steps across services."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aegis.core.errors import NotFoundError
from aegis.schema import (
    MigrationPlan,
    SchemaColumn,
    SchemaDefinition,
    SchemaIndex,
    SchemaRegistry,
    SchemaVersionConflictError,
    diff_schemas,
    plan_migration,
)

TableMaker = Callable[..., SchemaDefinition]


def _bump(schema: SchemaDefinition, version: str, **changes: object) -> SchemaDefinition:
    return schema.model_copy(update={"version": version, **changes})


def _describe(old: SchemaDefinition | None, new: SchemaDefinition | None) -> list[str]:
    return [operation.describe() for operation in diff_schemas(old, new)]


def test_create_and_drop_whole_tables(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    assert _describe(None, users) == ["create table users (7 columns)"]
    assert _describe(users, None) == ["drop table users"]
    assert diff_schemas(None, None) == []
    assert diff_schemas(users, users) == []


def test_column_changes_become_alter_drop_and_add(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    updates = {
        "name": {"name": "full_name", "renamed_from": "name", "type": "string(300)"},
        "role": {"default": "viewer", "description": "documented"},
    }
    columns = [
        column.model_copy(update=updates.get(column.name, {}))
        for column in users.columns
        if column.name != "deleted_at"
    ]
    columns.append(SchemaColumn(name="locale", type="string(10)", nullable=False, default="en"))
    new = _bump(users, "2.0.0", columns=tuple(columns))
    assert _describe(users, new) == [
        "alter column users.name: name name -> full_name, type string(200) -> string(300)",
        "alter column users.role: default user -> viewer",
        "drop column users.deleted_at",
        "add column users.locale string(10) NOT NULL",
    ]


def test_index_and_unique_changes_drop_and_create_indexes(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    columns = [
        c.model_copy(update={"unique": False, "index": True})
        if c.name == "email"
        else c.model_copy(update={"index": False})
        if c.name == "created_at"
        else c
        for c in users.columns
    ]
    new = _bump(
        users,
        "2.0.0",
        columns=tuple(columns),
        indexes=(SchemaIndex(name="ix_users_name", columns=("name",)),),
    )
    assert _describe(users, new) == [
        "drop index uq_users_email on users",
        "drop index ix_users_created_at on users",
        "create index ix_users_name on users (name)",
        "create index ix_users_email on users (email)",
    ]


def test_foreign_keys_inside_a_service_are_added_and_dropped(make_table: TableMaker) -> None:
    team = SchemaColumn(name="team_id", type="uuid")
    plain = make_table("users.users", "1.0.0", team)
    linked = make_table(
        "users.users",
        "1.1.0",
        team,
        references=[{"column": "team_id", "references": "users.teams.id", "on_delete": "cascade"}],
    )
    assert _describe(plain, linked) == ["add foreign key users.team_id -> users.teams.id"]
    assert _describe(linked, plain) == ["drop foreign key users.team_id -> users.teams.id"]
    across = make_table(
        "users.users",
        "1.1.0",
        team,
        references=[{"column": "team_id", "references": "teams.teams.id"}],
    )
    assert _describe(plain, across) == []


def test_an_unchanged_foreign_key_is_kept_when_the_table_changes(make_table: TableMaker) -> None:
    # Built twice, so the two versions hold equal but distinct references: an unchanged foreign
    # key must not be dropped and made again (it would revalidate every row under a lock).
    team = SchemaColumn(name="team_id", type="uuid")
    reference = {"column": "team_id", "references": "users.teams.id", "on_delete": "cascade"}
    before = make_table("users.users", "1.0.0", team, references=[dict(reference)])
    note = SchemaColumn(name="note", type="text")
    after = make_table("users.users", "1.1.0", team, note, references=[dict(reference)])
    assert before.references[0] is not after.references[0]
    assert _describe(before, after) == ["add column users.note text NULL"]


def test_a_renamed_table_is_renamed_and_its_named_indexes_follow(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    accounts = _bump(users, "2.0.0", table="accounts", renamed_from="users")
    assert _describe(users, accounts) == [
        "rename table users to accounts",
        "drop index uq_users_email on accounts",
        "drop index ix_users_created_at on accounts",
        "create unique index uq_accounts_email on accounts (email)",
        "create index ix_accounts_created_at on accounts (created_at)",
    ]


def test_a_rename_to_a_name_sorting_later_is_a_rename(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    people = _bump(users, "2.0.0", table="zz_people", renamed_from="users")
    assert _describe(users, people)[0] == "rename table users to zz_people"
    back = _bump(people, "3.0.0", table="users", renamed_from="zz_people")
    assert _describe(people, back)[0] == "rename table zz_people to users"


def test_every_operation_inverts_to_the_original(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    new = _bump(users, "2.0.0", columns=(*users.columns[:-1], SchemaColumn(name="x", type="text")))
    operations = diff_schemas(users, new)
    assert [op.inverse().inverse() for op in operations] == operations


def test_a_plan_orders_dependencies_first_and_lists_affected_services(
    registry: SchemaRegistry,
) -> None:
    users, policies = registry.get("users", "users"), registry.get("policies", "policies")
    new_users = _bump(users, "1.1.0", columns=(*users.columns, SchemaColumn(name="x", type="text")))
    new_policies = _bump(
        policies, "1.1.0", columns=(*policies.columns, SchemaColumn(name="y", type="text"))
    )
    plan = plan_migration(registry, [new_policies, new_users])
    assert [step.id for step in plan.steps] == ["users.users@1.1.0", "policies.policies@1.1.0"]
    assert plan.steps[1].depends_on == ["users.users@1.1.0"]
    assert plan.changed_services == ["policies", "users"]
    only_users = plan_migration(registry, [new_users])
    assert only_users.affected_services == ["policies", "users"]
    assert only_users.step("users.users@1.1.0").from_version == "1.0.0"
    with pytest.raises(NotFoundError):
        only_users.step("nope")
    assert MigrationPlan.model_validate_json(plan.model_dump_json()) == plan


def test_a_plan_drops_dependents_first_and_creates_new_tables(
    registry: SchemaRegistry, make_table: TableMaker
) -> None:
    plan = plan_migration(
        registry, [make_table("billing.invoices")], removed=["users.users", "policies.policies"]
    )
    assert [step.id for step in plan.steps] == [
        "billing.invoices@1.0.0",
        "policies.policies@dropped",
        "users.users@dropped",
    ]
    assert plan.steps[2].to_version is None
    assert [op.describe() for op in plan.steps[2].down] == ["create table users (7 columns)"]


def test_a_plan_refuses_versions_that_do_not_increase(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaVersionConflictError, match="must be higher"):
        plan_migration(registry, [registry.get("users", "users")])
    with pytest.raises(NotFoundError):
        plan_migration(registry, [], removed=["users.nope"])
