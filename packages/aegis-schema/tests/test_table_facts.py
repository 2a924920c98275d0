"""What the Markdown and HTML pages say about a table's columns and indexes (_table_facts.py)."""

from __future__ import annotations

from aegis.schema import SchemaColumn, SchemaDefinition, SchemaIndex
from aegis.schema._table_facts import ColumnFacts, IndexFacts, column_facts, index_facts


def _table() -> SchemaDefinition:
    return SchemaDefinition(
        service="s",
        table="t",
        version="1.0.0",
        columns=[
            SchemaColumn(name="id", type="uuid", primary_key=True, unique=True, index=True),
            SchemaColumn(name="email", type="string(200)", unique=True, index=True),
            SchemaColumn(name="active", type="boolean", nullable=False, default=True, index=True),
            SchemaColumn(name="note", type="text", description="free text"),
        ],
        indexes=[SchemaIndex(name="ix_t_pair", columns=("email", "active"), unique=True)],
    )


def test_a_column_shows_its_strongest_key_its_nullability_and_its_default_as_text() -> None:
    assert column_facts(_table()) == [
        ColumnFacts("id", "uuid", "no", None, "PK", ""),
        ColumnFacts("email", "string(200)", "yes", None, "unique", ""),
        ColumnFacts("active", "boolean", "no", "True", "index", ""),
        ColumnFacts("note", "text", "yes", None, "", "free text"),
    ]


def test_indexes_are_the_declared_ones_then_those_the_columns_ask_for() -> None:
    assert index_facts(_table()) == [
        IndexFacts("ix_t_pair", "unique (email, active)"),
        IndexFacts("uq_t_id", "unique (id)"),
        IndexFacts("ix_t_id", "(id)"),
        IndexFacts("uq_t_email", "unique (email)"),
        IndexFacts("ix_t_email", "(email)"),
        IndexFacts("ix_t_active", "(active)"),
    ]
