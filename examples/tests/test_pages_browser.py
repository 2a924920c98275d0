"""The event catalogue and schema pages, opened in a real browser (Debian's headless Chromium).

user-service and policy-service run on uvicorn as they would in production (bootstrap() wires
/asyncapi and /schema); the whole schema registry is also written as a static site, and
user-service's AsyncAPI page as one static file. Each page is opened in Chromium driven by
Playwright, and must:

- log no console error and throw no page error;
- show every channel and message of the service's AsyncAPI document (asked of /asyncapi.json);
- have Mermaid draw each diagram as an SVG with one node per table (or service);
- make no request that leaves the machine: every request goes to 127.0.0.1 (or is a file: or
  data: URL); any other is aborted and fails the test.

Screenshots of the pages go to .aegis/screenshots/ (docs/pages.md shows copies). One browser
serves every test of the module; tests/offline_browser.py launches it and watches each page.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import policy_service
import pytest
import user_service
from playwright.sync_api import Browser, BrowserContext
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from aegis.db import DatabaseSettings
from aegis.msg import AsyncAPI, InMemoryTransport
from aegis.schema import MigrationCoordinator, SchemaRegistry, write_html_site
from aegis.schema._html import diagram_tables
from aegis.service import PagesSettings
from aegis.testing import RunningServer, uvicorn_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from offline_browser import Visit, chromium, new_context, screenshot, visit, wait_for

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "examples" / "schemas"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (``./dev test`` installs it), headless, for the whole module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context per test: its pages share a cache, as one person's tabs would."""
    opened = new_context(browser)
    yield opened
    opened.close()


@dataclass(frozen=True)
class Services:
    users: RunningServer
    policies: RunningServer
    users_asyncapi: AsyncAPI


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """Both services on uvicorn, their tables made by the coordinator (history kept)."""
    data = tmp_path_factory.mktemp("pages")
    urls = {name: f"sqlite:///{data / name}.db" for name in ("users", "policies")}
    history = f"sqlite:///{data / 'schema-history.db'}"
    with MigrationCoordinator(SchemaRegistry.load(SCHEMAS), urls, history=history) as schemas:
        schemas.bootstrap()
    transport = InMemoryTransport()
    secret = SecretStr("test-secret-of-policy-service")

    def database(name: str) -> DatabaseSettings:
        return DatabaseSettings(url=SecretStr(urls[name]), sqlite_transaction_mode="IMMEDIATE")

    def pages(service: str) -> PagesSettings:
        return PagesSettings(
            schema_registry=SCHEMAS, schema_service=service, schema_history_url=SecretStr(history)
        )

    users_app = user_service.create_app(
        user_service.Settings(
            database=database("users"),
            pages=pages("users"),
            policy_service_secret=secret,
            log=None,
        ),
        transport=transport,
        registry=CollectorRegistry(),
    )
    with uvicorn_server(users_app) as users:
        policies_app = policy_service.create_app(
            policy_service.Settings(
                database=database("policies"),
                pages=pages("policies"),
                users_url=users.url,
                client_secret=secret,
                log=None,
            ),
            transport=transport,
            registry=CollectorRegistry(),
        )
        with uvicorn_server(policies_app) as policies:
            yield Services(users, policies, users_app.state.service.asyncapi)


def asyncapi_document(server: RunningServer) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{server.url}/asyncapi.json").json()
    return document


def check_catalogue(seen: Visit, document: dict[str, Any]) -> str:
    """Wait for the AsyncAPI component, then check every channel and message is on the page."""
    wait_for(seen, "#aegis-asyncapi #introduction")
    text = seen.page.inner_text("#aegis-asyncapi")
    assert document["channels"], "the sample service declares its channels"
    for channel in document["channels"].values():
        assert channel["address"] in text
    for message_id, message in document["components"]["messages"].items():
        assert message_id in text
        assert message["title"] in text
    seen.check_clean()
    return text


def check_diagrams(seen: Visit, nodes: list[int]) -> None:
    """Wait for Mermaid, then check each diagram is an SVG with the given number of nodes."""
    wait_for(seen, "body[data-diagrams]")
    assert seen.page.get_attribute("body", "data-diagrams") == "rendered"
    drawn = seen.page.eval_on_selector_all(
        "pre.mermaid", "all => all.map(pre => pre.querySelectorAll('svg g.node').length)"
    )
    assert drawn == nodes
    seen.check_clean()


def test_the_event_catalogue_shows_every_channel_and_message(
    context: BrowserContext, services: Services
) -> None:
    document = asyncapi_document(services.users)
    assert {"user.created", "user.updated", "user.deleted"} <= set(
        document["components"]["messages"]
    )
    seen = visit(context, f"{services.users.url}/asyncapi")
    check_catalogue(seen, document)
    screenshot(seen, "asyncapi.png")
    # policy-service's page lists what it consumes and what it publishes
    consumer = asyncapi_document(services.policies)
    assert "receive-users-policy-service" in consumer["operations"]
    check_catalogue(visit(context, f"{services.policies.url}/asyncapi"), consumer)


def test_the_schema_page_draws_one_node_per_table(
    context: BrowserContext, services: Services
) -> None:
    registry = SchemaRegistry.load(SCHEMAS)
    for server, service in ((services.users, "users"), (services.policies, "policies")):
        seen = visit(context, f"{server.url}/schema")
        check_diagrams(seen, [len(diagram_tables(registry, service))])
        assert "None: the databases hold every current version" in seen.page.inner_text("main")
        if service == "users":
            screenshot(seen, "schema.png")


def test_the_static_registry_site_and_catalogue_work_offline(
    context: BrowserContext, services: Services, tmp_path: Path
) -> None:
    registry = SchemaRegistry.load(SCHEMAS)
    site = tmp_path / "site"
    write_html_site(registry, site)
    # the service pages are the served ones' twins (checked above): one is enough here
    pages = {
        "index.html": [],
        "graph.html": [len(registry.services()), len(registry.schemas())],
        "users.html": [len(diagram_tables(registry, "users"))],
    }
    for page, nodes in pages.items():
        seen = visit(context, (site / page).as_uri())
        if nodes:
            check_diagrams(seen, nodes)
        else:
            seen.page.wait_for_load_state("load")
            seen.check_clean()
        if page == "graph.html":
            screenshot(seen, "registry-graph.png")
    # aegis-msg-asyncapi --html: the same page as one file, opened from disk
    services.users_asyncapi.write(tmp_path / "events.html")
    seen = visit(context, (tmp_path / "events.html").as_uri())
    check_catalogue(seen, asyncapi_document(services.users))
