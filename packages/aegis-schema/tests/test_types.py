"""Portable column types: parsing, canonical spelling, SQLAlchemy types, widening and narrowing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from aegis.schema import ColumnType, TypeChange


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("uuid", "uuid"),
        ("STRING", "string"),
        ("string( 320 )", "string(320)"),
        ("text", "text"),
        ("integer", "integer"),
        ("bigint", "bigint"),
        ("numeric(10, 2)", "numeric(10,2)"),
        ("boolean", "boolean"),
        ("timestamp", "timestamp"),
        ("timestamp(TZ)", "timestamp(tz)"),
        ("date", "date"),
        ("json", "json"),
        ("enum(active, Suspended)", "enum(active,Suspended)"),
    ],
)
def test_every_portable_type_parses_to_its_canonical_spelling(text: str, canonical: str) -> None:
    assert str(ColumnType.parse(text)) == canonical
    assert ColumnType.parse(canonical) == ColumnType.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "varchar(10)",
        "string(0)",
        "string(x)",
        "numeric(2,3)",
        "numeric(5)",
        "enum()",
        "enum(a,a)",
        "enum(a b)",
        "timestamp(utc)",
        "uuid(4)",
        "json(",
        "",
    ],
)
def test_anything_else_is_refused_with_the_list_of_portable_types(text: str) -> None:
    with pytest.raises(ValueError, match=r"portable type|whole number|positive"):
        ColumnType.parse(text)


def test_sqlalchemy_types_store_every_portable_type() -> None:
    assert isinstance(ColumnType.parse("string(20)").to_sqlalchemy(), sa.String)
    numeric = ColumnType.parse("numeric(12,2)").to_sqlalchemy()
    assert isinstance(numeric, sa.Numeric)
    assert (numeric.precision, numeric.scale) == (12, 2)
    assert ColumnType.parse("timestamp(tz)").to_sqlalchemy().timezone is True  # type: ignore[attr-defined]
    enum = ColumnType.parse("enum(a,bbbb)").to_sqlalchemy()
    assert isinstance(enum, sa.String)
    assert enum.length == 4
    for kind in ["uuid", "text", "integer", "bigint", "boolean", "date", "json"]:
        assert ColumnType.parse(kind).to_sqlalchemy() is not None


@pytest.mark.parametrize(
    ("old", "new", "change"),
    [
        ("string(10)", "string(10)", TypeChange.SAME),
        ("string(10)", "string(20)", TypeChange.WIDENING),
        ("string(10)", "string", TypeChange.WIDENING),
        ("string", "string(10)", TypeChange.NARROWING),
        ("string(20)", "string(10)", TypeChange.NARROWING),
        ("string(20)", "text", TypeChange.WIDENING),
        ("text", "string(20)", TypeChange.NARROWING),
        ("integer", "bigint", TypeChange.WIDENING),
        ("bigint", "integer", TypeChange.NARROWING),
        ("integer", "numeric(12,2)", TypeChange.WIDENING),
        ("bigint", "numeric(12,2)", TypeChange.NARROWING),
        ("numeric(10,2)", "numeric(12,2)", TypeChange.WIDENING),
        ("numeric(10,2)", "numeric(10,3)", TypeChange.NARROWING),
        ("enum(a,b)", "enum(a,b,c)", TypeChange.WIDENING),
        ("enum(a,b,c)", "enum(a,b)", TypeChange.NARROWING),
        ("enum(a,b)", "enum(a,c)", TypeChange.CHANGE),
        ("enum(a,bbbb)", "string(4)", TypeChange.WIDENING),
        ("enum(a,bbbb)", "string(3)", TypeChange.NARROWING),
        ("enum(a)", "text", TypeChange.WIDENING),
        ("timestamp", "timestamp(tz)", TypeChange.CHANGE),
        ("integer", "uuid", TypeChange.CHANGE),
        ("text", "json", TypeChange.CHANGE),
    ],
)
def test_type_changes_are_classified(old: str, new: str, change: TypeChange) -> None:
    assert ColumnType.parse(old).change_to(ColumnType.parse(new)) == change


def test_a_reference_column_must_hold_every_referenced_value() -> None:
    assert ColumnType.parse("bigint").can_hold(ColumnType.parse("integer"))
    assert not ColumnType.parse("integer").can_hold(ColumnType.parse("bigint"))
    assert ColumnType.parse("uuid").can_hold(ColumnType.parse("uuid"))


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=10_000))
def test_string_sizes_order_like_their_lengths(a: int, b: int) -> None:
    change = ColumnType.parse(f"string({a})").change_to(ColumnType.parse(f"string({b})"))
    expected = TypeChange.SAME if a == b else TypeChange.WIDENING if b > a else TypeChange.NARROWING
    assert change == expected
