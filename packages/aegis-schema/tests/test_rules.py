"""The migration rules one by one: which change raises which finding, and the live-data checks.

A rule that stops firing lets a migration lose data, so each rule is pinned with the finding it
gives (code, severity, column, dependents, the data check it asks for) and with a near miss that
must not fire. The data checks run on a real PostgreSQL database and on SQLite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from aegis.schema import (
    RULES,
    Finding,
    SchemaColumn,
    SchemaDefinition,
    SchemaIndex,
    SchemaRegistry,
    plan_migration,
)
from aegis.schema._problems import Problem, Severity
from aegis.schema._rules import analyze_plan, blocking, check_data, reference_findings
from aegis.testing import create_database, drop_database, unique_name

TableMaker = Callable[..., SchemaDefinition]
Row = tuple[str, str, str | None, tuple[str, ...], tuple[str, ...]]


def _findings(
    registry: SchemaRegistry, changes: list[SchemaDefinition], removed: tuple[str, ...] = ()
) -> list[Finding]:
    return analyze_plan(plan_migration(registry, changes, removed), registry.schemas())


def _rows(findings: list[Finding]) -> list[Row]:
    """Code, severity, column, dependents and data query of each finding."""
    return [(f.code, str(f.severity), f.column, f.dependents, f.query) for f in findings]


def _with(schema: SchemaDefinition, version: str, **changes: object) -> SchemaDefinition:
    return schema.model_copy(update={"version": version, **changes})


def _changed(
    schema: SchemaDefinition, column: str, version: str = "2.0.0", **update: object
) -> SchemaDefinition:
    columns = tuple(c.model_copy(update=update) if c.name == column else c for c in schema.columns)
    return _with(schema, version, columns=columns)


def test_every_rule_keeps_its_code_name_and_severity() -> None:
    assert {code: (rule.name, str(rule.severity)) for code, rule in RULES.items()} == {
        "DS101": ("drop-schema", "error"),
        "DS102": ("drop-table", "error"),
        "DS103": ("drop-column", "error"),
        "MF101": ("add-unique-index", "error"),
        "MF102": ("make-index-unique", "error"),
        "MF103": ("add-required-column", "error"),
        "MF104": ("make-column-required", "error"),
        "BC101": ("rename-table", "error"),
        "BC102": ("rename-column", "error"),
        "BC103": ("drop-add-looks-like-rename", "warning"),
        "CD101": ("drop-foreign-key", "warning"),
        "TC101": ("narrow-type", "error"),
        "TC102": ("change-type", "error"),
        "RI101": ("broken-reference", "error"),
    }


def test_a_finding_as_a_dict_names_its_rule_and_the_safe_way() -> None:
    finding = Finding(
        "DS103",
        "drop column users.users.name",
        Severity.ERROR,
        "users.users@2.0.0",
        "users",
        "users",
        column="name",
        dependents=("policies.policies.holder_id",),
        data="1 rows have a value",
    )
    assert finding.to_dict() == {
        "code": "DS103",
        "rule": "drop-column",
        "severity": "error",
        "message": "drop column users.users.name",
        "step": "users.users@2.0.0",
        "service": "users",
        "table": "users",
        "column": "name",
        "dependents": ["policies.policies.holder_id"],
        "data": "1 rows have a value",
        "suggestion": RULES["DS103"].safe_alternative,
    }


def test_only_errors_outside_allow_block() -> None:
    def finding(code: str, severity: Severity) -> Finding:
        return Finding(code, "m", severity, "s", "users", "users")

    error, warning, other = (
        finding("DS103", Severity.ERROR),
        finding("BC103", Severity.WARNING),
        finding("MF101", Severity.ERROR),
    )
    assert blocking([error, warning, other]) == [error, other]
    assert blocking([error, warning, other], {"DS103"}) == [other]
    assert blocking([warning]) == []


def test_dropping_every_table_of_a_service_is_ds101(
    registry: SchemaRegistry, make_table: TableMaker
) -> None:
    assert _rows(_findings(registry, [], ("users.users",))) == [
        ("DS102", "error", None, ("policies.policies.holder_id",), ("empty", "users")),
        ("DS101", "error", None, (), ()),
    ]
    (ds101,) = [f for f in _findings(registry, [], ("users.users",)) if f.code == "DS101"]
    assert (ds101.step_id, ds101.table, ds101.message) == (
        "users.users@dropped",
        "users",
        "every table of service users is dropped",
    )
    # A service that keeps a table, or changes one, is not dropped as a whole.
    two = registry.copy_with([make_table("users.teams")])
    assert "DS101" not in [f.code for f in _findings(two, [], ("users.users",))]
    users = two.get("users", "users")
    bumped = _with(users, "1.1.0", description="changed")
    kept = _findings(two, [bumped], ("users.teams",))
    assert "DS101" not in [f.code for f in kept]
    assert {f.code for f in _findings(two, [], ("users.users", "users.teams"))} == {
        "DS101",
        "DS102",
    }


def test_renaming_a_table_is_bc101_with_its_dependents(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    accounts = _with(users, "2.0.0", table="accounts", renamed_from="users")
    (finding,) = [f for f in _findings(registry, [accounts]) if f.code == "BC101"]
    assert (finding.message, str(finding.severity), finding.dependents) == (
        "rename table users to accounts",
        "error",
        ("policies.policies.holder_id",),
    )
    retyped = _changed(accounts, "id", type="text")
    (change,) = [f for f in _findings(registry, [retyped]) if f.code == "TC102"]
    assert change.dependents == ("policies.policies.holder_id",)


def test_dropping_a_column_is_ds103_and_names_only_its_own_dependents(
    registry: SchemaRegistry,
) -> None:
    users = registry.get("users", "users")
    no_name = _with(users, "2.0.0", columns=tuple(c for c in users.columns if c.name != "name"))
    assert _rows(_findings(registry, [no_name])) == [
        ("DS103", "error", "name", (), ("all_null", "users", "name")),
    ]
    (finding,) = _findings(registry, [no_name])
    assert finding.message == "drop column users.users.name"


def test_a_changed_referenced_column_names_its_dependents_but_not_the_table_itself(
    registry: SchemaRegistry,
) -> None:
    users = registry.get("users", "users")
    manager = SchemaColumn(name="manager_id", type="uuid")
    itself = {"column": "manager_id", "references": "users.users.id"}
    data = users.model_dump()
    data["columns"] = [*data["columns"], manager.model_dump()]
    data["references"] = [itself]
    linked = SchemaDefinition.model_validate(data)
    base = registry.copy_with([linked])
    changed = _changed(linked, "id", type="text")
    (finding,) = [f for f in _findings(base, [changed]) if f.code == "TC102"]
    assert finding.dependents == ("policies.policies.holder_id",)
    assert finding.message == "change users.users.id from uuid to text"


def test_adding_a_required_column_to_an_existing_table_is_mf103(
    registry: SchemaRegistry, make_table: TableMaker
) -> None:
    users = registry.get("users", "users")

    def add(column: SchemaColumn) -> list[Row]:
        return _rows(_findings(registry, [_with(users, "2.0.0", columns=(*users.columns, column))]))

    assert add(SchemaColumn(name="tenant", type="text", nullable=False)) == [
        ("MF103", "error", "tenant", (), ("empty", "users")),
    ]
    assert add(SchemaColumn(name="tenant", type="text")) == []
    assert add(SchemaColumn(name="tenant", type="text", nullable=False, default="x")) == []
    required = SchemaColumn(name="tenant", type="text", nullable=False)
    assert _findings(registry, [make_table("billing.invoices", "1.0.0", required)]) == []


def test_dropping_a_foreign_key_is_cd101(make_table: TableMaker) -> None:
    team = SchemaColumn(name="team_id", type="uuid")
    reference = {"column": "team_id", "references": "users.teams.id"}
    linked = make_table("users.users", "1.0.0", team, references=[reference])
    base = _registry_of(make_table("users.teams"), linked)
    plain = make_table("users.users", "2.0.0", team)
    assert _rows([f for f in _findings(base, [plain]) if f.code == "CD101"]) == [
        ("CD101", "warning", "team_id", (), ()),
    ]


def _registry_of(*schemas: SchemaDefinition) -> SchemaRegistry:
    return SchemaRegistry().copy_with(schemas)


def test_unique_indexes_on_an_existing_table_are_mf101_or_mf102(
    registry: SchemaRegistry, make_table: TableMaker
) -> None:
    users = registry.get("users", "users")
    unique_name_role = SchemaIndex(name="uq_users_name_role", columns=("name", "role"), unique=True)
    assert _rows(_findings(registry, [_with(users, "2.0.0", indexes=(unique_name_role,))])) == [
        ("MF101", "error", "name", (), ("duplicates", "users", "name", "role")),
    ]
    (finding,) = _findings(registry, [_with(users, "2.0.0", indexes=(unique_name_role,))])
    assert finding.message == "unique index uq_users_name_role on users.users (name, role)"
    plain = SchemaIndex(name="ix_users_name", columns=("name",))
    assert _findings(registry, [_with(users, "2.0.0", indexes=(plain,))]) == []
    indexed = registry.copy_with([_with(users, "2.0.0", indexes=(plain,))])
    made_unique = SchemaIndex(name="ix_users_name", columns=("name",), unique=True)
    other_columns = SchemaIndex(name="ix_users_name", columns=("name", "role"), unique=True)
    current = indexed.get("users", "users")
    assert [
        f.code for f in _findings(indexed, [_with(current, "3.0.0", indexes=(made_unique,))])
    ] == ["MF102"]
    assert [
        f.code for f in _findings(indexed, [_with(current, "3.0.0", indexes=(other_columns,))])
    ] == ["MF101"]
    # A unique index on a table being created has no rows to fail on.
    new_table = make_table("billing.invoices").model_copy(
        update={"indexes": (SchemaIndex(name="uq_invoices_id", columns=("id",), unique=True),)}
    )
    assert _findings(registry, [new_table]) == []


def test_an_index_made_unique_again_after_being_unique_is_mf101(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    unique = SchemaIndex(name="ix_users_name", columns=("name",), unique=True)
    uniquely = registry.copy_with([_with(users, "2.0.0", indexes=(unique,))])
    current = uniquely.get("users", "users")
    wider = SchemaIndex(name="ix_users_name", columns=("name", "email"), unique=True)
    assert [f.code for f in _findings(uniquely, [_with(current, "3.0.0", indexes=(wider,))])] == [
        "MF101"
    ]


def test_altering_a_column_checks_rename_type_and_nulls(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    renamed = _changed(users, "name", name="full_name", renamed_from="name")
    assert _rows(_findings(registry, [renamed])) == [("BC102", "error", "name", (), ())]
    (finding,) = _findings(registry, [renamed])
    assert finding.message == "rename column users.users.name to full_name"
    narrowed = _changed(users, "name", type="string(3)")
    assert _rows(_findings(registry, [narrowed])) == [
        ("TC101", "error", "name", (), ("longer_than", "users", "name", "3")),
    ]
    assert _findings(registry, [narrowed])[0].message == (
        "narrow users.users.name from string(200) to string(3)"
    )
    fewer_roles = _changed(users, "role", type="enum(admin, user)")
    assert _rows(_findings(registry, [fewer_roles])) == [("TC101", "error", "role", (), ())]
    assert _findings(registry, [_changed(users, "name", type="string(300)")]) == []
    assert _rows(_findings(registry, [_changed(users, "name", type="integer")])) == [
        ("TC102", "error", "name", (), ()),
    ]
    assert _rows(_findings(registry, [_changed(users, "deleted_at", nullable=False)])) == [
        ("MF104", "error", "deleted_at", (), ("nulls", "users", "deleted_at")),
    ]
    assert _findings(registry, [_changed(users, "deleted_at", nullable=False)])[0].message == (
        "make users.users.deleted_at NOT NULL"
    )
    assert _findings(registry, [_changed(users, "name", nullable=True)]) == []


def test_a_drop_and_add_of_the_same_type_looks_like_a_rename(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    kept = tuple(c for c in users.columns if c.name != "name")
    same = _with(users, "2.0.0", columns=(*kept, SchemaColumn(name="full", type="string(200)")))
    findings = [f for f in _findings(registry, [same]) if f.code == "BC103"]
    assert _rows(findings) == [("BC103", "warning", "name", (), ())]
    assert findings[0].message == "users.users: name dropped, full (string(200)) added: a rename?"
    other = _with(users, "2.0.0", columns=(*kept, SchemaColumn(name="full", type="text")))
    assert [f.code for f in _findings(registry, [other])] == ["DS103"]


def test_reference_problems_become_ri101_on_the_step_that_causes_them(
    registry: SchemaRegistry,
) -> None:
    users, policies = registry.get("users", "users"), registry.get("policies", "policies")
    plan = plan_migration(registry, [_changed(users, "id", type="text")])
    schemas = {s.key: s for s in registry.schemas()}

    def problem(rule: str, severity: Severity = Severity.ERROR) -> Problem:
        return Problem(rule, f"{rule} here", severity=severity, subject=policies.key)

    (finding,) = reference_findings(plan, [problem("reference-type-mismatch")], schemas)
    assert (finding.code, finding.step_id, finding.dependents, finding.message) == (
        "RI101",
        "users.users@2.0.0",
        ("policies.policies",),
        "reference-type-mismatch here",
    )
    assert reference_findings(plan, [problem("reference-x", Severity.WARNING)], schemas) == []
    assert reference_findings(plan, [problem("cycle")], schemas) == []
    both = plan_migration(
        registry, [_changed(users, "id", type="text"), _changed(policies, "holder_id", type="text")]
    )
    (own,) = reference_findings(both, [problem("reference-type-mismatch")], schemas)
    assert own.step_id == "policies.policies@2.0.0"
    unrelated = plan_migration(registry, [_changed(policies, "status", nullable=True)])
    lone = Problem("reference-x", "m", subject="users.users")
    assert reference_findings(unrelated, [lone], schemas) == []


@pytest.fixture(params=["postgresql", "sqlite"])
def connection(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Connection]:
    """A connection to a fresh database holding ``items (id, name, code, note)``."""
    server = ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rules.db'}"
    else:
        server = request.getfixturevalue("postgres_url")
        database = unique_name("schema_rules")
        url = create_database(server, database)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text("CREATE TABLE items (id INTEGER, name TEXT, code TEXT, note TEXT)")
            )
            connection.commit()
            yield connection
    finally:
        engine.dispose()
        if server:
            drop_database(server, database)


def _insert(connection: sa.Connection, *rows: tuple[int, str | None, str | None]) -> None:
    for id_, name, code in rows:
        connection.execute(
            sa.text("INSERT INTO items (id, name, code) VALUES (:id, :name, :code)"),
            {"id": id_, "name": name, "code": code},
        )
    connection.commit()


def _checked(connection: sa.Connection, *query: str) -> tuple[str, str | None]:
    finding = Finding("DS103", "m", Severity.ERROR, "s", "svc", "items", query=query)
    checked = check_data(finding, connection)
    return str(checked.severity), checked.data


def test_a_finding_without_a_data_check_is_returned_as_it_is(connection: sa.Connection) -> None:
    finding = Finding("BC103", "m", Severity.WARNING, "s", "svc", "items")
    assert check_data(finding, connection) is finding
    assert _checked(connection, "empty", "missing") == (
        "error",
        "table not found in the database; not checked",
    )


def test_empty_and_all_null_checks_count_rows(connection: sa.Connection) -> None:
    assert _checked(connection, "empty", "items") == ("warning", "the table is empty")
    assert _checked(connection, "all_null", "items", "name") == ("warning", "no row has a value")
    _insert(connection, (1, None, None))
    assert _checked(connection, "empty", "items") == ("error", "the table has 1 rows")
    assert _checked(connection, "all_null", "items", "name") == ("warning", "no row has a value")
    _insert(connection, (2, "b", None), (3, "c", None))
    assert _checked(connection, "all_null", "items", "name") == ("error", "2 rows have a value")
    # A check that finds nothing at risk downgrades even an error; rows at risk upgrade a warning.
    warning = Finding("DS102", "m", Severity.WARNING, "s", "svc", "items", query=("empty", "items"))
    assert check_data(warning, connection).severity == Severity.ERROR


def test_nulls_and_length_checks_count_the_values_that_break(connection: sa.Connection) -> None:
    _insert(connection, (1, "abc", "x"))
    assert _checked(connection, "nulls", "items", "code") == ("warning", "no row is NULL")
    assert _checked(connection, "longer_than", "items", "name", "3") == (
        "warning",
        "every value fits",
    )
    _insert(connection, (2, "abcd", None), (3, "abcde", None), (4, None, None))
    assert _checked(connection, "nulls", "items", "code") == ("error", "3 rows are NULL")
    assert _checked(connection, "longer_than", "items", "name", "3") == (
        "error",
        "2 values are longer",
    )
    assert _checked(connection, "longer_than", "items", "name", "5") == (
        "warning",
        "every value fits",
    )


def test_duplicates_count_repeated_values_but_not_nulls(connection: sa.Connection) -> None:
    _insert(connection, (1, "a", "x"), (2, "a", "y"), (3, None, "x"), (4, None, "x"))
    assert _checked(connection, "duplicates", "items", "name", "code") == (
        "warning",
        "no duplicates now",
    )
    assert _checked(connection, "duplicates", "items", "code", "name") == (
        "warning",
        "no duplicates now",
    )
    _insert(connection, (5, "a", "x"), (6, "b", "z"), (7, "b", "z"), (8, "b", "z"))
    assert _checked(connection, "duplicates", "items", "name", "code") == (
        "error",
        "2 duplicated values",
    )
    assert _checked(connection, "duplicates", "items", "name") == ("error", "2 duplicated values")


def test_ds101_goes_to_the_dropped_service_and_a_new_table_keeps_the_service(
    registry: SchemaRegistry, make_table: TableMaker
) -> None:
    teams = registry.copy_with([make_table("users.teams")])
    plan = plan_migration(teams, [make_table("billing.invoices")], ["users.users", "users.teams"])
    findings = analyze_plan(plan, teams.schemas())
    (ds101,) = [f for f in findings if f.code == "DS101"]
    assert (ds101.service, ds101.step_id) == ("users", plan.steps[1].id)
    assert plan.steps[0].service == "billing"
    assert {f.table for f in findings if f.code == "DS102"} == {"users", "teams"}
    # Every current table dropped but a new one created: the service lives on.
    replaced = plan_migration(teams, [make_table("users.people")], ["users.users", "users.teams"])
    assert "DS101" not in [f.code for f in analyze_plan(replaced, teams.schemas())]


def test_dependents_are_only_the_references_to_the_changed_table(
    registry: SchemaRegistry, make_table: TableMaker
) -> None:
    thing = SchemaColumn(name="thing_id", type="uuid")
    wider = registry.copy_with(
        [
            make_table("zeta.things"),
            make_table(
                "audit.logs",
                "1.0.0",
                thing,
                references=[{"column": "thing_id", "references": "zeta.things.id"}],
            ),
        ]
    )
    (dropped,) = [f for f in _findings(wider, [], ("users.users",)) if f.code == "DS102"]
    assert dropped.dependents == ("policies.policies.holder_id",)


def test_a_column_renamed_to_a_name_sorting_later_is_bc102(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    renamed = _changed(users, "name", name="zname", renamed_from="name")
    assert [f.code for f in _findings(registry, [renamed])] == ["BC102"]


def test_other_problems_before_a_reference_problem_do_not_hide_it(
    registry: SchemaRegistry,
) -> None:
    users = registry.get("users", "users")
    plan = plan_migration(registry, [_changed(users, "id", type="text")])
    schemas = {s.key: s for s in registry.schemas()}
    problems = [
        Problem("dependency-cycle", "m", subject="policies.policies"),
        Problem("reference-type-mismatch", "m", subject="policies.policies"),
    ]
    assert [f.code for f in reference_findings(plan, problems, schemas)] == ["RI101"]


def test_a_finding_cannot_be_changed_in_place() -> None:
    finding = Finding("DS103", "m", Severity.ERROR, "s", "users", "users")
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.severity = Severity.WARNING  # type: ignore[misc]
    assert len({finding, replace(finding)}) == 1


def test_references_to_tables_sorting_before_the_changed_one_are_not_dependents(
    registry: SchemaRegistry, make_table: TableMaker
) -> None:
    thing = SchemaColumn(name="thing_id", type="uuid")
    ref = {"column": "thing_id", "references": "alpha.things.id"}
    wider = registry.copy_with(
        [make_table("alpha.things"), make_table("audit.logs", "1.0.0", thing, references=[ref])]
    )
    (dropped,) = [f for f in _findings(wider, [], ("users.users",)) if f.code == "DS102"]
    assert dropped.dependents == ("policies.policies.holder_id",)


def test_an_equal_column_name_from_another_string_is_no_rename(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    same_name = "".join(["na", "me"])
    widened = _changed(users, "name", name=same_name, type="string(300)")
    assert _findings(registry, [widened]) == []


def test_rules_cannot_be_changed_and_findings_compare_without_their_query() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RULES["DS103"].severity = Severity.WARNING  # type: ignore[misc]
    checked = Finding("DS102", "m", Severity.ERROR, "s", "users", "users", query=("empty", "t"))
    assert checked == replace(checked, query=())


def test_a_drop_and_two_adds_of_its_type_name_the_first_added(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    kept = tuple(c for c in users.columns if c.name != "name")
    added = (
        SchemaColumn(name="first", type="string(200)"),
        SchemaColumn(name="second", type="string(200)"),
    )
    (finding,) = [
        f
        for f in _findings(registry, [_with(users, "2.0.0", columns=(*kept, *added))])
        if f.code == "BC103"
    ]
    assert finding.message == "users.users: name dropped, first (string(200)) added: a rename?"
