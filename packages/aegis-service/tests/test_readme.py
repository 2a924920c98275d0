"""The README's examples run as written, under a real uvicorn."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aegis.log import LogSettings, configured_logging
from aegis.testing import LogLines, uvicorn_server

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def block(heading: str) -> str:
    """The first python block after the heading."""
    section = README.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_quick_start_is_protected_logged_measured_limited_and_cached() -> None:
    lines = LogLines("aegis.access")
    with configured_logging(LogSettings(console=None), outputs=[lines]):
        namespace: dict[str, Any] = {}
        exec(block("Quick start"), namespace)  # noqa: S102 - the README's own code
        service = namespace["service"]
        # The README's logging writes to stdout; the test reads the same lines here.
        from aegis.log import configure_logging

        configure_logging(LogSettings(console=None, service_name="orders"), outputs=[lines])
        token = service.tokens.issue_access_token("kim")
        auth = [("Authorization", f"Bearer {token}")]
        with uvicorn_server(namespace["app"]) as server, server.connect() as connection:
            refused = connection.request("GET", "/orders/7", headers=[("X-Request-ID", "r-0")])
            first = connection.request("GET", "/orders/7", headers=[*auth, ("X-Request-ID", "r-1")])
            second = connection.request("GET", "/orders/7", headers=auth)
            metrics = connection.request("GET", "/metrics").body.decode()
            ready = connection.request("GET", "/health/ready")
        assert refused.status == 401
        assert refused.header("content-type") == "application/problem+json"
        assert first.json() == second.json() == {"id": 7, "owner": "kim"}
        assert first.header("ratelimit-limit") == "100"
        assert ready.status == 200
        assert 'route="/orders/{order_id}",status="401"' in metrics
        assert 'route="/orders/{order_id}",status="200"' in metrics
        refused_line, first_line = lines.wait_for("request_id", ["r-0", "r-1"])
        assert (refused_line["status"], refused_line.get("user_id")) == (401, None)
        assert (first_line["route"], first_line["user_id"]) == ("/orders/{order_id}", "kim")


def test_starlette_example_refuses_a_caller_without_the_role() -> None:
    with configured_logging(LogSettings(console=None)):
        namespace: dict[str, Any] = {}
        exec(block("Starlette"), namespace)  # noqa: S102
        service = namespace["service"]
        auditor = service.tokens.issue_access_token("ann", roles=["auditor"])
        other = service.tokens.issue_access_token("bob")
        with uvicorn_server(namespace["app"]) as server, server.connect() as connection:
            allowed = connection.request(
                "GET", "/report", headers=[("Authorization", f"Bearer {auditor}")]
            )
            denied = connection.request(
                "GET", "/report", headers=[("Authorization", f"Bearer {other}")]
            )
    assert allowed.json() == {"for": "ann"}
    assert denied.status == 403
