"""The registry as HTML: a page per service, an index and the dependency graph, drawn by Mermaid.

A service's page lists its tables, the references to and from other services, an ER diagram
of its tables with the tables they reference and that reference them, and, when the
registry is ahead of the databases, the pending migration with its impact report. Diagrams are
Mermaid text in ``<pre class="mermaid">``; the vendored Mermaid (MIT, version in
``_vendor/mermaid/VENDORED.json``) draws them in the browser, started by a script file of this
package: no inline script, no network. :func:`write_html_site` writes the whole registry as
static files.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from aegis.core.html import content_security_policy
from aegis.schema._docs import render_erd, render_service_graph
from aegis.schema._graph import DependencyGraph
from aegis.schema._history import HistoryStore
from aegis.schema._impact import ImpactReport
from aegis.schema._models import SchemaDefinition
from aegis.schema._pending import pending_migration
from aegis.schema._registry import SchemaRegistry
from aegis.schema._table_facts import COLUMN_HEADINGS, column_facts, index_facts

MERMAID: Final = "mermaid.min.js"
START: Final = "schema-page.js"
STYLESHEET: Final = "schema.css"
INDEX: Final = "index.html"
GRAPH: Final = "graph.html"
ASSETS: Final = "assets"
_VENDOR: Final = "_vendor/mermaid"


def asset_files() -> dict[str, Traversable]:
    """The pages' files by public name: vendored Mermaid and its licence, script, stylesheet."""
    package = files("aegis.schema")
    return {
        MERMAID: package / _VENDOR / MERMAID,
        "LICENSE": package / _VENDOR / "LICENSE",
        START: package / "_static" / START,
        STYLESHEET: package / "_static" / STYLESHEET,
    }


@dataclass(frozen=True)
class Links:
    """How a page points at its assets and at other pages.

    Attributes:
        assets: URL of the asset folder relative to the page, ending in ``/``.
        nonce: the response's script nonce (served pages); ``None`` for static files, which
            carry their policy in a ``<meta>`` element instead (scripts from the site only).
        service: URL of a service's page, or ``None`` where there is none.
        site: whether the index and graph pages exist beside this one.
    """

    assets: str
    nonce: str | None = None
    service: Callable[[str], str | None] = lambda _name: None
    site: bool = False


def _e(value: object) -> str:
    return html.escape(str(value))


def _document(title: str, body: str, links: Links) -> str:
    assets = _e(links.assets)
    nonce = f' nonce="{_e(links.nonce)}"' if links.nonce is not None else ""
    policy = ""
    if links.nonce is None:
        csp = _e(content_security_policy(["'self'"], meta=True))
        policy = f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
    nav = ""
    if links.site:
        nav = f'<a href="{INDEX}">Services</a><a href="{GRAPH}">Dependency graph</a>'
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{policy}<title>{_e(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f'<link rel="stylesheet" href="{assets}{STYLESHEET}">\n</head>\n<body>\n'
        f"<header><strong>Schema registry</strong> {nav}</header>\n<main>\n{body}</main>\n"
        f'<script{nonce} src="{assets}{MERMAID}"></script>\n'
        f'<script{nonce} src="{assets}{START}"></script>\n</body>\n</html>\n'
    )


def _diagram(source: str, label: str) -> str:
    return f'<pre class="mermaid" aria-label="{_e(label)}">{_e(source.rstrip())}</pre>\n'


def _service_name(name: str, links: Links) -> str:
    url = links.service(name)
    return f'<a href="{_e(url)}">{_e(name)}</a>' if url else f"<code>{_e(name)}</code>"


def diagram_tables(registry: SchemaRegistry, service: str) -> list[SchemaDefinition]:
    """``service``'s tables, those they reference and those that reference them."""
    own = registry.tables(service)
    keys = {schema.key for schema in own}
    graph = registry.graph()
    for schema in own:
        keys.update(reference.target_key for reference in schema.references)
        keys.update(graph.table_dependents(schema.key))
    return [schema for schema in registry.schemas() if schema.key in keys]


def render_service_html(
    registry: SchemaRegistry,
    service: str,
    links: Links,
    *,
    pending: ImpactReport | None = None,
    pending_note: str | None = None,
) -> str:
    """One service's page: tables, references both ways, ER diagram, pending migration."""
    info = registry.service_info(service)
    graph = registry.graph()
    tables = registry.tables(service)
    out = [f"<h1>{_e(service)}</h1>\n"]
    if info.description:
        out.append(f"<p>{_e(info.description)}</p>\n")
    if info.owner:
        out.append(f"<p>Owner: {_e(info.owner)}</p>\n")
    depends = ", ".join(_service_name(name, links) for name in graph.dependencies(service))
    used_by = ", ".join(_service_name(name, links) for name in graph.dependents(service))
    out.append(f"<p>Depends on: {depends or 'none'}. Used by: {used_by or 'none'}.</p>\n")
    if pending is not None or pending_note is not None:
        out.append(_pending_html(service, pending, pending_note))
    out.append("<h2>Tables and references</h2>\n")
    shown = diagram_tables(registry, service)
    others = len(shown) - len(tables)
    out.append(
        f'<p class="note">{len(tables)} table(s) of {_e(service)}'
        + (f" and {others} of other services they reference or are referenced by" if others else "")
        + ".</p>\n"
    )
    out.append(_diagram(render_erd(shown), f"ER diagram of {service}"))
    out += [_references_html(schema, registry, graph, links) for schema in tables]
    out += [_table_html(schema) for schema in tables]
    return _document(f"{service} · schema", "".join(out), links)


def _references_html(
    schema: SchemaDefinition, registry: SchemaRegistry, graph: DependencyGraph, links: Links
) -> str:
    rows = []
    for reference in schema.references:
        target = reference.target_service
        where = "" if target == schema.service else f" ({_service_name(target, links)})"
        rows.append(
            f"<li><code>{_e(schema.table)}.{_e(reference.column)}</code> → "
            f"<code>{_e(reference.references)}</code>{where}, on delete "
            f"{_e(reference.on_delete.lower())}</li>"
        )
    for key in graph.table_dependents(schema.key):
        source = registry.find(*key.split(".", 1))
        if source is None:
            continue
        for reference in source.references:
            if reference.target_key == schema.key:
                where = (
                    ""
                    if source.service == schema.service
                    else f" ({_service_name(source.service, links)})"
                )
                rows.append(
                    f"<li><code>{_e(key)}.{_e(reference.column)}</code> → "
                    f"<code>{_e(schema.table)}.{_e(reference.target_column)}</code>{where}</li>"
                )
    if not rows:
        return ""
    return f"<h3>References of {_e(schema.table)}</h3>\n<ul>\n" + "\n".join(rows) + "\n</ul>\n"


def _table_html(schema: SchemaDefinition) -> str:
    out = [f'<h2 id="{_e(schema.key)}">{_e(schema.table)} (version {_e(schema.version)})</h2>\n']
    if schema.description:
        out.append(f"<p>{_e(schema.description)}</p>\n")
    headings = "".join(f"<th>{heading}</th>" for heading in COLUMN_HEADINGS)
    out.append(f"<table><tr>{headings}</tr>\n")
    for column in column_facts(schema):
        default = "" if column.default is None else f"<code>{_e(column.default)}</code>"
        out.append(
            f"<tr><td>{_e(column.name)}</td><td><code>{_e(column.type)}</code></td>"
            f"<td>{column.null}</td><td>{default}</td><td>{column.key}</td>"
            f"<td>{_e(column.description)}</td></tr>\n"
        )
    out.append("</table>\n")
    indexes = index_facts(schema)
    if indexes:
        items = "".join(
            f"<li><code>{_e(index.name)}</code>: {_e(index.summary)}</li>" for index in indexes
        )
        out.append(f"<p>Indexes:</p>\n<ul>{items}</ul>\n")
    return "".join(out)


def _pending_html(service: str, report: ImpactReport | None, note: str | None) -> str:
    if report is None:
        return f'<h2>Pending migrations</h2>\n<p class="note">{_e(note)}</p>\n'
    data = report.to_dict()
    steps = [step for step in data["steps"] if step["service"] == service]
    elsewhere = sorted({step["service"] for step in data["steps"]} - {service})
    if not data["steps"]:
        return (
            '<h2>Pending migrations</h2>\n<p class="note">None: the databases hold every '
            "current version of the registry.</p>\n"
        )
    out = [
        '<h2>Pending migrations</h2>\n<div class="pending">\n'
        f"<p>The registry is ahead of the database: {len(steps)} pending step(s) for "
        f"{_e(service)}"
        + (f"; also pending in {_e(', '.join(elsewhere))}" if elsewhere else "")
        + ".</p>\n"
    ]
    if steps:
        out.append(
            "<table><tr><th>step</th><th>version</th><th>operations</th><th>findings</th></tr>\n"
        )
        for step in steps:
            versions = f"{step['from_version'] or 'new'} → {step['to_version'] or 'dropped'}"
            operations = "".join(f"<li>{_e(op)}</li>" for op in step["operations"])
            findings = "".join(
                f'<li><span class="{_e(finding["severity"]).lower()}">{_e(finding["code"])} '
                f"{_e(finding['severity'])}</span>: {_e(finding['message'])} "
                f"<em>Safer: {_e(finding['suggestion'])}</em></li>"
                for finding in step["findings"]
            )
            out.append(
                f"<tr><td><code>{_e(step['schema'])}</code></td><td>{_e(versions)}</td>"
                f"<td><ul>{operations or '<li>no DDL</li>'}</ul></td>"
                f"<td><ul>{findings or '<li>none</li>'}</ul></td></tr>\n"
            )
        out.append("</table>\n")
    out.append("<h3>Impact report</h3>\n")
    out.append(f"<p>Changed services: {_e(', '.join(data['changed_services']) or 'none')}.</p>\n")
    affected = data["affected_services"]
    if affected:
        items = "".join(
            f"<li>{_e(name)} (depends on {_e(', '.join(why['depends_on_changed']))})</li>"
            for name, why in affected.items()
        )
        out.append(f"<p>Affected through references:</p>\n<ul>{items}</ul>\n")
    out.append(
        f"<p>Findings: {data['errors']} error(s), {data['warnings']} warning(s). Plan "
        f"<code>{_e(data['plan'])}</code>.</p>\n</div>\n"
    )
    return "".join(out)


def render_index_html(registry: SchemaRegistry, links: Links) -> str:
    """The index: every service with owner, tables and dependencies, linked to its page."""
    graph = registry.graph()
    rows = []
    for service in registry.services():
        info = registry.service_info(service)
        tables = ", ".join(schema.table for schema in registry.tables(service))
        depends = ", ".join(graph.dependencies(service))
        used_by = ", ".join(graph.dependents(service))
        rows.append(
            f"<tr><td>{_service_name(service, links)}</td><td>{_e(info.owner or '')}</td>"
            f"<td>{_e(tables)}</td><td>{_e(depends)}</td><td>{_e(used_by)}</td>"
            f"<td>{_e(info.description or '')}</td></tr>\n"
        )
    body = (
        "<h1>Services</h1>\n<table><tr><th>service</th><th>owner</th><th>tables</th>"
        "<th>depends on</th><th>used by</th><th>description</th></tr>\n"
        + "".join(rows)
        + "</table>\n"
        + f'<p><a href="{GRAPH}">The cross-service dependency graph</a>: which service '
        "references which, and every table.</p>\n"
    )
    return _document("Schema registry", body, links)


def render_graph_html(registry: SchemaRegistry, links: Links) -> str:
    """The cross-service dependency graph and the ER diagram of every table."""
    graph = registry.graph()
    order = ", ".join(graph.order()) if not graph.cycles() else "none (the graph has a cycle)"
    body = (
        "<h1>Dependency graph</h1>\n<p>An arrow points from a service to one whose tables it "
        f"references. Migration order: {_e(order)}.</p>\n"
        + _diagram(render_service_graph(graph), "service dependency graph")
        + "<h2>Every table</h2>\n"
        + _diagram(render_erd(registry.schemas()), "ER diagram of every table")
    )
    return _document("Dependency graph · schema registry", body, links)


def page_name(service: str) -> str:
    """The file name of ``service``'s page in the static site."""
    name = f"{service}.html"
    return f"service-{name}" if name in {INDEX, GRAPH} else name


def write_html_site(
    registry: SchemaRegistry, directory: str | Path, *, history: HistoryStore | None = None
) -> list[Path]:
    """Write the registry as a static site: index, a page per service, the dependency graph.

    The pages load Mermaid and their script from ``assets/`` beside them (the site works from
    disk and from any web server, with no network); each carries a Content-Security-Policy
    that allows scripts from the site only. With the coordinator's ``history``, each service
    page shows the migrations the databases still lack.

    Returns:
        The files written, the index first.
    """
    root = Path(directory)
    (root / ASSETS).mkdir(parents=True, exist_ok=True)
    links = Links(assets=f"{ASSETS}/", service=page_name, site=True)
    report = pending_migration(registry, history) if history is not None else None
    pages = {INDEX: render_index_html(registry, links), GRAPH: render_graph_html(registry, links)}
    for service in registry.services():
        pages[page_name(service)] = render_service_html(registry, service, links, pending=report)
    written = []
    for name, text in pages.items():
        (root / name).write_text(text, encoding="utf-8")
        written.append(root / name)
    for name, source in asset_files().items():
        (root / ASSETS / name).write_bytes(source.read_bytes())
        written.append(root / ASSETS / name)
    return written
