"""The whole-service contract, black-box, under a real uvicorn, for FastAPI and Starlette.

For 200, 201, 401, 403, 404, 405, 422, 429, an unhandled 500 and an error raised inside a
middleware: exactly one access line (request id, user id when authenticated, route template,
status, duration, trace id), exactly one metric sample under the route template, exactly one
SERVER span, and ``X-Request-ID`` on the response; the 500 body carries the request id and its
one log line carries the stack. uvicorn runs with its default logging configuration and access
log, as ``uvicorn module:app`` does: its access line must not repeat aegis's, and nothing it
logs may put ANSI escapes into the lines.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from fastapi import Depends, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from aegis.auth import CurrentUser, current_principal, ensure_roles, require_roles
from aegis.cache import CacheSettings
from aegis.log import LogSettings
from aegis.obs import UNMATCHED_ROUTE
from aegis.service import AuthSettings, RateLimitSettings, Service, ServiceSettings, bootstrap
from aegis.testing import LogLines, RunningServer, uvicorn_server

if TYPE_CHECKING:
    from conftest import Tracing

LIMIT = 2
"""Requests a user may make per minute: the third of one user is answered 429."""


class Item(BaseModel):
    name: str


class Explode:
    """The application's own middleware (inside aegis's), failing on ``X-Explode``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"x-explode", b"1") in scope["headers"]:
            raise RuntimeError("middleware exploded")
        await self.app(scope, receive, send)


def settings() -> ServiceSettings:
    return ServiceSettings(
        name="contract",
        log=LogSettings(console=None, level="INFO"),
        cache=CacheSettings(namespace="contract"),  # in-process: the limiter's counters
        auth=AuthSettings(issuer="contract", audience="contract"),
        rate_limit=RateLimitSettings(limit=LIMIT, period_seconds=60, key="user"),
        quiet_paths=(),  # health and metrics are measured too: never as <unmatched>
    )


def fastapi_app(provider: TracerProvider, *, telemetry: bool = True) -> FastAPI:
    # With telemetry, FastAPI's own SERVER span is the request's one span; without, aegis-obs's.
    app = FastAPI(telemetry={"tracer_provider": provider, "tracing": telemetry})

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, principal: CurrentUser) -> dict[str, Any]:
        return {"item": item_id, "user": principal.subject}

    @app.post("/items", status_code=201)
    async def create_item(item: Item, principal: CurrentUser) -> dict[str, Any]:
        return {"name": item.name}

    @app.get("/admin", dependencies=[Depends(require_roles("admin"))])
    async def admin() -> dict[str, Any]:
        return {"admin": True}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler exploded")

    app.add_middleware(Explode)
    return app


def starlette_app() -> Starlette:
    async def get_item(request: Request) -> Response:
        principal = current_principal()
        user = principal.subject if principal is not None else None
        return JSONResponse({"item": int(request.path_params["item_id"]), "user": user})

    async def create_item(request: Request) -> Response:
        item = Item.model_validate(await request.json())  # a ValidationError answers 422
        return JSONResponse({"name": item.name}, status_code=201)

    async def admin(request: Request) -> Response:
        ensure_roles(current_principal(), ["admin"])
        return JSONResponse({"admin": True})

    async def boom(request: Request) -> Response:
        raise RuntimeError("handler exploded")

    app = Starlette(
        routes=[
            Route("/items/{item_id:int}", get_item, methods=["GET"]),
            Route("/items", create_item, methods=["POST"]),
            Route("/admin", admin, methods=["GET"]),
            Route("/boom", boom, methods=["GET"]),
        ]
    )
    app.add_middleware(Explode)
    return app


@dataclass(frozen=True)
class Case:
    """One request of the contract and what must come of it."""

    name: str
    method: str
    path: str
    status: int
    route: str | None  # the access line's route; metrics say <unmatched> for None
    user: str | None = None  # the caller's token subject
    roles: tuple[str, ...] = ()
    body: bytes = b""
    explode: bool = False


CASES = [
    Case("ok", "GET", "/items/7", 200, "/items/{item_id}", user="u-ok"),
    Case("created", "POST", "/items", 201, "/items", user="u-created", body=b'{"name":"a"}'),
    Case("unauthenticated", "GET", "/items/7", 401, "/items/{item_id}"),
    Case("forbidden", "GET", "/admin", 403, "/admin", user="u-forbidden"),
    Case("not-found", "GET", "/nowhere", 404, None, user="u-not-found"),
    Case("method", "DELETE", "/items/7", 405, "/items/{item_id}", user="u-method"),
    Case("invalid", "POST", "/items", 422, "/items", user="u-invalid", body=b"{}"),
    Case("limited-1", "GET", "/items/1", 200, "/items/{item_id}", user="u-flood"),
    Case("limited-2", "GET", "/items/2", 200, "/items/{item_id}", user="u-flood"),
    Case("limited-3", "GET", "/items/3", 429, "/items/{item_id}", user="u-flood"),
    Case("boom", "GET", "/boom", 500, "/boom", user="u-boom"),
    Case("middleware", "GET", "/items/7", 500, "/items/{item_id}", user="u-mw", explode=True),
    Case("jwks", "GET", "/.well-known/jwks.json", 200, "/.well-known/jwks.json"),
    Case("ready", "GET", "/health/ready", 200, "/health/ready"),
    Case("admin", "GET", "/admin", 200, "/admin", user="u-admin", roles=("admin",)),
]


@pytest.fixture(
    params=itertools.product(
        ["fastapi", "fastapi-without-telemetry", "starlette"],
        [("asyncio", "h11"), ("uvloop", "httptools")],
    ),
    ids=lambda param: f"{param[0]}-{param[1][0]}-{param[1][1]}",
)
def served(
    request: pytest.FixtureRequest, lines: LogLines, tracing: Tracing
) -> Iterator[tuple[RunningServer, Service]]:
    framework, (loop, http) = request.param
    app: Starlette
    if framework == "starlette":
        app = starlette_app()
    else:
        app = fastapi_app(tracing.provider, telemetry=framework == "fastapi")
    service = bootstrap(
        app,
        settings(),
        registry=CollectorRegistry(),
        tracer_provider=tracing.provider,
        log_outputs=[lines],
    )
    # uvicorn's access log on (its default): after configure_logging its lines would reach
    # the aegis outputs next to the aegis access line.
    with uvicorn_server(app, loop=loop, http=http, access_log=True) as server:
        yield server, service


def _send(server: RunningServer, service: Service, case: Case) -> Any:
    headers = [("X-Request-ID", f"rid-{case.name}"), ("Content-Type", "application/json")]
    if case.user is not None:
        assert service.tokens is not None
        token = service.tokens.issue_access_token(case.user, roles=case.roles)
        headers.append(("Authorization", f"Bearer {token}"))
    if case.explode:
        headers.append(("X-Explode", "1"))
    with server.connect() as connection:
        return connection.request(case.method, case.path, headers=headers, body=case.body)


def test_every_answer_gets_one_access_line_one_metric_one_span_and_its_request_id(
    served: tuple[RunningServer, Service], lines: LogLines, tracing: Tracing
) -> None:
    server, service = served
    responses = {case.name: _send(server, service, case) for case in CASES}
    for case in CASES:
        response = responses[case.name]
        assert response.status == case.status, (case, response.body)
        assert response.header("x-request-id") == f"rid-{case.name}", case
    request_ids = [f"rid-{case.name}" for case in CASES]
    lines.wait_for("request_id", request_ids)
    access = [line for line in lines.lines if line["logger"] == "aegis.access"]
    by_request = Counter(line["request_id"] for line in access)
    assert by_request == Counter(request_ids), "exactly one access line per request"
    server_side = {span.context.trace_id: span for span in tracing.server_spans()}
    assert len(tracing.server_spans()) == len(CASES), "exactly one SERVER span per request"
    for case in CASES:
        (line,) = (line for line in access if line["request_id"] == f"rid-{case.name}")
        assert (line["status"], line["route"]) == (case.status, case.route), case
        assert line.get("user_id") == case.user, case
        assert isinstance(line["duration_ms"], float)
        assert int(line["trace_id"], 16) in server_side, case
    samples = Counter(
        (case.method, case.route or UNMATCHED_ROUTE, str(case.status)) for case in CASES
    )
    registry = service.registry
    assert registry is not None
    counted = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for metric in registry.collect()
        if metric.name == "aegis_http_requests"
        for s in metric.samples
        if s.name == "aegis_http_requests_total"
    }
    assert counted == {labels: float(count) for labels, count in samples.items()}


def test_a_500_carries_its_request_id_and_one_line_carries_the_stack(
    served: tuple[RunningServer, Service], lines: LogLines
) -> None:
    server, service = served
    for case in CASES:
        if case.status != 500:
            continue
        response = _send(server, service, case)
        problem = response.json()
        assert response.header("content-type") == "application/problem+json"
        assert (problem["code"], problem["request_id"]) == ("INTERNAL_ERROR", f"rid-{case.name}")
        assert "exploded" not in response.body.decode()  # the message goes to the log only
    lines.wait_for("request_id", ["rid-boom", "rid-middleware"])
    stacks = [line for line in lines.lines if "exception" in line or "exc_info" in line]
    assert sorted(line["request_id"] for line in stacks) == ["rid-boom", "rid-middleware"]
    assert {line["logger"] for line in stacks} == {"aegis.core.web"}


def test_uvicorn_repeats_no_access_line(
    served: tuple[RunningServer, Service], lines: LogLines
) -> None:
    server, service = served
    _send(server, service, CASES[0])
    lines.wait_for("request_id", ["rid-ok"])
    assert not [line for line in lines.lines if line["logger"] == "uvicorn.access"]


def test_uvicorns_own_logging_configuration_is_routed_through_aegis_without_colours(
    lines: LogLines, tracing: Tracing
) -> None:
    app = starlette_app()
    bootstrap(app, settings(), registry=CollectorRegistry(), log_outputs=[lines])
    # As `uvicorn module:app` and uvicorn.run(app) run: uvicorn's logging configuration,
    # applied here after bootstrap(), gives its loggers handlers of their own (ANSI colours).
    with uvicorn_server(app, log_config=uvicorn.config.LOGGING_CONFIG, access_log=True) as server:
        lines.wait_for("event", ["Application startup complete."])
        with server.connect() as connection:
            connection.request("GET", "/health/live", headers=[("X-Request-ID", "rid-live")])
        lines.wait_for("request_id", ["rid-live"])
    assert not [line for line in lines.lines if line["logger"] == "uvicorn.access"]
    assert "\\u001b" not in json.dumps(lines.lines)
    assert not [line for line in lines.lines if "color_message" in line]


def test_without_log_settings_logging_is_left_alone_but_uvicorns_access_log_is_off() -> None:
    server_logger = logging.getLogger("uvicorn.error")
    own = logging.StreamHandler()
    server_logger.addHandler(own)
    try:
        bootstrap(Starlette(), ServiceSettings(name="own-logging", log=None))
        assert own in server_logger.handlers  # the application's own logging stays
        assert not logging.getLogger("uvicorn.access").hasHandlers()
    finally:
        server_logger.removeHandler(own)


def test_fastapi_without_tracing_settings_gets_the_aegis_span_on_the_given_provider(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another provider is the global one (an application or another test set it up): FastAPI
    # would trace with it (and without the route of a 401), aegis-obs deferring to its span.
    global_exporter = InMemorySpanExporter()
    global_provider = TracerProvider()
    global_provider.add_span_processor(SimpleSpanProcessor(global_exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: global_provider)
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    settings = ServiceSettings(name="spans", log=None)
    bootstrap(app, settings, registry=CollectorRegistry(), tracer_provider=tracing.provider)
    with uvicorn_server(app) as server, server.connect() as connection:
        assert connection.request("GET", "/items/1").status == 200
        assert connection.request("GET", "/metrics").status == 200  # quiet: no span
    (span,) = tracing.server_spans()
    assert (span.attributes or {}).get("http.route") == "/items/{item_id}"
    assert global_exporter.get_finished_spans() == ()
