"""What each ``aegis-schema`` command does; loaded once the command line has parsed.

The parser (aegis.schema._cli) needs none of this: ``aegis-schema --help`` and usage errors
answer without SQLAlchemy, Alembic or the pydantic models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from aegis.core.errors import AegisError, ConfigurationError
from aegis.core.progress import ProgressReporter
from aegis.schema._cli_templates import EXAMPLE_TABLE, REGISTRY_TEMPLATE
from aegis.schema._compat import compatibility_problems
from aegis.schema._coordinator import MigrationCoordinator
from aegis.schema._diff import diff_schemas
from aegis.schema._docs import render_erd, render_service_graph, write_docs
from aegis.schema._history import HistoryStore
from aegis.schema._html import write_html_site
from aegis.schema._impact import ImpactReport
from aegis.schema._models import SchemaDefinition
from aegis.schema._plan import MigrationPlan, MigrationRun, MigrationStep
from aegis.schema._problems import Problem, Severity
from aegis.schema._registry import REGISTRY_FILE, SchemaRegistry
from aegis.schema._rules import blocking
from aegis.schema._status import MigrationStatus

OK, PROBLEMS, USAGE = 0, 1, 2
_COLOURS = {"ok": "32", "error": "31", "warning": "33"}


class _Output:
    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream, self.json = stream, fmt == "json"
        self.colour = stream.isatty() and "NO_COLOR" not in os.environ

    def paint(self, text: str, kind: str) -> str:
        return f"\033[{_COLOURS[kind]}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        print(text, file=self.stream)

    def data(self, value: Any) -> None:
        print(json.dumps(value, indent=2, default=str), file=self.stream)


def _report_problems(problems: list[Problem], out: _Output) -> int:
    errors = [p for p in problems if p.severity == Severity.ERROR]
    if out.json:
        out.data({"ok": not errors, "problems": [p.to_dict() for p in problems]})
    else:
        for problem in problems:
            out.line(
                out.paint(
                    str(problem), "error" if problem.severity == Severity.ERROR else "warning"
                )
            )
        out.line(out.paint("ok", "ok") if not errors else f"{len(errors)} error(s)")
    return PROBLEMS if errors else OK


def _urls(args: argparse.Namespace) -> dict[str, str]:
    urls: dict[str, str] = {}
    for item in args.url:
        service, separator, url = item.partition("=")
        if not separator or not service or not url:
            raise ConfigurationError(f"--url {item!r} must be SERVICE=URL")
        urls[service] = url
    return urls


def _changes(
    registry: SchemaRegistry, target: SchemaRegistry
) -> tuple[list[SchemaDefinition], list[str]]:
    changes: list[SchemaDefinition] = []
    renamed: set[str] = set()
    for schema in target.schemas():
        current = registry.find(schema.service, schema.renamed_from or schema.table)
        if current is not None:
            renamed.add(current.key)
        if current is None or current.model_dump() != schema.model_dump():
            changes.append(schema)
    removed = [
        s.key
        for s in registry.schemas()
        if target.find(s.service, s.table) is None and s.key not in renamed
    ]
    return changes, removed


def _init(args: argparse.Namespace, out: _Output) -> int:
    root = Path(args.registry)
    if (root / REGISTRY_FILE).exists():
        print(f"aegis-schema: {root / REGISTRY_FILE} already exists", file=sys.stderr)
        return PROBLEMS
    root.mkdir(parents=True, exist_ok=True)
    (root / REGISTRY_FILE).write_text(REGISTRY_TEMPLATE, encoding="utf-8")
    (root / "example.yaml").write_text(EXAMPLE_TABLE, encoding="utf-8")
    out.line(f"created {root / REGISTRY_FILE} and {root / 'example.yaml'}")
    return OK


def _validate(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    problems = registry.validate()
    if args.to:
        target = SchemaRegistry.load(args.to)
        problems += target.validate()
        for schema in _changes(registry, target)[0]:
            current = registry.find(schema.service, schema.renamed_from or schema.table)
            if current is None:
                continue
            breaking = compatibility_problems(current, schema, registry.compatibility)
            problems += breaking
            if schema.version_tuple <= current.version_tuple or (
                breaking and schema.version_tuple[0] == current.version_tuple[0]
            ):
                need = (
                    f"{current.version_tuple[0] + 1}.0.0"
                    if breaking
                    else f"above {current.version}"
                )
                message = f"{schema.key}: version {schema.version} must be {need}"
                problems.append(
                    Problem(
                        "version-bump",
                        message,
                        schema.source_file,
                        schema.line_of("version"),
                        subject=schema.key,
                    )
                )
    return _report_problems(problems, out)


def _graph(args: argparse.Namespace, out: _Output) -> int:
    graph = SchemaRegistry.load(args.registry).graph()
    cycles = graph.cycles()
    if args.service:
        data: dict[str, Any] = {
            "service": args.service,
            "dependencies": graph.dependencies(args.service, transitive=True),
            "dependents": graph.dependents(args.service, transitive=True),
        }
    else:
        data = {"edges": graph.edges(), "cycles": cycles, "order": [] if cycles else graph.order()}
    if out.json:
        out.data(data)
    elif args.mermaid:
        out.line(render_service_graph(graph).rstrip())
    elif args.service:
        out.line(f"{args.service} depends on: {', '.join(data['dependencies']) or 'none'}")
        out.line(f"{args.service} is used by: {', '.join(data['dependents']) or 'none'}")
    else:
        for service, dependency in data["edges"]:
            out.line(f"{service} -> {dependency}")
        for cycle in cycles:
            out.line(out.paint(f"cycle: {' -> '.join([*cycle, cycle[0]])}", "error"))
        if not cycles:
            out.line(f"migration order: {', '.join(data['order'])}")
    return PROBLEMS if cycles else OK


def _docs(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    if args.html:
        history = HistoryStore(args.history) if args.history else None
        try:
            written = write_html_site(registry, args.html, history=history)
        finally:
            if history is not None:
                history.close()
    else:
        written = write_docs(registry, args.out)
    if out.json:
        out.data([str(path) for path in written])
    else:
        out.line("\n".join(f"wrote {path}" for path in written))
    return OK


def _erd(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    schemas = registry.tables(args.service) if args.service else registry.schemas()
    text = render_erd(schemas).rstrip()
    out.data({"mermaid": text}) if out.json else out.line(text)
    return OK


def _diff(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    service, _, table = args.schema.partition(".")
    operations = diff_schemas(
        registry.get(service, table, args.old), registry.get(service, table, args.new)
    )
    if out.json:
        out.data([operation.model_dump(mode="json") for operation in operations])
    else:
        out.line("\n".join(operation.describe() for operation in operations) or "no changes")
    return OK


def _coordinator(args: argparse.Namespace, registry: SchemaRegistry) -> MigrationCoordinator:
    return MigrationCoordinator(
        registry, _urls(args), history=args.history, allow=args.allow if "allow" in args else ()
    )


def _plan(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    with _coordinator(args, registry) as coordinator:
        plan = coordinator.plan_migration(*_changes(registry, SchemaRegistry.load(args.to)))
        findings = coordinator.validate_migration(plan)
    report = ImpactReport(plan, tuple(findings), registry.graph())
    out.data(report.to_dict()) if out.json else out.line(report.to_markdown().rstrip())
    return PROBLEMS if blocking(findings, set(args.allow)) else OK


def _progress(
    out: _Output, reporter: ProgressReporter | None = None
) -> Callable[[MigrationStep, int, int], None]:
    """Each step's start and end on standard error, with elapsed time; only on a terminal."""
    reporter = reporter or ProgressReporter(sys.stderr)

    def show(step: MigrationStep, position: int, total: int) -> None:
        name = f"[{position}/{total}] {step.service}: {step.id}"
        if step.status == MigrationStatus.RUNNING:
            reporter.started(name)
        elif step.status == MigrationStatus.COMPLETED:
            reporter.finished(name, out.paint("ok", "ok"))
        else:
            reporter.finished(name, out.paint(str(step.status), "error"))

    return show


def _migrate(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    changes, removed = _changes(registry, SchemaRegistry.load(args.to))
    with _coordinator(args, registry) as coordinator:
        plan = coordinator.plan_migration(changes, removed)
        if args.dry_run:
            run = coordinator.execute(plan, dry_run=True)
            out.data(
                {"plan": plan.id, "sql": coordinator.plan_sql(plan)}
            ) if out.json else out.line("\n".join(run.log).rstrip())
            return OK
        if args.break_lock:
            coordinator.history.break_lock()
        reporter = ProgressReporter(sys.stderr)
        if plan.steps:
            services = ", ".join(dict.fromkeys(step.service for step in plan.steps))
            reporter.line(f"{len(plan.steps)} step(s) on {services}: checking the data ...")
        run = coordinator.execute(plan, progress=_progress(out, reporter))
    for key in removed:
        registry.remove(*key.split("."))
    for schema in changes:
        registry.register(schema)
    registry.save()
    out.data(
        run.model_dump(mode="json", include={"id", "status", "log"})
    ) if out.json else out.line(f"run {run.id}: {run.status}")
    return OK


def _bootstrap(args: argparse.Namespace, out: _Output) -> int:
    with _coordinator(args, SchemaRegistry.load(args.registry)) as coordinator:
        progress = None if args.dry_run else _progress(out)
        run = coordinator.bootstrap(dry_run=args.dry_run, progress=progress)
    if args.dry_run:
        out.data({"plan": run.plan.id, "sql": run.log}) if out.json else out.line(
            "\n".join(run.log).rstrip()
        )
    else:
        out.data(
            run.model_dump(mode="json", include={"id", "status", "log"})
        ) if out.json else out.line(f"run {run.id}: {run.status}")
    return OK


def _rollback(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    with _coordinator(args, registry) as coordinator:
        run = coordinator.rollback(args.run_id, progress=_progress(out))
    # --registry follows the databases: each table back at the version the run found, a table
    # the run created forgotten (the next migrate creates it again), one it dropped restored.
    for step in run.plan.steps:
        service, _, table = step.schema_name.partition(".")
        if step.to_version is None:
            if registry.find(service, table) is not None:
                registry.remove(service, table)
        elif registry.find(service, table, step.to_version):
            registry.revert(service, table, step.to_version)
        elif step.after is not None and registry.find(step.after.service, step.after.table) is None:
            registry.register(step.after)
    registry.save()
    out.data({"id": run.id, "status": str(run.status)}) if out.json else out.line(
        f"run {run.id}: {run.status}"
    )
    return OK


def _history(args: argparse.Namespace, out: _Output) -> int:
    with _coordinator(args, SchemaRegistry()) as coordinator:
        runs = coordinator.history.runs(
            service=args.service,
            status=args.status,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    if out.json:
        out.data([_run_summary(run) for run in runs])
        return OK
    for run in runs:
        services = ",".join(sorted({step.service for step in run.plan.steps}))
        error = f"  {run.error}" if run.error else ""
        started = run.started_at.isoformat(timespec="seconds")
        out.line(f"{started}  {run.id}  {run.kind:<8} {run.status!s:<11} {services}{error}")
    return OK


def _run_summary(run: MigrationRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "kind": run.kind,
        "status": str(run.status),
        "started_at": run.started_at.isoformat(),
        "services": sorted({step.service for step in run.plan.steps}),
        "error": run.error,
        "rolls_back": run.rolls_back,
    }


def _impact(args: argparse.Namespace, out: _Output) -> int:
    registry = SchemaRegistry.load(args.registry)
    with _coordinator(args, registry) as coordinator:
        if args.run:
            run = coordinator.history.get(args.run)
            plan: MigrationPlan = run.plan
            findings = (
                coordinator.validate_migration(plan, check_data=False)
                if run.kind == "migrate"
                else []
            )
        else:
            run = None
            plan = coordinator.plan_migration(*_changes(registry, SchemaRegistry.load(args.to)))
            findings = coordinator.validate_migration(plan)
    report = ImpactReport(plan, tuple(findings), registry.graph(), run)
    out.data(report.to_dict()) if out.json else out.line(report.to_markdown().rstrip())
    return OK


COMMANDS: dict[str, Callable[[argparse.Namespace, _Output], int]] = {
    "init": _init,
    "validate": _validate,
    "graph": _graph,
    "docs": _docs,
    "erd": _erd,
    "diff": _diff,
    "bootstrap": _bootstrap,
    "plan": _plan,
    "migrate": _migrate,
    "rollback": _rollback,
    "history": _history,
    "impact": _impact,
}


def run(args: argparse.Namespace) -> int:
    """Run the command ``args`` names (parsed by aegis.schema._cli); return the exit code."""
    out = _Output(sys.stdout, args.format)
    command: Callable[[argparse.Namespace, _Output], int] = COMMANDS[args.command]
    try:
        return command(args, out)
    except ConfigurationError as exc:
        print(f"aegis-schema: {exc.message}", file=sys.stderr)
        return USAGE
    except AegisError as exc:
        problems: list[Problem] = getattr(exc, "problems", [])
        if problems:
            return _report_problems(problems, out)
        print(f"aegis-schema: {exc.code}: {exc.message}", file=sys.stderr)
        for finding in getattr(exc, "findings", []):  # what a blocked run would have broken
            data = f": {finding.data}" if finding.data else ""
            print(f"  {finding.code} {finding.rule.name}: {finding.message}{data}", file=sys.stderr)
        return PROBLEMS
