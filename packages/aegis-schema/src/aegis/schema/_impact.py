"""Impact analysis of a plan or a past run, as JSON-ready data and as Markdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aegis.schema._graph import DependencyGraph
from aegis.schema._plan import MigrationPlan, MigrationRun
from aegis.schema._problems import Severity
from aegis.schema._rules import Finding


@dataclass(frozen=True)
class ImpactReport:
    """What a plan (or run) changes, who is affected and why, and what the checks found."""

    plan: MigrationPlan
    findings: tuple[Finding, ...]
    graph: DependencyGraph
    run: MigrationRun | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        changed = set(self.plan.changed_services)
        affected = {
            service: sorted(changed & set(self.graph.dependencies(service, transitive=True)))
            for service in self.plan.affected_services
            if service not in changed
        }
        return {
            "plan": self.plan.id,
            "run": None
            if self.run is None
            else {
                "id": self.run.id,
                "kind": self.run.kind,
                "status": str(self.run.status),
                "error": self.run.error,
            },
            "changed_services": sorted(changed),
            "affected_services": {
                name: {"depends_on_changed": deps} for name, deps in affected.items()
            },
            "errors": sum(1 for f in self.findings if f.severity == Severity.ERROR),
            "warnings": sum(1 for f in self.findings if f.severity == Severity.WARNING),
            "steps": [
                {
                    "id": step.id,
                    "service": step.service,
                    "schema": step.schema_name,
                    "from_version": step.from_version,
                    "to_version": step.to_version,
                    "status": str(step.status),
                    "error": step.error,
                    "depends_on": step.depends_on,
                    "operations": [operation.describe() for operation in step.up],
                    "findings": [f.to_dict() for f in self.findings if f.step_id == step.id],
                }
                for step in self.plan.steps
            ],
        }

    def to_markdown(self) -> str:
        """The report as Markdown for a pull request or a change ticket."""
        data = self.to_dict()
        out = [f"# Migration impact: plan {data['plan']}", ""]
        if data["run"] is not None:
            run = data["run"]
            out += [
                f"Run {run['id']} ({run['kind']}): **{run['status']}**"
                + (f" — {run['error']}" if run["error"] else ""),
                "",
            ]
        out += [f"Changed services: {', '.join(data['changed_services']) or 'none'}.", ""]
        if data["affected_services"]:
            out += ["Affected through references:", ""]
            for name, why in data["affected_services"].items():
                out.append(f"- {name} (depends on {', '.join(why['depends_on_changed'])})")
            out.append("")
        out += [f"Findings: {data['errors']} error(s), {data['warnings']} warning(s).", ""]
        for step in data["steps"]:
            versions = f"{step['from_version'] or 'new'} → {step['to_version'] or 'dropped'}"
            out += [f"## {step['schema']} {versions} ({step['status']})", ""]
            if step["error"]:
                out += [f"Error: {step['error']}", ""]
            out += [f"- {operation}" for operation in step["operations"]] or [
                "- no DDL (metadata only)"
            ]
            out.append("")
            for finding in step["findings"]:
                out.append(
                    f"- **{finding['code']} {finding['rule']}** ({finding['severity']}): "
                    f"{finding['message']}"
                )
                if finding["dependents"]:
                    out.append(f"  - dependents: {', '.join(finding['dependents'])}")
                if finding["data"]:
                    out.append(f"  - data: {finding['data']}")
                out.append(f"  - safer: {finding['suggestion']}")
            if step["findings"]:
                out.append("")
        return "\n".join(out).rstrip() + "\n"
