"""ObservabilityMiddleware: HTTP and WebSocket metrics scraped with prometheus-client's parser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from aegis.core.errors import ConfigurationError
from aegis.obs import (
    MULTIPROCESS_DIR_VARIABLE,
    UNMATCHED_ROUTE,
    ObservabilityMiddleware,
    counter,
    metrics_route,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Scrape = Callable[[ASGIApp], Awaitable[Samples]]
Client = Callable[[ASGIApp], httpx.AsyncClient]

pytestmark = pytest.mark.anyio


def total(samples: Samples, method: str, route: str, status: str) -> float:
    labels = (("method", method), ("route", route), ("status", status))
    return samples.get(("aegis_http_requests_total", labels), 0.0)


def observed(samples: Samples, name: str, method: str, route: str) -> float:
    return samples.get((f"{name}_count", (("method", method), ("route", route))), 0.0)


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def user(request: Request) -> Response:
    return PlainTextResponse(f"user {request.path_params['user_id']}")


async def item(request: Request) -> Response:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


def starlette_app(registry: CollectorRegistry, **options: Any) -> Starlette:
    inner = Starlette(routes=[Route("/items/{item_id}", item)])
    return Starlette(
        routes=[
            Route("/", hello),
            Route("/users/{user_id:int}", user, methods=["GET"]),
            Route("/boom", boom),
            Route("/health/ready", hello),
            Mount("/api/{version}", app=inner),
            metrics_route(registry=registry),
        ],
        middleware=[Middleware(ObservabilityMiddleware, registry=registry, **options)],
    )


async def test_starlette_requests_are_counted_by_route_template_and_status(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry)
    async with client(app) as http:
        for user_id in (1, 2, 3):
            assert (await http.get(f"/users/{user_id}")).status_code == 200
        assert (await http.get("/")).text == "hello"
        assert (await http.post("/users/1")).status_code == 405
    samples = await scrape(app)
    assert total(samples, "GET", "/users/{user_id}", "200") == 3
    assert total(samples, "GET", "/", "200") == 1
    assert total(samples, "POST", "/users/{user_id}", "405") == 1
    assert observed(samples, "aegis_http_request_duration_seconds", "GET", "/users/{user_id}") == 3
    size = ("aegis_http_response_size_bytes_sum", (("method", "GET"), ("route", "/")))
    assert samples[size] == len("hello")
    assert not any("/users/1" in dict(labels).get("route", "") for _, labels in samples)


async def test_unmatched_paths_share_one_route_label_and_never_leak_the_raw_path(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry)
    async with client(app) as http:
        for path in ("/nope", "/secret/token-123", "/users/not-a-number"):
            assert (await http.get(path)).status_code == 404
    samples = await scrape(app)
    assert total(samples, "GET", UNMATCHED_ROUTE, "404") == 3
    routes = {dict(labels).get("route") for _, labels in samples}
    assert not routes & {"/nope", "/secret/token-123", "/users/not-a-number"}


async def test_mounted_app_routes_carry_the_mount_template(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry)
    async with client(app) as http:
        assert (await http.get("/api/v1/items/7")).text == "item 7"
        assert (await http.get("/api/v2/items/8")).status_code == 200
    samples = await scrape(app)
    assert total(samples, "GET", "/api/{version}/items/{item_id}", "200") == 2


async def test_exception_counts_as_500_and_propagates(
    registry: CollectorRegistry, scrape: Scrape
) -> None:
    app = starlette_app(registry)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/boom")).status_code == 500
    samples = await scrape(app)
    assert total(samples, "GET", "/boom", "500") == 1


async def test_excluded_paths_are_not_measured(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry)
    async with client(app) as http:
        await http.get("/health/ready")
        await http.get("/metrics")
    samples = await scrape(app)
    assert total(samples, "GET", "/health/ready", "200") == 0
    assert total(samples, "GET", "/metrics", "200") == 0


async def test_custom_exclusions_replace_the_defaults(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry, exclude_paths=["/"])
    async with client(app) as http:
        await http.get("/")
        await http.get("/health/ready")
    samples = await scrape(app)
    assert total(samples, "GET", "/", "200") == 0
    assert total(samples, "GET", "/health/ready", "200") == 1


async def test_an_exclusion_with_a_method_leaves_other_methods_measured(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry, exclude_paths=["GET /"])
    async with client(app) as http:
        await http.get("/")
        await http.post("/")
    samples = await scrape(app)
    assert total(samples, "GET", "/", "200") == 0
    assert total(samples, "POST", "/", "405") == 1


class RefuseUsers:
    """An auth middleware's shape: answers 401 for /users/... before the router runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/users/"):
            await PlainTextResponse("no", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def test_a_request_refused_before_routing_is_counted_under_its_route(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry)
    app.add_middleware(RefuseUsers)  # outermost, then moved inside the observability one
    app.user_middleware.reverse()
    async with client(app) as http:
        assert (await http.get("/users/7")).status_code == 401
        assert (await http.get("/nowhere")).status_code == 404
    samples = await scrape(app)
    assert total(samples, "GET", "/users/{user_id}", "401") == 1
    assert total(samples, "GET", UNMATCHED_ROUTE, "404") == 1


async def test_a_starlette_route_inside_fastapi_is_counted_under_its_path(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = FastAPI()
    app.router.routes.append(Route("/.well-known/jwks.json", hello, methods=["GET"]))
    app.router.routes.append(metrics_route(registry=registry))
    app.add_middleware(ObservabilityMiddleware, registry=registry, exclude_paths=[])
    async with client(app) as http:
        assert (await http.get("/.well-known/jwks.json")).status_code == 200
    samples = await scrape(app)
    assert total(samples, "GET", "/.well-known/jwks.json", "200") == 1
    assert total(samples, "GET", UNMATCHED_ROUTE, "200") == 0


async def test_unknown_methods_share_one_label_value(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry)
    async with client(app) as http:
        await http.request("BREW", "/")
        await http.request("FLY", "/")
    samples = await scrape(app)
    assert total(samples, "_OTHER", "/", "405") == 2


async def test_request_is_in_progress_under_its_route_while_it_runs(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    entered, release = anyio.Event(), anyio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return PlainTextResponse("done")

    app = Starlette(
        routes=[Route("/slow/{n}", slow), metrics_route(registry=registry)],
        middleware=[Middleware(ObservabilityMiddleware, registry=registry)],
    )
    gauge = ("aegis_http_requests_in_progress", (("method", "GET"), ("route", "/slow/{n}")))
    async with client(app) as http, anyio.create_task_group() as group:
        group.start_soon(http.get, "/slow/1")
        await entered.wait()
        assert (await scrape(app))[gauge] == 1
        release.set()
    assert (await scrape(app))[gauge] == 0


async def test_fastapi_routes_and_included_routers_are_labelled_by_template(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    app.include_router(router)
    app.router.routes.append(metrics_route(registry=registry))
    app.add_middleware(ObservabilityMiddleware, registry=registry)
    async with client(app) as http:
        assert (await http.get("/v1/orders/5")).json() == {"id": 5}
        assert (await http.get("/v1/orders/x")).status_code == 422
        assert (await http.get("/ping")).status_code == 200
    samples = await scrape(app)
    assert total(samples, "GET", "/v1/orders/{order_id}", "200") == 1
    assert total(samples, "GET", "/v1/orders/{order_id}", "422") == 1
    assert total(samples, "GET", "/ping", "200") == 1


async def test_websocket_sessions_are_counted(registry: CollectorRegistry, scrape: Scrape) -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    async def refuse(websocket: WebSocket) -> None:
        await websocket.close()

    app = Starlette(
        routes=[WebSocketRoute("/ws/{room}", echo), WebSocketRoute("/deny", refuse)],
        middleware=[Middleware(ObservabilityMiddleware, registry=registry)],
    )
    outgoing: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return outgoing.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    for path in ("/ws/lobby", "/deny"):
        scope: Scope = {"type": "websocket", "path": path, "headers": [], "query_string": b""}
        await app(scope, receive, send)
        outgoing[:] = [{"type": "websocket.connect"}]
    assert [m["type"] for m in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
        "websocket.close",
    ]
    samples = await scrape(Starlette(routes=[metrics_route(registry=registry)]))
    assert total(samples, "WEBSOCKET", "/ws/{room}", "101") == 1
    assert total(samples, "WEBSOCKET", "/deny", "403") == 1
    gauge = ("aegis_http_requests_in_progress", (("method", "WEBSOCKET"), ("route", "/ws/{room}")))
    assert samples[gauge] == 0


async def test_outer_middleware_sees_the_route_the_router_chose(
    registry: CollectorRegistry, client: Client
) -> None:
    seen: list[str] = []

    class AccessLog:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await self.app(scope, receive, send)
            seen.append(scope["route"].path_format)

    app = Starlette(
        routes=[Route("/users/{user_id}", user)],
        middleware=[Middleware(AccessLog), Middleware(ObservabilityMiddleware, registry=registry)],
    )
    async with client(app) as http:
        await http.get("/users/9")
    assert seen == ["/users/{user_id}"]


async def test_lifespan_passes_through(registry: CollectorRegistry) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        events.append(scope["type"])

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        return None

    middleware = ObservabilityMiddleware(app, registry=registry)
    await middleware({"type": "lifespan"}, receive, send)
    assert events == ["lifespan"]


async def test_metrics_disabled_still_serves(client: Client, registry: CollectorRegistry) -> None:
    app = Starlette(
        routes=[Route("/", hello)],
        middleware=[Middleware(ObservabilityMiddleware, metrics=False, tracing=False)],
    )
    async with client(app) as http:
        assert (await http.get("/")).text == "hello"
    assert list(registry.collect()) == []


async def test_scrape_answers_openmetrics_when_asked(
    registry: CollectorRegistry, client: Client
) -> None:
    app = starlette_app(registry)
    async with client(app) as http:
        await http.get("/")
        plain = await http.get("/metrics")
        open_metrics = await http.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert plain.headers["content-type"].startswith("text/plain")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")
    assert 'aegis_http_requests_total{method="GET",route="/",status="200"} 1.0' in plain.text


async def test_histograms_fill_the_configured_buckets_cumulatively(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    app = starlette_app(registry, buckets=[30.0, 60.0], size_buckets=[4.0, 5.0, 100.0])
    async with client(app) as http:
        await http.get("/")  # "hello": 5 bytes, well under 30 s
        await http.get("/users/12")  # "user 12": 7 bytes
    samples = await scrape(app)

    def bucket(name: str, route: str, le: str) -> float:
        labels = (("le", le), ("method", "GET"), ("route", route))
        return samples[(f"{name}_bucket", labels)]

    size = "aegis_http_response_size_bytes"
    assert [bucket(size, "/", le) for le in ("4.0", "5.0", "100.0", "+Inf")] == [0, 1, 1, 1]
    assert [bucket(size, "/users/{user_id}", le) for le in ("5.0", "100.0")] == [0, 1]
    duration = "aegis_http_request_duration_seconds"
    assert [bucket(duration, "/", le) for le in ("30.0", "60.0", "+Inf")] == [1, 1, 1]
    assert 0 < samples[(f"{duration}_sum", (("method", "GET"), ("route", "/")))] < 30


async def test_apps_built_twice_on_one_registry_share_their_counts(
    registry: CollectorRegistry, scrape: Scrape, client: Client
) -> None:
    first, second = starlette_app(registry), starlette_app(registry)
    for app in (first, second):
        async with client(app) as http:
            await http.get("/")
    assert total(await scrape(first), "GET", "/", "200") == 2


def test_a_name_taken_in_the_registry_is_a_configuration_error(
    registry: CollectorRegistry,
) -> None:
    counter("requests_total", "Mine.", namespace="aegis", subsystem="http", registry=registry)
    with pytest.raises(ConfigurationError, match="aegis_http_requests"):
        ObservabilityMiddleware(PlainTextResponse("x"), registry=registry)


async def test_multiprocess_mode_records_with_prometheus_client_metrics(
    registry: CollectorRegistry, scrape: Scrape, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers must write prometheus_client's own files; in this process they keep the values
    # in memory, which the scrape below reads once the variable is gone again.
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, "/nonexistent")
    app = starlette_app(registry)
    async with client(app) as http:
        await http.get("/users/3")
        await http.get("/api/v1/items/1")
        await http.post("/users/3")
    monkeypatch.delenv(MULTIPROCESS_DIR_VARIABLE)
    samples = await scrape(app)
    assert total(samples, "GET", "/users/{user_id}", "200") == 1
    assert total(samples, "POST", "/users/{user_id}", "405") == 1
    assert total(samples, "GET", "/api/{version}/items/{item_id}", "200") == 1
    assert observed(samples, "aegis_http_response_size_bytes", "GET", "/users/{user_id}") == 1
    # the mount first, then its inner route: the request moved from one gauge to the other
    inner = (("method", "GET"), ("route", "/api/{version}/items/{item_id}"))
    mount = (("method", "GET"), ("route", "/api/{version}/{path}"))
    gauge = "aegis_http_requests_in_progress"
    assert samples[(gauge, mount)] == samples[(gauge, inner)] == 0
