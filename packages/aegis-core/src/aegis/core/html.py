"""HTML pages a service serves beside its API, under a strict Content-Security-Policy.

The building blocks of aegis-msg's ``/asyncapi`` and aegis-schema's ``/schema`` pages: data
embedded as JSON that no ``</script>`` can break out of, a policy whose scripts must carry the
response's nonce (or match a hash, in a static file), an ASGI app that serves a page with a fresh
nonce per request, and one that serves files shipped inside a package. Pure ASGI and the
standard library: no web framework needed.

Examples:
    >>> page = HtmlPage(lambda context: f'<script nonce="{context.nonce}" src="x.js"></script>')
    >>> app.add_route("/page", page)  # Starlette or FastAPI
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import inspect
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import Any, Final

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# JSON in a <script> element ends at the first "</script" and may open a comment with "<!--":
# escaping <, > and & as \u escapes keeps the text valid JSON that the HTML parser never reads
# as markup (the escapes OWASP and Django's json_script use).
_SCRIPT_ESCAPES: Final = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}
_MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_MIN_GZIP_SIZE: Final = 1024
_SECURITY_HEADERS: Final = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def json_for_script(data: Any) -> str:
    r"""Return ``data`` as JSON text safe inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` are written as ``\u`` escapes, so neither ``</script>`` nor
    ``<!--`` in a string ends the element; ``JSON.parse(element.textContent)`` reads it back.
    """
    return json.dumps(data, ensure_ascii=False).translate(_SCRIPT_ESCAPES)


def json_script(data: Any, element_id: str) -> str:
    """Return a ``<script type="application/json" id=element_id>`` element holding ``data``."""
    return (
        f'<script type="application/json" id="{html.escape(element_id)}">'
        f"{json_for_script(data)}</script>"
    )


def script_hash(source: str) -> str:
    """The CSP hash source (``'sha256-...'``) of an inline script or style's exact text."""
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(
    script_src: Iterable[str],
    *,
    style_src: Iterable[str] = ("'self'", "'unsafe-inline'"),
    meta: bool = False,
) -> str:
    """A Content-Security-Policy allowing only the given scripts, styles and same-origin loads.

    Images may also be ``data:`` URLs; no plugins, frames, forms or base URL changes.

    ``script_src`` lists the sources of script (``'nonce-...'``, hashes, ``'self'``). Styles
    default to ``'self' 'unsafe-inline'``: diagram renderers (Mermaid) write ``<style>``
    elements into the SVG they draw, which a policy without it blocks. ``meta``: for a
    ``<meta http-equiv>`` element, which browsers refuse ``frame-ancestors`` in.
    """
    directives = {
        "default-src": "'none'",
        "script-src": " ".join(script_src),
        "style-src": " ".join(style_src),
        "img-src": "'self' data:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    if meta:
        del directives["frame-ancestors"]
    return "; ".join(f"{name} {value}" for name, value in directives.items())


@dataclass(frozen=True)
class PageContext:
    """What a page's renderer gets for one response.

    Attributes:
        nonce: the response's nonce; every ``<script>`` element must carry it.
        assets: the URL of the page's own asset folder, relative to the page
            (``"asyncapi/assets/"`` for a page at ``/docs/asyncapi``), ending in ``/``.
    """

    nonce: str
    assets: str


Render = Callable[[PageContext], "str | Awaitable[str]"]


class HtmlPage:
    """An ASGI app that answers GET and HEAD with an HTML page under a nonce-based policy.

    Each response gets a fresh nonce; ``render`` (plain or async) builds the page with it.
    The policy allows only scripts carrying that nonce, plus ``script_src`` (``'unsafe-eval'``
    for a bundle that compiles code at run time). The page is not cached.

    Args:
        render: builds the page's HTML for a :class:`PageContext`.
        script_src: more script sources for the policy.
        assets: the asset folder's URL relative to the page; by default ``<last path
            segment>/assets/``, so the page works behind any path prefix.
    """

    def __init__(
        self, render: Render, *, script_src: Iterable[str] = (), assets: str | None = None
    ) -> None:
        self.render = render
        self.script_src = tuple(script_src)
        self.assets = assets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the page (ASGI)."""
        if scope["type"] != "http":
            return
        if scope["method"] not in {"GET", "HEAD"}:
            await _answer(send, scope, 405, b"Method Not Allowed", "text/plain; charset=utf-8")
            return
        nonce = secrets.token_urlsafe(18)
        context = PageContext(nonce=nonce, assets=self.assets or _assets_of(scope["path"]))
        rendered = self.render(context)
        text = await rendered if inspect.isawaitable(rendered) else rendered
        policy = content_security_policy([f"'nonce-{nonce}'", *self.script_src])
        await _answer(
            send,
            scope,
            200,
            text.encode(),
            "text/html; charset=utf-8",
            [(b"content-security-policy", policy.encode()), (b"cache-control", b"no-store")],
        )


def _assets_of(path: str) -> str:
    if path.endswith("/"):
        return "assets/"
    return f"{path.rsplit('/', 1)[-1]}/assets/"


class PackageFiles:
    """An ASGI app serving named files shipped inside a package (``importlib.resources``).

    The last segment of the request path picks the file, so it can be mounted anywhere. Each
    file is read once, with an ETag (``If-None-Match`` answers 304) and a gzip copy for
    clients that accept it; anything else is 404.

    Args:
        files: the public name of each file (``"mermaid.min.js"``) and where it is.
        max_age: seconds a client may reuse a file without asking again.
    """

    def __init__(self, files: Mapping[str, Traversable], *, max_age: int = 3600) -> None:
        self.files = dict(files)
        self.max_age = max_age
        self._loaded: dict[str, tuple[bytes, bytes | None, str]] = {}

    def _load(self, name: str) -> tuple[bytes, bytes | None, str]:
        if name not in self._loaded:
            body = self.files[name].read_bytes()
            compressed = gzip.compress(body, mtime=0) if len(body) >= _MIN_GZIP_SIZE else None
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            self._loaded[name] = (body, compressed, etag)
        return self._loaded[name]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one file (ASGI)."""
        if scope["type"] != "http":
            return
        name = scope["path"].rsplit("/", 1)[-1]
        if name not in self.files:
            await _answer(send, scope, 404, b"Not Found", "text/plain; charset=utf-8")
            return
        if scope["method"] not in {"GET", "HEAD"}:
            await _answer(send, scope, 405, b"Method Not Allowed", "text/plain; charset=utf-8")
            return
        body, compressed, etag = self._load(name)
        request = {key.lower(): value for key, value in scope.get("headers", [])}
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", f"public, max-age={self.max_age}".encode()),
            (b"vary", b"accept-encoding"),
        ]
        if etag.encode() in request.get(b"if-none-match", b"").replace(b" ", b"").split(b","):
            await _answer(send, scope, 304, b"", None, headers)
            return
        if compressed is not None and b"gzip" in request.get(b"accept-encoding", b""):
            body = compressed
            headers.append((b"content-encoding", b"gzip"))
        suffix = "." + name.rsplit(".", 1)[-1]
        media_type = _MEDIA_TYPES.get(suffix, "application/octet-stream")
        await _answer(send, scope, 200, body, media_type, headers)


async def _answer(  # noqa: PLR0917 - one private helper, called with the answer's parts
    send: Send,
    scope: Scope,
    status: int,
    body: bytes,
    media_type: str | None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    head = [*_SECURITY_HEADERS, *(headers or [])]
    if media_type is not None:
        head.append((b"content-type", media_type.encode()))
    if status == 405:
        head.append((b"allow", b"GET, HEAD"))
    if status != 304:  # a 304 has no body and no length
        head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send(
        {
            "type": "http.response.body",
            "body": b"" if scope["method"] == "HEAD" or status == 304 else body,
        }
    )


__all__ = [
    "HtmlPage",
    "PackageFiles",
    "PageContext",
    "content_security_policy",
    "json_for_script",
    "json_script",
    "script_hash",
]
