"""The dependency graph: dependencies both ways, transitive closure, cycles, migration order."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aegis.schema import DependencyCycleError, DependencyGraph, SchemaColumn, SchemaDefinition

TableMaker = Callable[..., SchemaDefinition]


def _ref(column: str, target: str) -> dict[str, str]:
    return {"column": column, "references": target}


@pytest.fixture
def chain(make_table: TableMaker) -> list[SchemaDefinition]:
    """orders -> users <- policies -> users; audit -> orders; users.users -> users.teams."""
    fk = SchemaColumn(name="ref", type="uuid")
    team = SchemaColumn(name="team_id", type="uuid")
    return [
        make_table("users.teams"),
        make_table("users.users", "1.0.0", team, references=[_ref("team_id", "users.teams.id")]),
        make_table("orders.orders", "1.0.0", fk, references=[_ref("ref", "users.users.id")]),
        make_table("policies.policies", "1.0.0", fk, references=[_ref("ref", "users.users.id")]),
        make_table("audit.entries", "1.0.0", fk, references=[_ref("ref", "orders.orders.id")]),
    ]


def test_dependencies_and_dependents_direct_and_transitive(chain: list[SchemaDefinition]) -> None:
    graph = DependencyGraph(chain)
    assert graph.services == ["audit", "orders", "policies", "users"]
    assert graph.edges() == [("audit", "orders"), ("orders", "users"), ("policies", "users")]
    assert graph.dependencies("audit") == ["orders"]
    assert graph.dependencies("audit", transitive=True) == ["orders", "users"]
    assert graph.dependents("users") == ["orders", "policies"]
    assert graph.dependents("users", transitive=True) == ["audit", "orders", "policies"]
    assert graph.table_dependents("users.users") == ["orders.orders", "policies.policies"]
    assert graph.table_dependents("users.teams", transitive=True) == [
        "audit.entries",
        "orders.orders",
        "policies.policies",
        "users.users",
    ]
    assert graph.cycles() == []


def test_order_puts_every_service_after_its_dependencies(chain: list[SchemaDefinition]) -> None:
    graph = DependencyGraph(chain)
    assert graph.order() == ["users", "orders", "audit", "policies"]
    assert graph.table_order() == [
        "users.teams",
        "users.users",
        "orders.orders",
        "audit.entries",
        "policies.policies",
    ]
    assert graph.table_order(["audit.entries", "users.users"]) == ["audit.entries", "users.users"]


def test_a_cycle_is_named_and_stops_ordering(
    chain: list[SchemaDefinition], make_table: TableMaker
) -> None:
    back = SchemaColumn(name="audit_id", type="uuid")
    teams = make_table(
        "users.teams", "1.0.0", back, references=[_ref("audit_id", "audit.entries.id")]
    )
    graph = DependencyGraph([teams, *chain[1:]])
    assert graph.cycles() == [["audit", "orders", "users"]]
    with pytest.raises(DependencyCycleError, match="audit -> orders -> users -> audit") as caught:
        graph.order()
    assert caught.value.cycle == ["audit", "orders", "users"]
    assert caught.value.code == "SCHEMA_DEPENDENCY_CYCLE"
    with pytest.raises(DependencyCycleError, match="tables depend on each other"):
        graph.table_order()


def test_self_references_are_no_service_cycle(make_table: TableMaker) -> None:
    parent = SchemaColumn(name="parent_id", type="uuid")
    tree = make_table("cms.pages", "1.0.0", parent, references=[_ref("parent_id", "cms.pages.id")])
    graph = DependencyGraph([tree])
    assert graph.cycles() == []
    assert graph.order() == ["cms"]
    assert graph.table_order() == ["cms.pages"]


def test_two_separate_cycles_are_both_reported(make_table: TableMaker) -> None:
    c = SchemaColumn(name="other", type="uuid")
    tables = [
        make_table("a.t", "1.0.0", c, references=[_ref("other", "b.t.id")]),
        make_table("b.t", "1.0.0", c, references=[_ref("other", "a.t.id")]),
        make_table("x.t", "1.0.0", c, references=[_ref("other", "y.t.id")]),
        make_table("y.t", "1.0.0", c, references=[_ref("other", "z.t.id")]),
        make_table("z.t", "1.0.0", c, references=[_ref("other", "x.t.id")]),
    ]
    assert DependencyGraph(tables).cycles() == [["a", "b"], ["x", "y", "z"]]
