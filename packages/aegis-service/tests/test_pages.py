"""bootstrap() serves /asyncapi and /schema: public or protected, listed in the OpenAPI document.

What they look like in a browser is checked in examples/tests/test_pages_browser.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.core.errors import ConfigurationError
from aegis.msg import Event, InMemoryTransport
from aegis.schema import SchemaValidationError
from aegis.service import AuthSettings, PagesSettings, Service, ServiceSettings, bootstrap

pytestmark = pytest.mark.anyio

SCHEMAS = Path(__file__).resolve().parents[3] / "examples" / "schemas"


class ShippedData(BaseModel):
    order_id: str


class Shipped(Event[ShippedData]):
    """An order left the warehouse."""

    type = "pages.order.shipped"
    topic = "shipments"


def app_with(**settings: Any) -> tuple[FastAPI, Service]:
    app = FastAPI()
    pages = settings.pop("pages", PagesSettings(schema_registry=SCHEMAS, schema_service="users"))
    service = bootstrap(
        app,
        ServiceSettings(name="orders", version="2.1.0", log=None, pages=pages, **settings),
        registry=CollectorRegistry(),
        transport=InMemoryTransport(),
    )
    return app, service


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")


async def test_both_pages_their_documents_and_assets_are_served() -> None:
    app, service = app_with()
    assert service.asyncapi is not None
    assert service.publisher is not None
    service.asyncapi.publisher(service.publisher, Shipped)
    async with client(app) as http:
        page = await http.get("/asyncapi")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "'nonce-" in page.headers["content-security-policy"]
        document = (await http.get("/asyncapi.json")).json()
        assert document["info"] == {"title": "orders", "version": "2.1.0"}
        assert list(document["channels"]) == ["shipments"]
        assert "pages.order.shipped" in (await http.get("/asyncapi.yaml")).text
        assert (await http.get("/asyncapi/assets/standalone.js")).status_code == 200
        schema = await http.get("/schema")
        assert schema.status_code == 200
        assert "<h1>users</h1>" in schema.text
        assert "policies.policies" in schema.text  # a table of another service referencing it
        assert (await http.get("/schema/assets/mermaid.min.js")).status_code == 200


async def test_protected_pages_need_a_token_but_their_assets_do_not() -> None:
    auth = AuthSettings(issuer="orders", audience="orders")
    app, service = app_with(
        auth=auth,
        pages=PagesSettings(schema_registry=SCHEMAS, schema_service="users", public=False),
    )
    assert service.tokens is not None
    token = service.tokens.issue_pair("u1", roles=["user"]).access_token
    async with client(app) as http:
        for path in ("/asyncapi", "/asyncapi.json", "/schema"):
            refused = await http.get(path)
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"
            allowed = await http.get(path, headers={"authorization": f"Bearer {token}"})
            assert allowed.status_code == 200
        assert (await http.get("/asyncapi/assets/asyncapi-page.js")).status_code == 200
        assert (await http.get("/schema/assets/schema-page.js")).status_code == 200
    spec = app.openapi()
    validate(spec)
    assert spec["paths"]["/schema"]["get"]["security"] == [{"bearerAuth": []}]


async def test_public_pages_need_no_token_and_the_openapi_document_lists_them() -> None:
    app, _ = app_with(auth=AuthSettings(issuer="orders", audience="orders"))
    async with client(app) as http:
        assert (await http.get("/asyncapi")).status_code == 200
        assert (await http.get("/schema")).status_code == 200
    spec = app.openapi()
    validate(spec)
    paths = spec["paths"]
    assert set(paths) >= {"/asyncapi", "/asyncapi.json", "/asyncapi.yaml", "/schema"}
    page = paths["/asyncapi"]["get"]
    assert "text/html" in page["responses"]["200"]["content"]
    assert page["tags"] == ["documentation"]
    assert "security" not in page
    assert "application/yaml" in paths["/asyncapi.yaml"]["get"]["responses"]["200"]["content"]


async def test_pages_move_with_their_settings_and_go_with_none() -> None:
    moved = PagesSettings(asyncapi_path="/docs/events", schema_path="/docs/tables")
    app, _ = app_with(pages=moved)
    async with client(app) as http:
        page = await http.get("/docs/events")
        assert 'src="events/assets/standalone.js"' in page.text
        assert (await http.get("/docs/events/assets/standalone.js")).status_code == 200
        assert (await http.get("/asyncapi")).status_code == 404
        assert (await http.get("/docs/tables")).status_code == 404  # no registry named
    app, _ = app_with(pages=None)
    async with client(app) as http:
        assert (await http.get("/asyncapi")).status_code == 404
    assert "/asyncapi" not in app.openapi()["paths"]


async def test_without_a_transport_there_is_no_event_page() -> None:
    app = FastAPI()
    service = bootstrap(app, ServiceSettings(name="plain", log=None), registry=CollectorRegistry())
    assert service.asyncapi is None
    async with client(app) as http:
        assert (await http.get("/asyncapi")).status_code == 404


def test_a_bad_registry_or_service_name_stops_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no service 'orders'"):
        app_with(pages=PagesSettings(schema_registry=SCHEMAS))  # the service's own name
    broken = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, broken)
    (broken / "users.yaml").write_text("service: users\ntable: [\n")
    with pytest.raises(SchemaValidationError):
        app_with(pages=PagesSettings(schema_registry=broken, schema_service="users"))


def test_page_paths_are_checked() -> None:
    with pytest.raises(ValueError, match="asyncapi_path"):
        PagesSettings(asyncapi_path="asyncapi")
    with pytest.raises(ValueError, match="schema_path"):
        PagesSettings(schema_path="/schema/")
