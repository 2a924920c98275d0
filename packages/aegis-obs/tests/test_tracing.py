"""Tracing: server spans, W3C propagation in and out, span() and @traced, the SDK set-up."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from aegis.core.errors import ConfigurationError
from aegis.obs import (
    ObservabilityMiddleware,
    current_trace_ids,
    extract,
    inject,
    setup_tracing,
    span,
    traced,
)
from aegis.testing import UVICORN_LOOPS, UVICORN_PROTOCOLS, http_request, uvicorn_server

Spans = Callable[[], tuple[ReadableSpan, ...]]
Client = Callable[[ASGIApp], httpx.AsyncClient]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"

# FastAPI(telemetry=...) and FastAPI's own SERVER spans exist from FastAPI 0.16x on; before, the
# middleware's span is the only one anyway (test_a_fastapi_request_gets_one_server_span).
FASTAPI_TELEMETRY = pytest.mark.skipif(
    "telemetry" not in inspect.signature(FastAPI).parameters,
    reason="this FastAPI has no tracing of its own",
)


async def ids(request: Request) -> Response:
    return JSONResponse({**current_trace_ids(), "outgoing": inject()})


async def fail(request: Request) -> Response:
    raise ValueError("bad order")


async def unavailable(request: Request) -> Response:
    return JSONResponse({}, status_code=503)


def traced_app(**options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/orders/{order_id}", ids),
            Route("/fail", fail),
            Route("/unavailable", unavailable),
        ],
        middleware=[Middleware(ObservabilityMiddleware, metrics=False, **options)],
    )


@pytest.mark.anyio
async def test_server_span_continues_the_incoming_traceparent(spans: Spans, client: Client) -> None:
    async with client(traced_app()) as http:
        response = await http.get("/orders/42", headers={"traceparent": TRACEPARENT})
    (server,) = spans()
    assert server.name == "GET /orders/{order_id}"
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None
    assert server.parent.span_id == int(PARENT_ID, 16)
    assert server.context is not None
    assert server.context.trace_id == int(TRACE_ID, 16)
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/orders/{order_id}"
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["url.path"] == "/orders/42"
    assert server.attributes["http.response.status_code"] == 200
    assert server.status.status_code is StatusCode.UNSET
    body = response.json()
    assert body["trace_id"] == TRACE_ID
    assert body["span_id"] == f"{server.context.span_id:016x}"
    assert body["outgoing"]["traceparent"] == f"00-{TRACE_ID}-{body['span_id']}-01"


@pytest.mark.anyio
async def test_request_without_traceparent_starts_a_new_trace(spans: Spans, client: Client) -> None:
    async with client(traced_app()) as http:
        body = (await http.get("/orders/1")).json()
    (server,) = spans()
    assert server.parent is None
    assert server.context is not None
    assert body["trace_id"] == f"{server.context.trace_id:032x}"


@pytest.mark.anyio
async def test_exception_is_recorded_and_fails_the_span(spans: Spans) -> None:
    transport = httpx.ASGITransport(app=traced_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/fail")).status_code == 500
    (server,) = spans()
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "ValueError: bad order"
    assert server.attributes is not None
    assert server.attributes["error.type"] == "ValueError"
    assert [event.name for event in server.events] == ["exception"]


@pytest.mark.anyio
async def test_5xx_fails_the_span_and_4xx_does_not(spans: Spans, client: Client) -> None:
    async with client(traced_app()) as http:
        await http.get("/unavailable")
        await http.get("/nowhere")
    unavailable_span, missing = spans()
    assert unavailable_span.status.status_code is StatusCode.ERROR
    assert missing.name == "GET"  # semantic conventions: no route, the method alone
    assert missing.attributes is not None
    assert "http.route" not in missing.attributes
    assert missing.status.status_code is StatusCode.UNSET


@pytest.mark.anyio
async def test_without_the_sdk_no_span_is_made_but_the_caller_trace_stays_current(
    spans: Spans, client: Client
) -> None:
    app = traced_app(tracer_provider=NoOpTracerProvider())
    async with client(app) as http:
        continued = (await http.get("/orders/1", headers={"traceparent": TRACEPARENT})).json()
        fresh = (await http.get("/orders/2")).json()
    assert spans() == ()
    assert continued["trace_id"] == TRACE_ID
    assert continued["outgoing"]["traceparent"] == TRACEPARENT
    assert fresh == {"outgoing": {}}


@pytest.mark.anyio
async def test_tracing_can_be_switched_off(spans: Spans, client: Client) -> None:
    async with client(traced_app(tracing=False)) as http:
        body = (await http.get("/orders/1", headers={"traceparent": TRACEPARENT})).json()
    assert spans() == ()
    assert body == {"outgoing": {}}


def test_extract_then_span_continues_a_message_trace(spans: Spans) -> None:
    headers = [("TraceParent", TRACEPARENT.encode()), ("other", b"x")]
    with span("consume orders", kind=SpanKind.CONSUMER, parent=extract(headers)) as current:
        current.set_attribute("messaging.batch.message_count", 1)
        outgoing = inject()
    (consumer,) = spans()
    assert consumer.context is not None
    assert consumer.context.trace_id == int(TRACE_ID, 16)
    assert consumer.kind is SpanKind.CONSUMER
    assert outgoing["traceparent"].split("-")[1] == TRACE_ID
    assert extract({"traceparent": "garbage"}) == extract({})


def test_span_records_an_exception_and_reraises(spans: Spans) -> None:
    with pytest.raises(KeyError), span("lookup", attributes={"key": "k"}):
        raise KeyError("k")
    (failed,) = spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["key"] == "k"


@traced
def add(a: int, b: int) -> int:
    return a + b


@traced("charge-card", attributes={"payment.provider": "test"})
async def charge(amount: int) -> int:
    with span("inner"):
        return amount


@pytest.mark.anyio
async def test_traced_wraps_sync_and_async_functions(spans: Spans) -> None:
    assert add(1, 2) == 3
    assert await charge(5) == 5
    names = [s.name for s in spans()]
    assert names == [f"{__name__}.add", "inner", "charge-card"]
    inner, outer = spans()[1:]
    assert inner.parent is not None
    assert outer.context is not None
    assert inner.parent.span_id == outer.context.span_id


def test_current_trace_ids_are_empty_outside_a_span() -> None:
    assert current_trace_ids() == {}


def test_setup_tracing_refuses_a_second_global_provider() -> None:
    with pytest.raises(ConfigurationError, match="already set"):
        setup_tracing("again")


def test_setup_tracing_builds_a_local_provider_with_resource_attributes() -> None:
    provider = setup_tracing(
        "orders", resource_attributes={"deployment.environment": "test"}, set_global=False
    )
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "orders"
    assert provider.resource.attributes["deployment.environment"] == "test"
    assert trace.get_tracer_provider() is not provider
    provider.shutdown()


@pytest.mark.anyio
async def test_a_fastapi_request_gets_one_server_span(spans: Spans, client: Client) -> None:
    """FastAPI 0.16x traces requests itself once a tracer provider is set: still one SERVER span."""
    app = FastAPI()
    app.add_middleware(ObservabilityMiddleware, metrics=False)

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        return {"order": order_id}

    async with client(app) as http:
        response = await http.get("/orders/7", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200
    servers = [s for s in spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /orders/{order_id}"]
    (server,) = servers
    assert server.parent is not None
    assert server.parent.span_id == int(PARENT_ID, 16)
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/orders/{order_id}"


@FASTAPI_TELEMETRY
@pytest.mark.anyio
async def test_with_fastapi_tracing_off_the_one_server_span_is_aegis(
    spans: Spans, client: Client
) -> None:
    app = FastAPI(telemetry={"tracing": False})
    app.add_middleware(ObservabilityMiddleware, metrics=False)

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, str]:
        return current_trace_ids()

    async with client(app) as http:
        body = (await http.get("/orders/7")).json()
    (server,) = [s for s in spans() if s.kind is SpanKind.SERVER]
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.name.startswith("aegis")
    assert server.context is not None
    assert body["trace_id"] == f"{server.context.trace_id:032x}"


@FASTAPI_TELEMETRY
@pytest.mark.parametrize(
    ("loop", "http"), list(itertools.product(UVICORN_LOOPS, UVICORN_PROTOCOLS))
)
def test_under_fastapis_own_tracing_a_pipelined_request_starts_its_own_trace(
    tracer_provider: TracerProvider, loop: str, http: str
) -> None:
    """FastAPI opens the SERVER span (the middleware opens none): still no inherited trace."""
    app = FastAPI(telemetry={"tracer_provider": tracer_provider})
    app.add_middleware(ObservabilityMiddleware, registry=CollectorRegistry())

    @app.post("/orders")
    async def order() -> dict[str, str | None]:
        span = trace.get_current_span().get_span_context()
        return {"trace": format(span.trace_id, "032x") if span.is_valid else None}

    big = b"x" * 70_000  # past uvicorn's 64 KiB high-water mark
    with uvicorn_server(app, loop=loop, http=http) as server:  # real server: keep-alive, pipelining
        for _ in range(50):
            with server.connect() as connection:
                connection.send(
                    http_request("POST", "/orders", headers={"traceparent": TRACEPARENT}, body=big)
                    + http_request("POST", "/orders")
                )
                continued = connection.read_response().json()["trace"]
                plain = connection.read_response().json()["trace"]
            assert continued == TRACE_ID
            assert plain not in {None, TRACE_ID}
