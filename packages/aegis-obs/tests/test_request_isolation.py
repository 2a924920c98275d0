"""No request runs in an earlier request's trace, whatever context the server starts it in.

uvicorn may start a request of a keep-alive connection in a copy of a context an earlier
request's span was current in (CPython gh-140947, uvicorn #2167). These tests start requests in
exactly such a context: the OpenTelemetry context of an earlier trace attached around the call.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracerProvider
from opentelemetry.trace import TracerProvider as ApiTracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aegis.obs import ObservabilityMiddleware

pytestmark = pytest.mark.anyio

EARLIER_TRACE = "0af7651916cd43dd8448eb211c80319c"
EARLIER = f"00-{EARLIER_TRACE}-b7ad6b7169203331-01"
THIS_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
THIS = f"00-{THIS_TRACE}-00f067aa0ba902b7-01"


async def current_trace(request: Request) -> Response:
    span = trace.get_current_span().get_span_context()
    return JSONResponse({"trace": format(span.trace_id, "032x") if span.is_valid else None})


def make_app(provider: ApiTracerProvider) -> Starlette:
    return Starlette(
        routes=[Route("/orders", current_trace), Route("/health", current_trace)],
        middleware=[
            Middleware(
                ObservabilityMiddleware, registry=CollectorRegistry(), tracer_provider=provider
            )
        ],
    )


@pytest.fixture
def earlier_trace() -> Iterator[Context]:
    """The context an earlier request left behind, current around the test's requests."""
    stale = propagate.extract({"traceparent": EARLIER}, Context())
    token = otel_context.attach(stale)
    yield stale
    otel_context.detach(token)


@pytest.mark.parametrize("sdk", [False, True], ids=["no-sdk", "sdk"])
async def test_a_request_without_traceparent_is_in_no_earlier_trace(
    earlier_trace: Context, tracer_provider: TracerProvider, sdk: bool
) -> None:
    app = make_app(tracer_provider if sdk else NoOpTracerProvider())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        plain = (await http.get("/orders")).json()["trace"]
        continued = (await http.get("/orders", headers={"traceparent": THIS})).json()["trace"]
        probe = (await http.get("/health")).json()["trace"]  # excluded: no span of its own
    assert plain != EARLIER_TRACE
    assert plain is None or sdk  # with the SDK, a new trace of its own
    assert continued == THIS_TRACE
    assert probe is None
    assert otel_context.get_current() is earlier_trace  # restored with the token afterwards
