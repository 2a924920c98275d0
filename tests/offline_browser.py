"""Debian's headless Chromium for the browser tests, with no request allowed off the machine.

Shared by tests/test_docs_browser.py and examples/tests/test_pages_browser.py (which puts this
folder on ``sys.path``). Playwright drives the system ``chromium`` (``./dev test`` installs it
when missing), never a browser Playwright downloads. Each page is watched: console errors and
uncaught exceptions are recorded, and every request that would leave 127.0.0.1 (other than a
``file:`` or ``data:`` URL) is aborted and recorded, so a check can fail on either.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Request,
    Response,
    Route,
    sync_playwright,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("AEGIS_SCREENSHOTS", ROOT / ".aegis" / "screenshots"))
"""Where screenshots go: AEGIS_SCREENSHOTS, else .aegis/screenshots/."""
LOCAL_HOSTS = frozenset({"127.0.0.1"})
LOCAL_SCHEMES = frozenset({"data", "file", "blob"})
RENDER_TIMEOUT_MS = 60_000  # a 2-core machine shared with other test workers
WAIT_SLICE_MS = 500
WaitUntil = Literal["commit", "domcontentloaded", "load", "networkidle"]


def is_local(url: str) -> bool:
    """Whether loading ``url`` stays on this machine."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOCAL_HOSTS


@dataclass
class Visit:
    """One page load: what the browser logged and asked for."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def check_clean(self) -> None:
        """Fail on a console error, a page error or a request that would have left the machine."""
        assert self.errors == [], f"console errors or page errors on {self.page.url}"
        assert self.refused == [], f"requests from {self.page.url} that would leave the machine"
        for url in self.requests:
            assert is_local(url), url


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch Debian's Chromium headless (AEGIS_TEST_CHROMIUM names another binary).

    Skips only where ``./dev`` could not install it (it says why in AEGIS_CHROMIUM_UNAVAILABLE);
    anywhere else a missing browser fails the test.
    """
    executable = os.environ.get("AEGIS_TEST_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        unavailable = os.environ.get("AEGIS_CHROMIUM_UNAVAILABLE")
        if unavailable:
            pytest.skip(
                f"no chromium on this machine and ./dev could not install it: {unavailable}"
            )
        pytest.fail("no chromium: apt-get install chromium (./dev test installs it when missing)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


def new_context(browser: Browser) -> BrowserContext:
    """A context like one person's tabs, at a fixed desktop size, without service workers."""
    return browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")


def visit(context: BrowserContext, url: str, *, wait_until: WaitUntil = "load") -> Visit:
    """Open ``url`` in a new page of ``context``, watching its errors and requests.

    Returns when the page reached ``wait_until`` (``"commit"``: as soon as its answer starts,
    so that several pages can load at once). A response of status 400 or more counts as an
    error, named by its URL (the console's own message does not name it).
    """
    page = context.new_page()
    seen = Visit(page)

    def response(answer: Response) -> None:
        if answer.status >= 400:
            seen.errors.append(f"{answer.status} {answer.url}")

    def route(target: Route, request: Request) -> None:
        if is_local(request.url):
            target.continue_()
        else:
            seen.refused.append(request.url)
            target.abort()

    page.route("**/*", route)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on(
        "console",
        lambda message: seen.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: seen.errors.append(f"page error: {error}"))
    page.on("response", response)
    page.goto(url, wait_until=wait_until)
    return seen


def wait_for(seen: Visit, selector: str) -> None:
    """Wait for ``selector``, failing at once when the page logs an error instead."""
    for _ in range(RENDER_TIMEOUT_MS // WAIT_SLICE_MS):
        try:
            seen.page.wait_for_selector(selector, timeout=WAIT_SLICE_MS)
        except PlaywrightTimeoutError:
            assert seen.errors == [], f"the page logged errors while drawing {selector}"
        else:
            return
    pytest.fail(f"{selector} did not appear within {RENDER_TIMEOUT_MS} ms")


def screenshot(
    seen: Visit, name: str, *, also: Path | None = None, full_page: bool = False
) -> Path:
    """Save a screenshot as SCREENSHOTS/``name`` (and a copy in folder ``also``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    seen.page.screenshot(path=path, full_page=full_page)
    if also is not None:
        also.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, also / name)
    return path
