"""The README's examples run as written, against real services."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from aegis.obs import ObservabilityMiddleware

if TYPE_CHECKING:
    from conftest import Served

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
Client = Callable[[ASGIApp], httpx.AsyncClient]


def block(heading: str) -> str:
    """The first python block after the heading."""
    section = README.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.anyio
async def test_quick_start_serves_orders_health_and_metrics(
    postgres_database: str, redis_url: str, kafka_bootstrap: str, client: Client
) -> None:
    namespace: dict[str, object] = {
        "DATABASE_URL": postgres_database.replace("postgresql://", "postgresql+psycopg://", 1),
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    exec(block("Quick start"), namespace)  # noqa: S102 (the README's own code)
    app = namespace["app"]
    async with client(app) as http:  # type: ignore[arg-type]
        assert (await http.get("/orders/7")).json() == {"id": 7}
        health = await http.get("/health")
        metrics = (await http.get("/metrics")).text
    assert health.status_code == 200
    assert health.json()["status"] == "pass"
    assert set(health.json()["checks"]) == {
        "postgres:responseTime",
        "redis:responseTime",
        "kafka:responseTime",
        "disk:responseTime",
    }
    assert 'aegis_http_requests_total{method="GET",route="/orders/{order_id}",status="200"}' in (
        metrics
    )
    assert 'aegis_db_query_duration_seconds_count{engine="default",operation="SELECT"}' in metrics
    await namespace["engine"].dispose()  # type: ignore[attr-defined]
    await namespace["redis"].aclose()  # type: ignore[attr-defined]


def test_declaring_your_own_metrics_example_runs_twice() -> None:
    for _ in range(2):  # a re-import declares the same metrics again
        namespace: dict[str, object] = {}
        exec(block("Declaring your own metrics"), namespace)  # noqa: S102
        namespace["create_order"]()  # type: ignore[operator]


@pytest.mark.anyio
async def test_outgoing_http_calls_example_makes_the_client_span_the_server_parent(
    serve: Callable[[ASGIApp], Served], spans: Callable[[], tuple[ReadableSpan, ...]]
) -> None:
    async def user(request: Request) -> Response:
        return JSONResponse({"name": f"user {request.path_params['user_id']}"})

    user_service = serve(
        Starlette(
            routes=[Route("/users/{user_id}", user)],
            middleware=[Middleware(ObservabilityMiddleware, metrics=False)],
        )
    )
    namespace: dict[str, object] = {"USER_SERVICE_URL": user_service.url}
    exec(block("Outgoing HTTP calls"), namespace)  # noqa: S102
    assert await namespace["user_name"](7) == "user 7"  # type: ignore[operator]
    await namespace["users"].aclose()  # type: ignore[attr-defined]
    user_service.stop()  # the server span has ended
    by_name = {s.name: s for s in spans()}
    assert set(by_name) == {"load user", "GET", "GET /users/{user_id}"}
    outgoing, incoming = by_name["GET"], by_name["GET /users/{user_id}"]
    assert outgoing.parent is not None
    assert incoming.parent is not None
    assert outgoing.parent.span_id == by_name["load user"].context.span_id
    assert incoming.parent.span_id == outgoing.context.span_id
    assert outgoing.attributes is not None
    assert outgoing.attributes["url.full"] == f"{user_service.url}/users/7?sig=REDACTED"
