"""instrument_httpx: a CLIENT span per outgoing request, parent of the server's span."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from aegis.obs import ObservabilityMiddleware, current_trace_ids, extract, instrument_httpx, span

if TYPE_CHECKING:
    from conftest import Served

Spans = Callable[[], tuple[ReadableSpan, ...]]
Serve = Callable[[ASGIApp], "Served"]

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def order(request: Request) -> Response:
    return JSONResponse({"order": request.path_params["order_id"]})


def orders_app() -> Starlette:
    return Starlette(
        routes=[Route("/orders/{order_id}", order)],
        middleware=[Middleware(ObservabilityMiddleware, metrics=False)],
    )


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is kind]


def assert_parent(child: ReadableSpan, parent: ReadableSpan) -> None:
    assert child.parent is not None
    assert parent.context is not None
    assert child.parent.trace_id == parent.context.trace_id
    assert child.parent.span_id == parent.context.span_id


@pytest.mark.anyio
async def test_async_client_span_is_the_parent_of_the_server_span(spans: Spans) -> None:
    transport = httpx.ASGITransport(app=orders_app())
    async with instrument_httpx(httpx.AsyncClient(transport=transport)) as client:
        with span("checkout"):
            response = await client.get("http://orders.test:8080/orders/7?sig=secret&page=2")
    assert response.json() == {"order": "7"}
    (checkout,) = by_kind(spans(), SpanKind.INTERNAL)
    (outgoing,) = by_kind(spans(), SpanKind.CLIENT)
    (incoming,) = by_kind(spans(), SpanKind.SERVER)
    assert_parent(outgoing, checkout)
    assert_parent(incoming, outgoing)
    assert outgoing.name == "GET"
    assert outgoing.status.status_code is StatusCode.UNSET
    assert dict(outgoing.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": "http://orders.test:8080/orders/7?sig=REDACTED&page=2",
        "server.address": "orders.test",
        "server.port": 8080,
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
    }


def test_sync_client_against_a_real_server_marks_4xx_as_error(spans: Spans, serve: Serve) -> None:
    server = serve(orders_app())
    with instrument_httpx(httpx.Client(base_url=server.url)) as client:
        assert client.get("/orders/1").status_code == 200
        assert client.get("/missing").status_code == 404
    server.stop()
    found, missing = by_kind(spans(), SpanKind.CLIENT)
    served = {
        s.attributes["http.response.status_code"]: s
        for s in by_kind(spans(), SpanKind.SERVER)
        if s.attributes
    }
    assert_parent(served[200], found)
    assert_parent(served[404], missing)
    assert found.parent is None
    assert found.status.status_code is StatusCode.UNSET
    assert missing.status.status_code is StatusCode.ERROR
    assert missing.attributes is not None
    assert missing.attributes["error.type"] == "404"
    assert missing.attributes["server.address"] == "127.0.0.1"
    assert missing.attributes["url.full"] == f"{server.url}/missing"


def test_connection_failure_is_recorded_on_the_span(spans: Spans) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = instrument_httpx(httpx.Client())
    with pytest.raises(httpx.ConnectError), client:
        client.post(f"http://me:secret@127.0.0.1:{port}/orders")
    (failed,) = spans()
    assert failed.kind is SpanKind.CLIENT
    assert failed.name == "POST"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "ConnectError"
    assert failed.attributes["url.full"] == f"http://REDACTED:REDACTED@127.0.0.1:{port}/orders"
    assert "http.response.status_code" not in failed.attributes
    assert [event.name for event in failed.events] == ["exception"]


@pytest.mark.anyio
async def test_each_transport_is_traced_once_and_odd_methods_share_one_name(
    spans: Spans,
) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    client = httpx.AsyncClient(
        transport=httpx.MockTransport(reply),
        mounts={"http://other.test": httpx.MockTransport(reply)},
    )
    client = instrument_httpx(instrument_httpx(client))
    async with client:
        await client.get("http://main.test/")
        await client.request("PURGE", "http://other.test/cache")
    plain, odd = spans()
    assert plain.name == "GET"
    assert odd.name == "HTTP"
    assert odd.attributes is not None
    assert odd.attributes["http.request.method"] == "_OTHER"
    assert odd.attributes["http.request.method_original"] == "PURGE"
    assert odd.attributes["server.port"] == 80


def test_without_the_sdk_the_callers_trace_goes_out_unchanged(spans: Spans) -> None:
    seen: list[str | None] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(record))
    instrument_httpx(client, tracer_provider=NoOpTracerProvider())
    token = otel_context.attach(extract({"traceparent": TRACEPARENT}))
    try:
        client.get("https://user-service/users/1")
    finally:
        otel_context.detach(token)
    client.get("https://user-service/users/2")
    client.close()
    assert seen == [TRACEPARENT, None]
    assert spans() == ()


@pytest.mark.anyio
async def test_instrumented_httpx_clients_send_the_current_traceparent(spans: Spans) -> None:
    seen: list[str | None] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(204)

    transport = httpx.MockTransport(record)
    async_client = instrument_httpx(httpx.AsyncClient(transport=transport))
    sync_client = instrument_httpx(httpx.Client(transport=transport))
    with span("call user-service"):
        expected = current_trace_ids()
        await async_client.get("http://user-service/users/1")
        sync_client.get("http://user-service/users/2")
    await async_client.aclose()
    sync_client.close()
    assert [value.split("-")[1] if value else None for value in seen] == [expected["trace_id"]] * 2
