"""The documentation site, checked as built and in a real browser (Debian's headless Chromium).

The site is built once per session (``built_site``, conftest.py: ``mkdocs build --strict``).
Every page's links and assets are read from its HTML: each one inside the site must lead to a
file of the site, and each ``#anchor`` to an element of its page; a link to another host is
never fetched, and nothing a page loads (script, stylesheet, image) may come from another host.

Then the site is served on 127.0.0.1 and every page is opened in Chromium driven by Playwright
(tests/offline_browser.py): no console error, no uncaught exception, and no request leaving the
machine (any other request is aborted and fails the test). The sample registry's Mermaid
diagrams (the service dependency graph and the ER diagrams) must be drawn as SVGs with one node
per service or table, and every benchmark chart of the Performance page must load.
Screenshots of the ER diagram and of the Performance page go to .aegis/screenshots/ and to the
built site's ``screenshots/`` folder. One browser serves the whole module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from aegis.schema import SchemaRegistry
from aegis.testing import uvicorn_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from offline_browser import Visit, chromium, new_context, screenshot, visit, wait_for

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_REGISTRY = ROOT / "examples" / "schemas"
CHARTS = ROOT / "benchmarks" / "charts"
# Links are resolved against this made-up origin: a link that keeps it stays inside the site.
SITE_ORIGIN = "http://site.invalid"
PAGES_AT_ONCE = 4
# Attributes whose URL the page loads by itself (a link a reader follows is an <a href>).
LOADED = {("script", "src"), ("img", "src"), ("link", "href"), ("iframe", "src")}
LOADED |= {("source", "src"), ("video", "src"), ("audio", "src"), ("embed", "src")}
# Material replaces each <pre class="mermaid"> with a <div class="mermaid"> whose closed shadow
# root holds the SVG. This keeps a reference to each shadow root so the test can look inside.
KEEP_SHADOW_ROOTS = """
const attachShadow = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  const root = attachShadow.call(this, init);
  this.aegisShadowRoot = root;
  return root;
};
"""


@dataclass
class PageLinks:
    """What one HTML file links to and which fragment targets it has."""

    urls: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, URL)
    anchors: set[str] = field(default_factory=set)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found = PageLinks()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if "id" in values:
            self.found.anchors.add(values["id"])
        if tag == "a" and "name" in values:
            self.found.anchors.add(values["name"])
        for attribute in ("href", "src"):
            if attribute in values:
                self.found.urls.append((tag, attribute, values[attribute]))


def read_pages(site: Path) -> dict[str, PageLinks]:
    """``{path in the site: its links}`` for every HTML file of the site."""
    pages = {}
    for path in sorted(site.rglob("*.html")):
        parser = _LinkParser()
        parser.feed(path.read_text())
        pages[path.relative_to(site).as_posix()] = parser.found
    return pages


def has_anchor(links: PageLinks, fragment: str) -> bool:
    """Whether a link's ``#fragment`` (none at all counts) names an element of its page."""
    return fragment == "" or unquote(fragment) in links.anchors


def page_url(path: str) -> str:
    """A page's address in the site (``performance/index.html`` -> ``performance/``)."""
    return path.removesuffix("index.html")


@pytest.fixture(scope="module")
def pages(built_site: Path) -> dict[str, PageLinks]:
    return read_pages(built_site)


@pytest.fixture(scope="module")
def site_url(built_site: Path) -> Iterator[str]:
    """The built site served over HTTP on 127.0.0.1 (its search needs more than file: URLs)."""
    app = Starlette(routes=[Mount("/", StaticFiles(directory=built_site, html=True))])
    with uvicorn_server(app) as server:
        yield f"{server.url}/"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = new_context(browser)
    opened.add_init_script(KEEP_SHADOW_ROOTS)
    yield opened
    opened.close()


def test_every_internal_link_and_asset_resolves_and_nothing_loads_from_another_host(
    built_site: Path, pages: dict[str, PageLinks]
) -> None:
    assert "index.html" in pages
    assert "schema-registry/index.html" in pages
    broken, foreign = [], []
    for path, links in pages.items():
        for tag, attribute, url in links.urls:
            target = urlsplit(urljoin(f"{SITE_ORIGIN}/{path}", url))
            if f"{target.scheme}://{target.netloc}" != SITE_ORIGIN:
                if (tag, attribute) in LOADED and target.scheme not in {"data", "blob"}:
                    foreign.append(f"{path}: <{tag} {attribute}={url!r}>")
                continue  # a link to another site: never fetched
            relative = unquote(target.path).lstrip("/")
            if relative == "" or relative.endswith("/"):
                relative += "index.html"
            if not (built_site / relative).is_file():
                broken.append(f"{path}: <{tag} {attribute}={url!r}>: no {relative}")
            elif relative.endswith(".html") and not has_anchor(pages[relative], target.fragment):
                broken.append(f"{path}: <{tag} {attribute}={url!r}>: no such anchor")
    assert broken == [], "links and assets that lead nowhere"
    assert foreign == [], "pages that load something from another host"


def test_every_page_opens_without_errors_or_requests_off_the_machine(
    context: BrowserContext, site_url: str, pages: dict[str, PageLinks]
) -> None:
    failures = []
    paths = list(pages)
    # A few pages load at once: the browser's processes overlap their waits.
    for start in range(0, len(paths), PAGES_AT_ONCE):
        batch = paths[start : start + PAGES_AT_ONCE]
        visits = [visit(context, site_url + page_url(p), wait_until="commit") for p in batch]
        for path, seen in zip(batch, visits, strict=True):
            seen.page.wait_for_load_state("load")
            try:
                seen.check_clean()
            except AssertionError as error:
                failures.append(f"{path}: {error}: {seen.errors} {seen.refused}")
            seen.page.close()
    assert failures == []


def drawn_nodes(seen: Visit, diagrams: int) -> list[int]:
    """Wait for Material to draw ``diagrams`` Mermaid diagrams; the SVG nodes of each."""
    wait_for(seen, f"div.mermaid >> nth={diagrams - 1}")
    nodes: list[int] = seen.page.eval_on_selector_all(
        "div.mermaid",
        "hosts => hosts.map(host => host.aegisShadowRoot.querySelectorAll('svg g.node').length)",
    )
    assert seen.page.locator("pre.mermaid").count() == 0, "a diagram was left as text"
    seen.check_clean()
    return nodes


def test_the_registry_graph_and_er_diagrams_render_to_svg(
    context: BrowserContext, site_url: str, built_site: Path
) -> None:
    registry = SchemaRegistry.load(SAMPLE_REGISTRY)
    overview = visit(context, f"{site_url}schema-registry/")
    # the service dependency graph, then the ER diagram of every table
    assert drawn_nodes(overview, 2) == [len(registry.services()), len(registry.schemas())]
    overview.page.locator("div.mermaid").nth(1).scroll_into_view_if_needed()
    screenshot(overview, "docs-erd.png", also=built_site / "screenshots")
    for service in registry.services():
        seen = visit(context, f"{site_url}schema-registry/{service}/")
        assert drawn_nodes(seen, 1) == [len(registry.tables(service))], service


def test_the_performance_page_shows_every_benchmark_chart(
    context: BrowserContext, site_url: str, built_site: Path
) -> None:
    charts = sorted(chart.name for chart in CHARTS.glob("*.png"))
    assert charts, "benchmarks/charts/ has the charts RESULTS.md shows"
    seen = visit(context, f"{site_url}performance/")
    seen.page.wait_for_load_state("load")
    loaded = seen.page.eval_on_selector_all(
        "article img",
        "images => images.map(image => [image.getAttribute('src'),"
        " image.complete && image.naturalWidth > 0])",
    )
    assert sorted(PurePosixPath(src).name for src, _ in loaded) == charts
    assert [src for src, ok in loaded if not ok] == [], "charts that did not load"
    seen.check_clean()
    screenshot(seen, "docs-performance.png", also=built_site / "screenshots", full_page=True)
