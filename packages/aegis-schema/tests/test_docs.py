"""Docs: Markdown per service and an index; Mermaid diagrams checked by Mermaid's own parser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aegis.schema import SchemaColumn, SchemaDefinition, SchemaRegistry
from aegis.schema._docs import render_erd, render_service_graph, write_docs

Parse = Callable[[list[str]], list[dict[str, object]]]
TableMaker = Callable[..., SchemaDefinition]


def test_the_erd_and_service_graph_are_valid_mermaid(
    registry: SchemaRegistry, mermaid_parse: Parse
) -> None:
    erd = render_erd(registry.schemas())
    graph = render_service_graph(registry.graph())
    assert mermaid_parse([erd, graph]) == [
        {"ok": True, "type": "er"},
        {"ok": True, "type": "flowchart-v2"},
    ]
    assert 'users__users ||--o{ policies__policies : "holder_id"' in erd
    assert '        uuid holder_id FK "The user holding the policy."' in erd
    assert "        numeric(12_2) premium" in erd
    assert "policies --> users" in graph


def test_awkward_names_types_and_descriptions_still_parse(
    make_table: TableMaker, mermaid_parse: Parse
) -> None:
    tables = [
        make_table(
            "a_b.c",
            "1.0.0",
            SchemaColumn(name="status", type="enum(x,y)", description='say "hi"\nnow'),
        ),
        make_table(
            "a.b_c",
            "1.0.0",
            SchemaColumn(name="ref", type="uuid", unique=True),
            SchemaColumn(name="at", type="timestamp"),
            SchemaColumn(name="maybe", type="uuid"),
            references=[
                {"column": "ref", "references": "a_b.c.id"},
                {"column": "maybe", "references": "a_b.c.id"},
                {"column": "maybe", "references": "gone.t.id"},
            ],
        ),
    ]
    erd = render_erd(tables)
    assert "a_b__c |o--o| a__b_c" in erd  # a unique reference is one-to-one
    assert "a_b__c |o--o{ a__b_c" in erd  # a nullable one may point nowhere
    assert "gone" not in erd
    assert mermaid_parse([erd]) == [{"ok": True, "type": "er"}]


def test_the_parser_really_rejects_broken_diagrams(mermaid_parse: Parse) -> None:
    (result,) = mermaid_parse(["erDiagram\n    a {\n        numeric(12,2) premium\n    }\n"])
    assert result["ok"] is False


def test_docs_are_written_per_service_with_an_index(
    registry: SchemaRegistry, tmp_path: Path, mermaid_parse: Parse
) -> None:
    written = write_docs(registry, tmp_path / "docs")
    assert [path.name for path in written] == ["index.md", "policies.md", "users.md"]
    index = (tmp_path / "docs" / "index.md").read_text()
    assert "| [policies](policies.md) | policy-team | policies | users |" in index
    users = (tmp_path / "docs" / "users.md").read_text()
    assert "Depends on: none. Used by: [policies](policies.md)." in users
    assert "| email | `string(320)` | no |  | unique | Login name, stored lower-case. |" in users
    assert "Referenced by: `policies.policies`" in users
    policies = (tmp_path / "docs" / "policies.md").read_text()
    assert "- `holder_id` → `users.users.id` (on delete restrict, on update no action)" in policies
    assert "- `ix_policies_status_starts_on`: (status, starts_on)" in policies
    blocks = [
        part.split("```")[0]
        for text in (index, users, policies)
        for part in text.split("```mermaid\n")[1:]
    ]
    assert len(blocks) == 4
    assert all(result["ok"] for result in mermaid_parse(blocks))
