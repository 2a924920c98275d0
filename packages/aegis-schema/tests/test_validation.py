"""Registry validation: each rule, with file and line; compatibility modes between versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.schema import (
    REGISTRY_RULES,
    CompatibilityMode,
    SchemaColumn,
    SchemaDefinition,
    SchemaRegistry,
    Severity,
    compatibility_problems,
    is_compatible,
)


def _write_policies(registry_dir: Path, old: str, new: str) -> SchemaRegistry:
    path = registry_dir / "policies.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return SchemaRegistry.load(registry_dir)


@pytest.mark.parametrize(
    ("old", "new", "rule", "line"),
    [
        (
            "references: users.users.id",
            "references: billing.users.id",
            "reference-unknown-service",
            38,
        ),
        (
            "references: users.users.id",
            "references: users.accounts.id",
            "reference-unknown-table",
            38,
        ),
        (
            "references: users.users.id",
            "references: users.users.uid",
            "reference-unknown-column",
            38,
        ),
        (
            "references: users.users.id",
            "references: users.users.deleted_at",
            "reference-not-unique",
            38,
        ),
        ("  - column: holder_id\n", "  - column: holder\n", "unknown-column", 37),
        ("columns: [status, starts_on]", "columns: [status, start]", "unknown-column", 42),
        ("  - name: created_at\n", "  - name: premium\n", "duplicate-column", 31),
        ("name: ix_policies_status_starts_on", "name: uq_policies_number", "duplicate-index", 41),
        ("    primary_key: true\n", "    nullable: false\n", "missing-primary-key", 7),
    ],
)
def test_each_registry_rule_names_file_line_and_rule(
    registry_dir: Path, old: str, new: str, rule: str, line: int
) -> None:
    problems = _write_policies(registry_dir, old, new).validate()
    problems = [p for p in problems if p.rule != "reference-type-mismatch"]
    assert [(p.rule, p.file, p.line) for p in problems] == [(rule, "policies.yaml", line)]
    assert rule in REGISTRY_RULES
    assert str(problems[0]).startswith(f"policies.yaml:{line}: ")


def test_a_reference_column_too_narrow_for_its_target(registry_dir: Path) -> None:
    registry = _write_policies(
        registry_dir,
        "  - name: holder_id\n    type: uuid\n",
        "  - name: holder_id\n    type: string(10)\n",
    )
    assert [p.rule for p in registry.validate()] == ["reference-type-mismatch"]


def test_a_missing_primary_key_is_only_a_warning(registry_dir: Path) -> None:
    registry = _write_policies(registry_dir, "    primary_key: true\n", "    nullable: false\n")
    assert registry.validate()[0].severity == Severity.WARNING


def _reference_policies_from_users(registry_dir: Path) -> int:
    """Close a users <-> policies cycle: users.users references policies.policies.id.

    Returns the line of that reference in users.yaml.
    """
    users = registry_dir / "users.yaml"
    users.write_text(
        users.read_text()
        + "  - name: main_policy\n    type: uuid\n"
        + "references:\n  - column: main_policy\n    references: policies.policies.id\n"
    )
    return users.read_text().splitlines().index("    references: policies.policies.id") + 1


def test_a_service_cycle_is_a_problem_naming_the_cycle(registry_dir: Path) -> None:
    _reference_policies_from_users(registry_dir)
    problems = SchemaRegistry.load(registry_dir).validate()
    assert [(p.rule, p.message) for p in problems] == [
        ("dependency-cycle", "services depend on each other: policies -> users -> policies")
    ]


def test_a_service_cycle_is_reported_at_the_reference_that_closes_it(examples_dir: Path) -> None:
    """Not at the first table of a service, which may have no reference at all."""
    closing = _reference_policies_from_users(examples_dir)
    problems = SchemaRegistry.load(examples_dir).validate()
    assert [(p.rule, p.file, p.line, p.subject) for p in problems] == [
        ("dependency-cycle", "users.yaml", closing, "users.users")
    ]


def _v(version: str, *columns: SchemaColumn, **changes: object) -> SchemaDefinition:
    base = [SchemaColumn(name="id", type="uuid", primary_key=True), *columns]
    return SchemaDefinition(service="s", table="t", version=version, columns=base, **changes)


_NAME = SchemaColumn(name="name", type="string(50)", nullable=False)
_CHANGES = {
    "add optional": (
        _v("1.0.0", _NAME),
        _v("2.0.0", _NAME, SchemaColumn(name="x", type="text")),
        set(),
    ),
    "add with default": (
        _v("1.0.0"),
        _v("2.0.0", SchemaColumn(name="x", type="text", nullable=False, default="a")),
        set(),
    ),
    "add required": (
        _v("1.0.0"),
        _v("2.0.0", SchemaColumn(name="x", type="text", nullable=False)),
        {"BACKWARD"},
    ),
    "drop optional": (_v("1.0.0", SchemaColumn(name="x", type="text")), _v("2.0.0"), set()),
    "drop required": (_v("1.0.0", _NAME), _v("2.0.0"), {"FORWARD"}),
    "widen": (
        _v("1.0.0", _NAME),
        _v("2.0.0", _NAME.model_copy(update={"type": "string(80)"})),
        {"FORWARD"},
    ),
    "narrow": (
        _v("1.0.0", _NAME),
        _v("2.0.0", _NAME.model_copy(update={"type": "string(10)"})),
        {"BACKWARD"},
    ),
    "change type": (
        _v("1.0.0", _NAME),
        _v("2.0.0", _NAME.model_copy(update={"type": "integer"})),
        {"BACKWARD", "FORWARD"},
    ),
    "make required": (
        _v("1.0.0", SchemaColumn(name="x", type="text")),
        _v("2.0.0", SchemaColumn(name="x", type="text", nullable=False)),
        {"BACKWARD"},
    ),
    "make optional": (
        _v("1.0.0", _NAME),
        _v("2.0.0", _NAME.model_copy(update={"nullable": True})),
        {"FORWARD"},
    ),
    "rename column": (
        _v("1.0.0", _NAME),
        _v("2.0.0", _NAME.model_copy(update={"name": "full_name", "renamed_from": "name"})),
        {"BACKWARD", "FORWARD"},
    ),
    "rename table": (_v("1.0.0"), _v("2.0.0", renamed_from="old_t"), {"BACKWARD", "FORWARD"}),
    "new primary key": (
        _v("1.0.0", _NAME),
        _v("2.0.0", _NAME.model_copy(update={"primary_key": True})),
        {"BACKWARD", "FORWARD"},
    ),
}


@pytest.mark.parametrize("change", sorted(_CHANGES))
def test_compatibility_modes_match_confluent_semantics(change: str) -> None:
    old, new, breaks = _CHANGES[change]
    for mode in CompatibilityMode:
        expected = {
            CompatibilityMode.BACKWARD: "BACKWARD" in breaks,
            CompatibilityMode.FORWARD: "FORWARD" in breaks,
            CompatibilityMode.FULL: bool(breaks),
            CompatibilityMode.NONE: False,
        }[mode]
        assert (not is_compatible(old, new, mode)) == expected, (change, mode)


def test_compatibility_problems_say_what_broke_and_where(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    narrowed = [
        c.model_copy(update={"type": "string(100)"}) if c.name == "email" else c
        for c in users.columns
    ]
    new = users.model_copy(update={"version": "2.0.0", "columns": tuple(narrowed)}).with_source(
        "users.yaml", {"columns.email.type": 13}
    )
    (problem,) = compatibility_problems(users, new, CompatibilityMode.FULL)
    assert problem.rule == "type-narrowed"
    assert (problem.file, problem.line) == ("users.yaml", 13)
    assert "string(320) -> string(100)" in problem.message
