"""The AsyncAPI HTML page: served under a nonce policy, written as one file, data kept as data.

What the page looks like in a browser (every channel and message drawn, no console error, no
request off the machine) is checked in examples/tests/test_pages_browser.py.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from aegis.msg import AsyncAPI, Event, EventPublisher, EventRegistry, InMemoryTransport
from aegis.msg._asyncapi_cli import main

pytestmark = pytest.mark.anyio

VENDOR = Path(__file__).resolve().parent.parent / "src/aegis/msg/_vendor/asyncapi-react-component"
HOSTILE = "</script><script>alert(1)</script><!-- <script> & \u2028"


class PlacedData(BaseModel):
    order_id: str


class Placed(Event[PlacedData]):
    """An order was placed."""

    type = "page.order.placed"
    topic = "orders"


def service() -> AsyncAPI:
    asyncapi = AsyncAPI(title="shop", version="1.0.0", description=HOSTILE)
    asyncapi.publisher(EventPublisher(InMemoryTransport(), registry=EventRegistry()), Placed)
    return asyncapi


class Elements(HTMLParser):
    """Every element with its attributes, and the text of each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[tuple[str, dict[str, str | None], str]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in {"script", "style"}:
            self.text.append((tag, dict(attrs), ""))
            self.inside = True

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            tag, attrs, text = self.text[-1]
            self.text[-1] = (tag, attrs, text + data)

    @classmethod
    def of(cls, page: str) -> Elements:
        parser = cls()
        parser.feed(page)
        return parser


def embedded_document(page: str) -> object:
    elements = Elements.of(page)
    (text,) = [
        text for tag, attrs, text in elements.text if attrs.get("id") == "aegis-asyncapi-document"
    ]
    return json.loads(text)


def app_of(asyncapi: AsyncAPI) -> Starlette:
    return Starlette(
        routes=[
            Route("/docs/asyncapi", asyncapi.app("html")),
            Mount("/docs/asyncapi/assets", asyncapi.assets_app()),
        ]
    )


async def test_the_page_embeds_the_document_as_data_that_no_markup_in_it_escapes() -> None:
    asyncapi = service()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app_of(asyncapi)), base_url="http://test"
    ) as client:
        response = await client.get("/docs/asyncapi")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "</script><script>alert" not in response.text
    assert embedded_document(response.text) == asyncapi.document()
    elements = Elements.of(response.text)
    scripts = [attrs for tag, attrs in elements.tags if tag == "script"]
    # the document, the vendored bundle and the start-up file; nothing else is a script
    assert [attrs.get("type") for attrs in scripts] == ["application/json", None, None]


async def test_every_script_carries_the_nonce_of_its_response_and_the_policy_names_it() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app_of(service())), base_url="http://test"
    ) as client:
        first, second = await client.get("/docs/asyncapi"), await client.get("/docs/asyncapi")
    nonces = []
    for response in (first, second):
        policy = response.headers["content-security-policy"]
        (nonce,) = re.findall(r"'nonce-([A-Za-z0-9_-]+)'", policy)
        assert "default-src 'none'" in policy
        assert "frame-ancestors 'none'" in policy
        # the AsyncAPI parser in the bundle compiles validators with new Function on load
        script_src = next(part for part in policy.split("; ") if part.startswith("script-src"))
        assert script_src == f"script-src 'nonce-{nonce}' 'unsafe-eval'"
        loaded = [
            attrs
            for tag, attrs in Elements.of(response.text).tags
            if tag == "script" and "src" in attrs
        ]
        assert [attrs["src"] for attrs in loaded] == [
            "asyncapi/assets/standalone.js",
            "asyncapi/assets/asyncapi-page.js",
        ]
        assert {attrs["nonce"] for attrs in loaded} == {nonce}
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


async def test_the_assets_are_the_vendored_files_with_etags_and_gzip() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app_of(service())), base_url="http://test"
    ) as client:
        plain = await client.get(
            "/docs/asyncapi/assets/standalone.js", headers={"accept-encoding": "identity"}
        )
        assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
        assert plain.content == (VENDOR / "standalone.js").read_bytes()
        packed = await client.get(
            "/docs/asyncapi/assets/default.css", headers={"accept-encoding": "gzip"}
        )
        assert packed.headers["content-type"] == "text/css; charset=utf-8"
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.content == (VENDOR / "default.css").read_bytes()  # httpx decoded it
        assert int(packed.headers["content-length"]) == len(
            gzip.compress((VENDOR / "default.css").read_bytes(), mtime=0)
        )
        again = await client.get(
            "/docs/asyncapi/assets/standalone.js",
            headers={"if-none-match": plain.headers["etag"]},
        )
        assert again.status_code == 304
        assert again.content == b""
        assert (await client.get("/docs/asyncapi/assets/secrets.py")).status_code == 404
        assert (await client.get("/docs/asyncapi/assets/../__init__.py")).status_code == 404
        assert (await client.post("/docs/asyncapi/assets/standalone.js")).status_code == 405


def test_the_static_page_inlines_everything_and_allows_its_scripts_by_hash(
    tmp_path: Path,
) -> None:
    asyncapi = service()
    asyncapi.write(tmp_path / "events.html")
    page = (tmp_path / "events.html").read_text()
    assert embedded_document(page) == asyncapi.document()
    elements = Elements.of(page)
    assert not [attrs for tag, attrs in elements.tags if "src" in attrs or "href" in attrs][1:]
    (meta,) = [attrs for tag, attrs in elements.tags if tag == "meta" and "http-equiv" in attrs]
    policy = str(meta["content"])
    inline = [text for tag, attrs, text in elements.text if tag == "script" and not attrs]
    assert inline[0] == (VENDOR / "standalone.js").read_text()
    hashes = re.findall(r"'sha256-([^']+)'", policy)
    assert len(inline) == len(hashes) == 2
    for text, digest in zip(inline, hashes, strict=True):
        assert base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() == digest
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";", maxsplit=1)[0]


SERVICE_MODULE = """
from pydantic import BaseModel

from aegis.msg import AsyncAPI, Event, EventPublisher, EventRegistry, InMemoryTransport


class CliPlacedData(BaseModel):
    order_id: str


class CliPlaced(Event[CliPlacedData]):
    type = "page.cli.placed"
    topic = "orders"


asyncapi = AsyncAPI(title="cli-shop", version="1.0.0")
asyncapi.publisher(EventPublisher(InMemoryTransport(), registry=EventRegistry()), CliPlaced)
"""


@pytest.fixture
def service_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "page_service.py").write_text(SERVICE_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() adds the current directory
    monkeypatch.delitem(sys.modules, "page_service", raising=False)
    return tmp_path


def test_the_command_line_writes_the_page_with_html(service_module: Path) -> None:
    assert main(["page_service:asyncapi", "--html", "-o", "events.html"]) == 0
    page = (service_module / "events.html").read_text()
    document = embedded_document(page)
    assert isinstance(document, dict)
    assert document["info"] == {"title": "cli-shop", "version": "1.0.0"}
    assert list(document["channels"]) == ["orders"]
    assert page.startswith("<!doctype html>")
