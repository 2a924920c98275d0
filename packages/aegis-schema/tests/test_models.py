"""The registry's models: columns, references, indexes, versions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aegis.schema import SchemaColumn, SchemaDefinition, SchemaIndex, SchemaReference, parse_version


def test_a_primary_key_column_is_not_null_unless_it_says_otherwise_which_is_refused() -> None:
    assert SchemaColumn(name="id", type="uuid", primary_key=True).nullable is False
    with pytest.raises(ValidationError, match="cannot be nullable"):
        SchemaColumn(name="id", type="uuid", primary_key=True, nullable=True)


def test_column_types_are_stored_canonically_and_invalid_ones_refused() -> None:
    assert SchemaColumn(name="price", type="NUMERIC(10, 2)").type == "numeric(10,2)"
    with pytest.raises(ValidationError, match="not a portable type"):
        SchemaColumn(name="price", type="money")


def test_a_column_is_required_when_not_null_without_default() -> None:
    assert SchemaColumn(name="a", type="text", nullable=False).required
    assert not SchemaColumn(name="a", type="text", nullable=False, default="x").required
    assert not SchemaColumn(name="a", type="text").required


@pytest.mark.parametrize("name", ["1abc", "a-b", "a" * 64, ""])
def test_names_must_be_sql_identifiers(name: str) -> None:
    with pytest.raises(ValidationError):
        SchemaColumn(name=name, type="text")


def test_references_name_service_table_column_and_normalise_actions() -> None:
    reference = SchemaReference(
        column="holder_id", references="users.users.id", on_delete="set  null"
    )
    assert (reference.target_service, reference.target_table, reference.target_column) == (
        "users",
        "users",
        "id",
    )
    assert reference.target_key == "users.users"
    assert reference.on_delete == "SET NULL"
    with pytest.raises(ValidationError):
        SchemaReference(column="holder_id", references="users.id")
    with pytest.raises(ValidationError):
        SchemaReference(column="holder_id", references="users.users.id", on_delete="explode")


def test_versions_are_major_minor_patch_and_a_whole_number_is_a_major() -> None:
    columns = [SchemaColumn(name="id", type="uuid", primary_key=True)]
    schema = SchemaDefinition(service="s", table="t", version=2, columns=columns)
    assert schema.version == "2.0.0"
    assert schema.version_tuple == (2, 0, 0)
    with pytest.raises(ValidationError, match="reads as a number"):
        SchemaDefinition(service="s", table="t", version=1.0, columns=columns)
    with pytest.raises(ValidationError, match=r"MAJOR\.MINOR\.PATCH"):
        SchemaDefinition(service="s", table="t", version="1.0", columns=columns)
    with pytest.raises(ValidationError):
        SchemaDefinition(service="s", table="t", version=True, columns=columns)
    assert parse_version("10.2.33") == (10, 2, 33)


def test_a_definition_needs_columns_and_knows_its_key_and_columns() -> None:
    with pytest.raises(ValidationError):
        SchemaDefinition(service="s", table="t", version="1.0.0", columns=[])
    schema = SchemaDefinition(
        service="s",
        table="t",
        version="1.0.0",
        columns=[SchemaColumn(name="id", type="uuid", primary_key=True)],
        indexes=[SchemaIndex(name="ix", columns=("id",))],
    )
    assert schema.key == "s.t"
    assert schema.column("id") is not None
    assert schema.column("nope") is None
    assert schema.source_file is None
    assert schema.line_of("columns.id") is None
