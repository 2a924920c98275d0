"""The registry as HTML: the served /schema page, pending migrations and the static site.

What the pages look like in a browser (Mermaid draws one node per table, no console error, no
request off the machine) is checked in examples/tests/test_pages_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from aegis.core.errors import ConfigurationError
from aegis.schema import (
    HistoryStore,
    MigrationCoordinator,
    SchemaColumn,
    SchemaRegistry,
    pending_migration,
    schema_page,
    schema_page_assets,
    write_html_site,
)
from aegis.schema._cli import main
from aegis.schema._html import diagram_tables
from aegis.schema._pending import deployed_versions

VENDOR = Path(__file__).resolve().parents[1] / "src/aegis/schema/_vendor/mermaid"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    @classmethod
    def of(cls, page: str) -> list[tuple[str, dict[str, str | None]]]:
        parser = cls()
        parser.feed(page)
        return parser.tags


def get(
    app: Any, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One GET through an ASGI app: status, headers, body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(app(scope, receive, send))
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], head, b"".join(m.get("body", b"") for m in sent[1:])


def bootstrapped(registry_dir: Path, tmp_path: Path) -> str:
    """Create every table of the registry in SQLite databases; return the history's URL."""
    history = f"sqlite:///{tmp_path / 'history.db'}"
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("users", "policies")}
    with MigrationCoordinator(SchemaRegistry.load(registry_dir), urls, history=history) as c:
        c.bootstrap()
    return history


def with_phone_column(registry_dir: Path) -> SchemaRegistry:
    """The registry with users.users 1.1.0 (a new nullable column), saved: ahead of the DB."""
    registry = SchemaRegistry.load(registry_dir)
    current = registry.get("users", "users")
    phone = SchemaColumn(name="phone", type="string(32)", description="Optional.")
    registry.register(
        current.model_copy(update={"version": "1.1.0", "columns": (*current.columns, phone)})
    )
    registry.save()
    return SchemaRegistry.load(registry_dir)


def test_a_bootstrapped_registry_has_nothing_pending(registry_dir: Path, tmp_path: Path) -> None:
    history = HistoryStore(bootstrapped(registry_dir, tmp_path))
    registry = SchemaRegistry.load(registry_dir)
    assert deployed_versions(history) == {"users.users": "1.0.0", "policies.policies": "1.0.0"}
    assert pending_migration(registry, history).plan.steps == []
    history.close()


def test_a_registry_ahead_of_the_database_shows_the_pending_step_and_its_impact(
    registry_dir: Path, tmp_path: Path
) -> None:
    history = bootstrapped(registry_dir, tmp_path)
    registry = with_phone_column(registry_dir)
    report = pending_migration(registry, HistoryStore(history))
    assert [step.id for step in report.plan.steps] == ["users.users@1.1.0"]
    assert report.to_dict()["affected_services"] == {"policies": {"depends_on_changed": ["users"]}}
    status, _, body = get(schema_page(registry, "users", history=history), "/schema")
    page = body.decode()
    assert status == 200
    assert "The registry is ahead of the database: 1 pending step(s) for users" in page
    assert "1.0.0 → 1.1.0" in page
    assert "add column users.phone string(32) NULL" in page
    assert "policies (depends on users)" in page
    # the other service's page names the step as pending elsewhere, not as its own
    _, _, other = get(schema_page(registry, "policies", history=history), "/schema")
    assert "0 pending step(s) for policies; also pending in users" in other.decode()


def test_runs_that_failed_count_for_nothing_and_rollbacks_move_versions_back(
    registry_dir: Path, tmp_path: Path
) -> None:
    history_url = bootstrapped(registry_dir, tmp_path)
    deployed = SchemaRegistry.load(registry_dir)
    ahead = with_phone_column(registry_dir)
    urls = {name: f"sqlite:///{tmp_path / name}.db" for name in ("users", "policies")}
    with MigrationCoordinator(deployed, urls, history=history_url) as coordinator:
        run = coordinator.execute(coordinator.plan_migration([ahead.get("users", "users")]))
        assert deployed_versions(coordinator.history)["users.users"] == "1.1.0"
        assert pending_migration(ahead, coordinator.history).plan.steps == []
        coordinator.rollback(run.id)
        assert deployed_versions(coordinator.history)["users.users"] == "1.0.0"
        steps = pending_migration(ahead, coordinator.history).plan.steps
        assert [step.id for step in steps] == ["users.users@1.1.0"]


def test_the_page_lists_tables_references_both_ways_and_an_erd_of_them(
    registry: SchemaRegistry,
) -> None:
    status, headers, body = get(schema_page(registry, "users"), "/docs/schema")
    page = body.decode()
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert '<h2 id="users.users">users (version 1.0.0)</h2>' in page
    assert "policies.policies.holder_id</code> → <code>users.id" in page
    (erd,) = re.findall(r'<pre class="mermaid"[^>]*>(.*?)</pre>', page, re.DOTALL)
    assert erd.startswith("erDiagram")
    shown = [schema.key for schema in diagram_tables(registry, "users")]
    assert shown == ["policies.policies", "users.users"]
    for key in shown:
        assert f"[&quot;{key}&quot;]" in erd  # entity labels, HTML-escaped for the <pre>
    assert "cannot tell which versions its database holds" in page


def test_every_script_carries_the_response_nonce_and_loads_from_the_assets(
    registry: SchemaRegistry,
) -> None:
    app = schema_page(registry, "users")
    _, first, body = get(app, "/docs/schema")
    _, second, _ = get(app, "/docs/schema")
    (nonce,) = re.findall(r"'nonce-([^']+)'", first["content-security-policy"])
    assert nonce not in second["content-security-policy"]
    assert "script-src 'nonce-" in first["content-security-policy"]
    assert "unsafe-eval" not in first["content-security-policy"]
    scripts = [attrs for tag, attrs in Tags.of(body.decode()) if tag == "script"]
    assert [attrs["src"] for attrs in scripts] == [
        "schema/assets/mermaid.min.js",
        "schema/assets/schema-page.js",
    ]
    assert {attrs["nonce"] for attrs in scripts} == {nonce}


def test_registry_text_is_escaped_on_the_page(registry_dir: Path) -> None:
    users = registry_dir / "users.yaml"
    users.write_text(
        users.read_text().replace(
            "Accounts that can sign in.", '"<script>alert(1)</script> & <!--"'
        )
    )
    _, _, body = get(schema_page(SchemaRegistry.load(registry_dir), "users"), "/schema")
    page = body.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;!--" in page


def test_an_unreadable_history_is_said_on_the_page_and_logged(
    registry: SchemaRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = HistoryStore(f"sqlite:///{tmp_path / 'history.db'}")
    (tmp_path / "history.db").write_bytes(b"not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="aegis.schema"):
        status, _, body = get(schema_page(registry, "users", history=history), "/schema")
    assert status == 200
    assert "The migration history cannot be read: DatabaseError." in body.decode()
    assert "the migration history cannot be read" in caplog.text
    history.close()


def test_an_unknown_service_is_refused_with_the_known_ones(registry: SchemaRegistry) -> None:
    with pytest.raises(ConfigurationError, match=r"no service 'orders'.*policies, users"):
        schema_page(registry, "orders")


def test_the_assets_are_the_vendored_mermaid_and_the_page_script() -> None:
    app = schema_page_assets()
    status, headers, body = get(app, "/schema/assets/mermaid.min.js")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert body == (VENDOR / "mermaid.min.js").read_bytes()
    record = json.loads((VENDOR / "VENDORED.json").read_text())
    assert record["package"] == "mermaid"
    assert record["license"] == "MIT"
    assert get(app, "/schema/assets/LICENSE")[2] == (VENDOR / "LICENSE").read_bytes()
    assert get(app, "/schema/assets/VENDORED.json")[0] == 404


def test_the_static_site_has_an_index_a_page_per_service_and_the_graph(
    registry_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    assert main(["docs", "--registry", str(registry_dir), "--html", str(site)]) == 0
    assert "wrote " + str(site / "index.html") in capsys.readouterr().out
    names = sorted(str(path.relative_to(site)) for path in site.rglob("*") if path.is_file())
    assert names == [
        "assets/LICENSE",
        "assets/mermaid.min.js",
        "assets/schema-page.js",
        "assets/schema.css",
        "graph.html",
        "index.html",
        "policies.html",
        "users.html",
    ]
    index = (site / "index.html").read_text()
    assert '<a href="users.html">users</a>' in index
    assert '<a href="graph.html">' in index
    graph = (site / "graph.html").read_text()
    assert graph.count('<pre class="mermaid"') == 2
    assert "flowchart LR" in graph
    policies = (site / "policies.html").read_text()
    assert 'Depends on: <a href="users.html">users</a>' in policies
    for page in (index, graph, policies):
        tags = Tags.of(page)
        (meta,) = [attrs for tag, attrs in tags if tag == "meta" and "http-equiv" in attrs]
        policy = str(meta["content"])
        assert "script-src 'self';" in policy
        assert "frame-ancestors" not in policy  # ignored in a <meta> element
        assert [attrs["src"] for tag, attrs in tags if tag == "script"] == [
            "assets/mermaid.min.js",
            "assets/schema-page.js",
        ]


def test_the_static_site_with_a_history_shows_pending_migrations(
    registry_dir: Path, tmp_path: Path
) -> None:
    history = HistoryStore(bootstrapped(registry_dir, tmp_path))
    written = write_html_site(with_phone_column(registry_dir), tmp_path / "site", history=history)
    assert written[0] == tmp_path / "site" / "index.html"
    assert "1 pending step(s) for users" in (tmp_path / "site" / "users.html").read_text()
    history.close()
