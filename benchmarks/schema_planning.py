"""Planning a migration over 1,000 schemas with 5,000 references (aegis.schema).

Builds 100 services x 10 tables in memory; every table references 5 earlier tables (5,000
references, no cycle). Then changes every table (a new minor version adding a column)
and times, best of ``--rounds``:

- ``plan``: ``plan_migration``: diff old -> new per table, dependency graph, topological order,
  affected services;
- ``validate``: the destructive-change rules over the plan plus the proposed registry's
  reference checks (no database);
- ``registry validate``: every registry rule over the 1,000 tables;
- baseline: stdlib ``graphlib.TopologicalSorter`` ordering the same 1,000-node graph, the bare
  minimum any planner does.

Goal: ``plan`` under one second.

    .venv/bin/python benchmarks/schema_planning.py --rounds 5
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from graphlib import TopologicalSorter

from _results import Results, add_json_argument, figure

from aegis.schema import (
    MigrationCoordinator,
    SchemaColumn,
    SchemaDefinition,
    SchemaReference,
    SchemaRegistry,
    plan_migration,
)

SERVICES = 100
TABLES_PER_SERVICE = 10
REFERENCES_PER_TABLE = 5


def build(seed: int = 7) -> tuple[SchemaRegistry, list[SchemaDefinition]]:
    """The registry of 1,000 tables and a new version of each."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible shape, not a secret
    registry = SchemaRegistry()
    keys: list[tuple[str, str]] = []
    changes: list[SchemaDefinition] = []
    for s in range(SERVICES):
        service = f"svc{s:03d}"
        for t in range(TABLES_PER_SERVICE):
            table = f"t{t:02d}"
            # Earlier tables only (no cycle); the first few tables also reference themselves.
            targets = rng.sample(keys, min(REFERENCES_PER_TABLE, len(keys)))
            targets += [(service, table)] * (REFERENCES_PER_TABLE - len(targets))
            columns = [SchemaColumn(name="id", type="bigint", primary_key=True)]
            columns += [
                SchemaColumn(name=f"ref{i}", type="bigint") for i in range(REFERENCES_PER_TABLE)
            ]
            columns += [SchemaColumn(name="name", type="string(100)", nullable=False)]
            references = [
                SchemaReference(column=f"ref{i}", references=f"{ts}.{tt}.id")
                for i, (ts, tt) in enumerate(targets)
            ]
            schema = SchemaDefinition(
                service=service,
                table=table,
                version="1.0.0",
                columns=columns,
                references=references,
            )
            registry.register(schema)
            extra = SchemaColumn(name="note", type="text")
            changes.append(
                schema.model_copy(update={"version": "1.1.0", "columns": (*schema.columns, extra)})
            )
            keys.append((service, table))
    return registry, changes


def best(function: Callable[[], object], rounds: int) -> float:
    """The fastest of ``rounds`` timed calls, in seconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    add_json_argument(parser)
    args = parser.parse_args()
    registry, changes = build()
    references = sum(len(schema.references) for schema in registry.schemas())
    plan = plan_migration(registry, changes)
    coordinator = MigrationCoordinator(registry, history="sqlite://")
    edges = {s.key: {r.target_key for r in s.references} - {s.key} for s in registry.schemas()}
    graphlib = best(lambda: list(TopologicalSorter(edges).static_order()), args.rounds)
    planning = best(lambda: plan_migration(registry, changes), args.rounds)
    checking = best(lambda: coordinator.validate_migration(plan, check_data=False), args.rounds)
    registry_check = best(registry.validate, args.rounds)
    coordinator.close()
    print(f"{len(registry.schemas())} schemas, {references} references, {len(plan.steps)} steps")
    print(f"graphlib topological order  {graphlib * 1000:8.1f} ms  (baseline)")
    ratio = planning / graphlib
    print(f"plan_migration              {planning * 1000:8.1f} ms  x{ratio:.0f} of graphlib")
    print(f"validate_migration (rules)  {checking * 1000:8.1f} ms")
    print(f"registry validate           {registry_check * 1000:8.1f} ms")
    print(f"goal: plan under 1 s -> {'met' if planning < 1 else 'MISSED'}")
    results = Results("aegis-schema", "schema_planning", ["pydantic"])
    results.case(
        "plan 1,000 schemas / 5,000 references",
        "ms",
        aegis=figure("plan_migration", planning * 1000),
        raw=figure("graphlib topological order", graphlib * 1000),
        higher_is_better=False,
        goal="plan < 1 s",
    )
    results.table(
        "Validation of the same plan",
        ["what", "ms"],
        [
            ["validate_migration (rules)", f"{checking * 1000:.1f}"],
            ["registry validate", f"{registry_check * 1000:.1f}"],
        ],
    )
    results.write(args.json)


if __name__ == "__main__":
    main()
