"""aegis.core.html: data that stays data inside <script>, nonce pages, files from a package."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aegis.core.html import (
    HtmlPage,
    PackageFiles,
    PageContext,
    content_security_policy,
    json_for_script,
    json_script,
    script_hash,
)

Answer = tuple[int, dict[str, str], bytes]


def call(app: Any, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(app(scope, receive, send))
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], head, sent[1]["body"]


@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_json_for_a_script_element_reads_back_and_never_closes_it(data: object) -> None:
    text = json_for_script(data)
    assert json.loads(text) == data
    assert "<" not in text
    assert ">" not in text


def test_json_script_escapes_what_would_end_the_element() -> None:
    element = json_script({"x": "</script><script>alert(1)</script><!--"}, 'id"x')
    assert element.startswith('<script type="application/json" id="id&quot;x">')
    assert element.count("</script>") == 1
    assert element.endswith("</script>")


def test_script_hash_is_the_csp_sha256_of_the_exact_text() -> None:
    digest = base64.b64encode(hashlib.sha256(b"alert(1)").digest()).decode()
    assert script_hash("alert(1)") == f"'sha256-{digest}'"


def test_the_policy_allows_only_what_it_names() -> None:
    policy = content_security_policy(["'nonce-abc'"])
    assert policy.startswith("default-src 'none'; script-src 'nonce-abc'; ")
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "frame-ancestors" not in content_security_policy(["'self'"], meta=True)


def test_a_page_gets_a_fresh_nonce_and_assets_beside_its_path() -> None:
    seen: list[PageContext] = []

    async def render(context: PageContext) -> str:
        seen.append(context)
        return f"<p>{context.nonce}</p>"

    page = HtmlPage(render, script_src=["'unsafe-eval'"])
    status, headers, body = call(page, "/prefix/asyncapi")
    assert status == 200
    assert seen[0].assets == "asyncapi/assets/"
    assert body == f"<p>{seen[0].nonce}</p>".encode()
    assert (
        f"script-src 'nonce-{seen[0].nonce}' 'unsafe-eval';" in headers["content-security-policy"]
    )
    assert headers["cache-control"] == "no-store"
    call(page, "/prefix/asyncapi/")
    assert seen[1].assets == "assets/"
    assert seen[1].nonce != seen[0].nonce
    assert call(HtmlPage(lambda c: "x", assets="/static/"), "/p")[2] == b"x"
    status, headers, body = call(page, "/prefix/asyncapi", method="POST")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    assert call(page, "/prefix/asyncapi", method="HEAD")[2] == b""


def test_package_files_serve_only_their_names_with_etag_and_gzip(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("console.log(1);\n" * 200)
    (tmp_path / "tiny.css").write_text("b{}")
    files = PackageFiles({"app.js": tmp_path / "app.js", "tiny.css": tmp_path / "tiny.css"})
    status, headers, body = call(files, "/assets/app.js")
    assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert body == (tmp_path / "app.js").read_bytes()
    status, zipped, body = call(files, "/assets/app.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (tmp_path / "app.js").read_bytes()
    status, _, body = call(files, "/x/app.js", headers={"if-none-match": headers["etag"]})
    assert (status, body) == (304, b"")
    small = call(files, "/tiny.css", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in small[1]  # too small to be worth it
    assert call(files, "/assets/other.js")[0] == 404
    assert call(files, "/assets/app.js", method="DELETE")[0] == 405
