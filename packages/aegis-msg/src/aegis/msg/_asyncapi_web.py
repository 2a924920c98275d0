"""The AsyncAPI document over HTTP: JSON, YAML, and an HTML page drawn by AsyncAPI's React kit.

``@asyncapi/react-component``'s standalone bundle (Apache-2.0; version, licence and hashes in
``_vendor/asyncapi-react-component/VENDORED.json``) ships inside this package, so the page needs
no network. The document travels as JSON in a ``<script type="application/json">`` element
(escaped, see :func:`aegis.core.html.json_for_script`); the only scripts are the bundle and a
small start-up file. Served, they are files carrying the response's nonce; written as one static
file, they are inline and allowed by their hashes.

The bundle needs ``'unsafe-eval'``: the AsyncAPI parser inside it (Spectral, ajv) compiles its
JSON-schema validators with ``new Function`` as the bundle loads, so without it nothing renders.
No script from the page or its data is ever evaluated; the policy still refuses every script
element without the nonce or hash.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable, MutableMapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Final

from aegis.core.errors import ConfigurationError
from aegis.core.html import (
    HtmlPage,
    PackageFiles,
    PageContext,
    content_security_policy,
    json_script,
    script_hash,
)

Scope = MutableMapping[str, Any]
UNSAFE_EVAL: Final = "'unsafe-eval'"
_VENDOR: Final = "_vendor/asyncapi-react-component"
BUNDLE: Final = "standalone.js"
STYLESHEET: Final = "default.css"
START: Final = "asyncapi-page.js"
_OWN_STYLE: Final = "body{margin:0}#aegis-asyncapi{max-width:1400px;margin:0 auto}"


def asset_files() -> dict[str, Traversable]:
    """The page's files by public name: the vendored bundle and stylesheet, the start-up script."""
    package = files("aegis.msg")
    return {
        BUNDLE: package / _VENDOR / BUNDLE,
        STYLESHEET: package / _VENDOR / STYLESHEET,
        f"{BUNDLE}.LICENSE.txt": package / _VENDOR / f"{BUNDLE}.LICENSE.txt",
        "LICENSE": package / _VENDOR / "LICENSE",
        START: package / "_static" / START,
    }


def assets_app() -> PackageFiles:
    """An ASGI app serving :func:`asset_files` (mount it at the page's ``<path>/assets``)."""
    return PackageFiles(asset_files())


def _head(title: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)} · AsyncAPI</title>\n"
        '<link rel="icon" href="data:,">\n'
    )


def _title(document: dict[str, Any]) -> str:
    info = document.get("info", {})
    return f"{info.get('title', 'AsyncAPI')} {info.get('version', '')}".strip()


def served_page(document: dict[str, Any], context: PageContext) -> str:
    """The page for one response: assets by URL, every script carrying the nonce."""
    assets, nonce = html.escape(context.assets), html.escape(context.nonce)
    return (
        _head(_title(document))
        + f'<link rel="stylesheet" href="{assets}{STYLESHEET}">\n'
        + f"<style>{_OWN_STYLE}</style>\n</head>\n<body>\n"
        + '<div id="aegis-asyncapi"></div>\n'
        + json_script(document, "aegis-asyncapi-document")
        + f'\n<script nonce="{nonce}" src="{assets}{BUNDLE}"></script>\n'
        + f'<script nonce="{nonce}" src="{assets}{START}"></script>\n</body>\n</html>\n'
    )


def static_page(document: dict[str, Any]) -> str:
    """The page as one self-contained file: stylesheet and scripts inline, allowed by hash."""
    assets = asset_files()
    scripts = [assets[BUNDLE].read_text(encoding="utf-8"), assets[START].read_text("utf-8")]
    for script in scripts:
        _check_inlinable(script)
    stylesheet = assets[STYLESHEET].read_text(encoding="utf-8")
    if "</style" in stylesheet.lower():
        raise ConfigurationError("the vendored stylesheet cannot be inlined: it holds </style")
    policy = content_security_policy(
        [*(script_hash(script) for script in scripts), UNSAFE_EVAL],
        style_src=["'unsafe-inline'"],
        meta=True,
    )
    return (
        _head(_title(document))
        + f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">\n'
        + f"<style>{stylesheet}</style>\n<style>{_OWN_STYLE}</style>\n</head>\n<body>\n"
        + '<div id="aegis-asyncapi"></div>\n'
        + json_script(document, "aegis-asyncapi-document")
        + "".join(f"\n<script>{script}</script>" for script in scripts)
        + "\n</body>\n</html>\n"
    )


def page_app(document: Callable[[], dict[str, Any]]) -> HtmlPage:
    """An ASGI app serving :func:`served_page` of ``document()``, built per request."""

    def render(context: PageContext) -> str:
        return served_page(document(), context)

    return HtmlPage(render, script_src=[UNSAFE_EVAL])


_SCRIPT_OPEN = re.compile(r"<script", re.IGNORECASE)


def _check_inlinable(script: str) -> None:
    # HTML ends a script element at "</script", and inside "<!--" ... "-->" a "<script" makes
    # the parser skip the next "</script>" (the spec's double-escaped state).
    lowered = script.lower()
    trouble = "</script" in lowered
    start = lowered.find("<!--")
    while start != -1 and not trouble:
        end = lowered.find("-->", start + 4)
        opened = _SCRIPT_OPEN.search(lowered, start, end if end != -1 else len(lowered))
        trouble = opened is not None
        start = lowered.find("<!--", end) if end != -1 else -1
    if trouble:
        raise ConfigurationError(
            "the vendored AsyncAPI bundle cannot be inlined into one HTML file: it holds "
            "</script or <script inside <!--; serve the page instead (AsyncAPI.app('html'))"
        )


class DocumentApp:
    """Serves one rendering of the document; a class (not a function) so routers call it as ASGI."""

    def __init__(self, render: Callable[[], str], media_type: str) -> None:
        self.render = render
        self.media_type = media_type

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Scope]],
        send: Callable[[Scope], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] not in {"GET", "HEAD"}:
            status, body = 405, b"Method Not Allowed"
            headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8")]
        else:
            status, body = 200, self.render().encode()
            headers = [(b"content-type", f"{self.media_type}; charset=utf-8".encode())]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
