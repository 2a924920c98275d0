"""The registry: loading YAML with lines, round trips that keep comments, versions and history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.core.errors import NotFoundError
from aegis.schema import (
    CompatibilityMode,
    SchemaColumn,
    SchemaDefinition,
    SchemaRegistry,
    SchemaValidationError,
    SchemaVersionConflictError,
)

TableMaker = Callable[..., SchemaDefinition]


def test_a_registry_loads_with_its_services_and_lines(registry: SchemaRegistry) -> None:
    assert [schema.key for schema in registry.schemas()] == ["policies.policies", "users.users"]
    assert registry.services() == ["policies", "users"]
    assert registry.compatibility == CompatibilityMode.BACKWARD
    users = registry.get("users", "users")
    assert users.source_file == "users.yaml"
    assert users.line_of("columns.email.type") == 13
    assert users.line_of("columns.email.nosuchfield") == users.line_of("columns.email") == 12
    assert registry.service_info("users").owner == "identity-team"
    assert [schema.table for schema in registry.tables("policies")] == ["policies"]
    assert registry.validate() == []


def test_saving_an_unchanged_registry_rewrites_every_file_byte_for_byte(
    registry: SchemaRegistry, registry_dir: Path
) -> None:
    before = {path.name: path.read_text() for path in registry_dir.glob("*.yaml")}
    registry.save()
    assert {path.name: path.read_text() for path in registry_dir.glob("*.yaml")} == before


def test_a_new_version_is_saved_into_the_same_file_keeping_comments_and_order(
    registry: SchemaRegistry, registry_dir: Path
) -> None:
    users = registry.get("users", "users")
    columns = [
        c.model_copy(update={"type": "string(400)"}) if c.name == "email" else c
        for c in users.columns
    ]
    columns.append(SchemaColumn(name="display_name", type="string(100)"))
    registry.register(users.model_copy(update={"version": "1.1.0", "columns": tuple(columns)}))
    registry.save()
    text = (registry_dir / "users.yaml").read_text()
    assert text.startswith("# The users table: one row per account that can sign in.\n")
    assert "    type: string(400)  # RFC 5321 maximum\n" in text
    assert text.endswith("  - name: display_name\n    type: string(100)\n")
    assert "version: 1.1.0\n" in text
    reloaded = SchemaRegistry.load(registry_dir)
    assert [v.version for v in reloaded.versions("users", "users")] == ["1.0.0", "1.1.0"]
    assert reloaded.get("users", "users", "1.0.0").column("display_name") is None
    assert (registry_dir / "history" / "users.users" / "1.0.0.yaml").is_file()


def test_versions_must_increase(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    with pytest.raises(
        SchemaVersionConflictError, match=r"must be higher than the current 1\.0\.0"
    ):
        registry.register(users)


def test_a_breaking_change_needs_a_major_bump(registry: SchemaRegistry) -> None:
    users = registry.get("users", "users")
    required = SchemaColumn(name="tenant", type="string(20)", nullable=False)
    minor = users.model_copy(update={"version": "1.1.0", "columns": (*users.columns, required)})
    with pytest.raises(
        SchemaVersionConflictError, match=r"added-required-column|NOT NULL.*2\.0\.0"
    ) as caught:
        registry.register(minor)
    assert caught.value.code == "SCHEMA_VERSION_CONFLICT"
    registry.register(minor.model_copy(update={"version": "2.0.0"}))
    assert registry.get("users", "users").version == "2.0.0"


def test_lookups_name_what_is_missing(registry: SchemaRegistry) -> None:
    with pytest.raises(NotFoundError, match=r"users\.nope"):
        registry.get("users", "nope")
    with pytest.raises(NotFoundError, match=r"version 9\.9\.9"):
        registry.get("users", "users", "9.9.9")
    assert registry.find("users", "users", "1.0.0") is not None
    assert registry.service_info("unknown").files == []


def test_revert_makes_an_older_version_current_again(
    registry: SchemaRegistry, registry_dir: Path
) -> None:
    users = registry.get("users", "users")
    registry.register(users.model_copy(update={"version": "1.0.1"}))
    registry.save()
    registry.revert("users", "users", "1.0.0")
    registry.save()
    reloaded = SchemaRegistry.load(registry_dir)
    assert reloaded.get("users", "users").version == "1.0.0"
    assert [v.version for v in reloaded.versions("users", "users")] == ["1.0.0"]


def test_a_new_table_gets_its_own_file_listed_in_registry_yaml(
    registry: SchemaRegistry, registry_dir: Path, make_table: TableMaker
) -> None:
    registry.register(
        make_table("billing.invoices", "1.0.0", SchemaColumn(name="total", type="numeric(12,2)"))
    )
    registry.save()
    assert (registry_dir / "billing.invoices.yaml").is_file()
    registry_yaml = (registry_dir / "registry.yaml").read_text()
    assert registry_yaml.startswith("# Schema registry of the aegis example services.\n")
    assert "  billing:\n    files:\n      - billing.invoices.yaml\n" in registry_yaml
    assert SchemaRegistry.load(registry_dir).get("billing", "invoices").column("total") is not None


def test_a_removed_table_leaves_the_listing_and_stays_in_the_history(
    registry: SchemaRegistry, registry_dir: Path
) -> None:
    registry.remove("policies", "policies")
    registry.save()
    assert not (registry_dir / "policies.yaml").exists()
    assert "policies.yaml" not in (registry_dir / "registry.yaml").read_text()
    assert (registry_dir / "history" / "policies.policies" / "1.0.0.yaml").is_file()
    assert SchemaRegistry.load(registry_dir).find("policies", "policies") is None


def test_a_service_file_holds_several_tables_and_round_trips(tmp_path: Path) -> None:
    (tmp_path / "registry.yaml").write_text("services:\n  shop:\n    files: [shop.yaml]\n")
    (tmp_path / "shop.yaml").write_text(
        "service: shop  # one file for the whole service\n"
        "tables:\n"
        "  - table: carts\n    version: 1.0.0\n    columns:\n"
        "      - name: id\n        type: bigint\n        primary_key: true\n"
        "  # orders come from carts\n"
        "  - table: orders\n    version: 1.0.0\n    columns:\n"
        "      - name: id\n        type: bigint\n        primary_key: true\n"
        "      - name: cart_id\n        type: bigint\n"
        "    references:\n      - column: cart_id\n        references: shop.carts.id\n"
    )
    registry = SchemaRegistry.load(tmp_path)
    orders = registry.get("shop", "orders")
    assert orders.line_of("columns.cart_id") == 16
    registry.register(
        orders.model_copy(update={"version": "1.1.0", "description": "Placed orders."})
    )
    registry.remove("shop", "carts")
    registry.save()
    text = (tmp_path / "shop.yaml").read_text()
    assert "service: shop  # one file for the whole service\n" in text
    assert "description: Placed orders." in text
    assert "carts" not in text.split("tables:")[1].split("references")[0]


_HEAD = "service: users\ntable: users\nversion: 1.0.0\ncolumns:\n"
_ID = "  - name: id\n    type: uuid\n"


@pytest.mark.parametrize(
    ("content", "rule", "line"),
    [
        (
            _HEAD + "  - name: id\n    type: money\n",
            "invalid-type",
            6,
        ),
        (
            "service: users\ntable: users\nversion: 1.0\ncolumns:\n  - name: id\n    type: uuid\n",
            "schema-invalid",
            3,
        ),
        ("service: users\ntable: users\nversion: 1.0.0\ncolumns: [\n", "yaml-syntax", 5),
        (
            _HEAD + "  - name: id\n    typo: uuid\n",
            "schema-invalid",
            5,
        ),
        ("- just\n- a list\n", "schema-invalid", 1),
        (
            "service: policies\ntable: users\nversion: 1.0.0\ncolumns:\n" + _ID,
            "service-mismatch",
            1,
        ),
    ],
)
def test_broken_files_fail_to_load_naming_file_line_and_rule(
    registry_dir: Path, content: str, rule: str, line: int
) -> None:
    (registry_dir / "users.yaml").write_text(content)
    with pytest.raises(SchemaValidationError) as caught:
        SchemaRegistry.load(registry_dir)
    problem = caught.value.problems[0]
    assert (problem.file, problem.rule, problem.line) == ("users.yaml", rule, line)
    assert f"users.yaml:{line}" in str(caught.value)
    assert caught.value.code == "SCHEMA_INVALID"


def test_registry_level_load_problems(registry_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SchemaValidationError, match="registry-missing"):
        SchemaRegistry.load(tmp_path / "nowhere")
    registry_yaml = registry_dir / "registry.yaml"
    registry_yaml.write_text(registry_yaml.read_text().replace("- policies.yaml", "- missing.yaml"))
    with pytest.raises(SchemaValidationError, match="file-missing") as caught:
        SchemaRegistry.load(registry_dir)
    assert caught.value.problems[0].line == 17
    registry_yaml.write_text("compatibility: SIDEWAYS\nservices: {}\n")
    with pytest.raises(SchemaValidationError) as caught:
        SchemaRegistry.load(registry_dir)
    assert [(p.rule, p.line) for p in caught.value.problems] == [("registry-invalid", 1)]
    registry_yaml.write_text("services:\n  users:\n    files: [users.yaml, users.yaml]\n")
    with pytest.raises(SchemaValidationError) as caught:
        SchemaRegistry.load(registry_dir)
    assert [(p.rule, p.file, p.line) for p in caught.value.problems] == [
        ("duplicate-table", "users.yaml", 3)
    ]


def test_save_needs_a_directory_for_a_registry_built_in_memory(
    tmp_path: Path, make_table: TableMaker
) -> None:
    registry = SchemaRegistry(CompatibilityMode.FULL)
    registry.register(make_table("a.b"))
    with pytest.raises(ValueError, match="needs a directory"):
        registry.save()
    registry.save(tmp_path)
    assert "compatibility: FULL" in (tmp_path / "registry.yaml").read_text()
    assert SchemaRegistry.load(tmp_path).compatibility == CompatibilityMode.FULL


_descriptions = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40
)


@settings(max_examples=30, deadline=None)
@given(description=_descriptions, length=st.integers(1, 5000), nullable=st.booleans())
def test_any_description_and_type_survive_a_save_and_load(
    tmp_path_factory: pytest.TempPathFactory, description: str, length: int, nullable: bool
) -> None:
    root = tmp_path_factory.mktemp("roundtrip")
    registry = SchemaRegistry()
    column = SchemaColumn(
        name="note", type=f"string({length})", nullable=nullable, description=description
    )
    schema = SchemaDefinition(
        service="s",
        table="t",
        version="1.0.0",
        description=description,
        columns=[SchemaColumn(name="id", type="uuid", primary_key=True), column],
    )
    registry.register(schema)
    registry.save(root)
    assert SchemaRegistry.load(root).get("s", "t").model_dump() == schema.model_dump()


def test_reordered_removed_and_changed_entries_keep_the_comments_of_those_that_stay(
    registry: SchemaRegistry, registry_dir: Path
) -> None:
    policies = registry.get("policies", "policies")
    by_name = {column.name: column for column in policies.columns}
    order = ["id", "holder_id", "number", "status", "premium", "starts_on"]  # created_at goes
    index = policies.indexes[0].model_copy(update={"columns": ("status",)})
    registry.register(
        policies.model_copy(
            update={
                "version": "2.0.0",
                "columns": tuple(by_name[name] for name in order),
                "indexes": (index,),
            }
        )
    )
    registry.save()
    text = (registry_dir / "policies.yaml").read_text()
    assert "created_at" not in text
    assert text.index("name: holder_id") < text.index("name: number")
    assert "    columns: [status]\n" in text
    assert "  # users live in another database" in text
    assert SchemaRegistry.load(registry_dir).get("policies", "policies") == registry.get(
        "policies", "policies"
    )
