"""The ``aegis-schema`` command line. Exit codes: 0 ok, 1 problems found, 2 usage error."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime

from aegis.schema._status import DEFAULT_HISTORY_URL, MigrationStatus


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry", default=".", metavar="DIR", help="registry directory (default: .)"
    )
    common.add_argument("--format", choices=["text", "json"], default="text")
    databases = argparse.ArgumentParser(add_help=False)
    databases.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a service's database (repeat)",
    )
    databases.add_argument(
        "--history", default=DEFAULT_HISTORY_URL, metavar="URL", help="coordinator database"
    )
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument(
        "--to", required=True, metavar="DIR", help="registry directory with the new versions"
    )
    target.add_argument(
        "--allow", action="append", default=[], metavar="CODE", help="let this rule's errors pass"
    )
    parser = argparse.ArgumentParser(
        prog="aegis-schema", description="Schema registry and migration coordinator."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", parents=[common], help="scaffold a registry directory")
    validate = sub.add_parser(
        "validate", parents=[common], help="check the registry (and a proposed change)"
    )
    validate.add_argument(
        "--to", metavar="DIR", help="also check these new versions' compatibility"
    )
    graph = sub.add_parser("graph", parents=[common], help="service dependencies, cycles, order")
    graph.add_argument("--service", help="show this service's dependencies and dependents")
    graph.add_argument("--mermaid", action="store_true", help="print a Mermaid flowchart")
    docs = sub.add_parser(
        "docs", parents=[common], help="write Markdown docs, or a static HTML site, with diagrams"
    )
    where = docs.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="DIR", help="Markdown: index.md and <service>.md")
    where.add_argument(
        "--html",
        metavar="DIR",
        help="a static site: index.html, a page per service, graph.html, assets/ (works offline)",
    )
    docs.add_argument(
        "--history", metavar="URL", help="with --html: show the migrations this history lacks"
    )
    erd = sub.add_parser("erd", parents=[common], help="print a Mermaid erDiagram")
    erd.add_argument("--service", help="only this service's tables")
    diff = sub.add_parser(
        "diff", parents=[common], help="operations between two versions of a table"
    )
    diff.add_argument("schema", metavar="SERVICE.TABLE")
    diff.add_argument("old", metavar="FROM_VERSION")
    diff.add_argument("new", metavar="TO_VERSION")
    bootstrap = sub.add_parser(
        "bootstrap", parents=[common, databases], help="create every table in empty databases"
    )
    bootstrap.add_argument("--dry-run", action="store_true", help="print the SQL, touch nothing")
    sub.add_parser("plan", parents=[common, databases, target], help="plan and check a migration")
    migrate = sub.add_parser("migrate", parents=[common, databases, target], help="run a migration")
    migrate.add_argument("--dry-run", action="store_true", help="print the SQL, touch nothing")
    migrate.add_argument(
        "--break-lock", action="store_true", help="free a lock left by a dead process"
    )
    rollback = sub.add_parser("rollback", parents=[common, databases], help="undo a completed run")
    rollback.add_argument("run_id", metavar="RUN_ID")
    rollback.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="CODE",
        help="let this rule's errors pass (DS102: drop created tables with their rows)",
    )
    history = sub.add_parser("history", parents=[common, databases], help="past runs")
    history.add_argument("--service")
    history.add_argument("--status", choices=[str(status) for status in MigrationStatus])
    history.add_argument("--since", type=datetime.fromisoformat, metavar="ISO-TIME")
    history.add_argument("--until", type=datetime.fromisoformat, metavar="ISO-TIME")
    history.add_argument("--limit", type=int)
    impact = sub.add_parser(
        "impact", parents=[common, databases], help="impact report of a change or a run"
    )
    source = impact.add_mutually_exclusive_group(required=True)
    source.add_argument("--to", metavar="DIR")
    source.add_argument("--run", metavar="RUN_ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``aegis-schema``; return the exit code."""
    args = _parser().parse_args(argv)
    # The commands load SQLAlchemy, Alembic and the pydantic models; --help needs none.
    # lazy: SQLAlchemy, Alembic and pydantic, for a command only
    from aegis.schema._cli_commands import run

    return run(args)
