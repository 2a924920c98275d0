"""Each request and WebSocket starts with its own context, whatever context the server gives it.

uvicorn may start a request of a keep-alive connection in a copy of a context an earlier
request wrote into (CPython gh-140947, uvicorn #2167). These tests start requests in exactly
such a context: an earlier caller's fields set around the call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from aegis.core import context
from aegis.core.context import current_context, request_context
from aegis.log import RequestLoggingMiddleware, bind_context, get_context, get_logger

if TYPE_CHECKING:
    from conftest import Lines

pytestmark = pytest.mark.anyio


class SignIn:
    """Stands in for the auth middleware: ``x-user`` becomes ``user_id`` for the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = dict(scope["headers"]).get(b"x-user")
        with context.request_scope(user_id=user.decode() if user else None, tenant_id=None):
            await self.app(scope, receive, send)


async def seen(request: Request) -> Response:
    get_logger("app").info("handled")
    return JSONResponse({"context": current_context(), "bound": get_context()})


async def websocket_seen(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"context": current_context(), "bound": get_context()})
    await websocket.close()


def make_app(inner: list[Middleware]) -> Starlette:
    return Starlette(
        routes=[Route("/seen", seen), WebSocketRoute("/ws", websocket_seen)],
        middleware=[Middleware(RequestLoggingMiddleware, service_name="users"), *inner],
    )


@pytest.fixture
def earlier_request() -> Iterator[None]:
    """The fields an earlier request left in the context the server starts the next one in."""
    with request_context(
        request_id="earlier-request", user_id="admin-1", tenant_id="t-1", correlation_id="c-0"
    ):
        bind_context(marker="bound-by-admin")
        yield


async def test_an_anonymous_request_sees_and_logs_none_of_an_earlier_caller(
    earlier_request: None, lines: Lines
) -> None:
    app = make_app([Middleware(SignIn)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        anonymous = await http.get("/seen", headers={"X-Request-ID": "anon-1"})
        signed_in = await http.get("/seen", headers={"X-Request-ID": "kim-1", "x-user": "kim"})
    assert anonymous.json() == {
        "context": {"request_id": "anon-1", "correlation_id": "anon-1", "service_name": "users"},
        "bound": {},
    }
    assert signed_in.json()["context"]["user_id"] == "kim"
    access = {line["request_id"]: line for line in lines.all() if line["logger"] == "aegis.access"}
    for field in ("user_id", "tenant_id", "marker"):
        assert field not in access["anon-1"], field
    assert access["kim-1"]["user_id"] == "kim"
    assert "marker" not in access["kim-1"]
    handled = [line for line in lines.all() if line["logger"] == "app"]
    assert [line.get("user_id") for line in handled] == [None, "kim"]
    # and the context the requests started in is the earlier one again
    assert context.user_id.get() == "admin-1"
    assert get_context() == {"marker": "bound-by-admin"}


async def test_a_websocket_gets_its_own_request_id_and_no_earlier_caller(
    earlier_request: None,
) -> None:
    async def connect(headers: list[tuple[bytes, bytes]]) -> Any:
        incoming: list[dict[str, Any]] = [
            {"type": "websocket.connect"},
            {"type": "websocket.disconnect", "code": 1000},
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/ws", "headers": headers, "query_string": b""}
        await make_app([])(scope, receive, send)  # type: ignore[arg-type]
        return json.loads(next(m["text"] for m in sent if m["type"] == "websocket.send"))

    first = await connect([(b"x-request-id", b"ws-1")])
    generated = await connect([])
    assert first == {
        "context": {"request_id": "ws-1", "correlation_id": "ws-1", "service_name": "users"},
        "bound": {},
    }
    assert generated["context"]["request_id"] not in {"ws-1", "earlier-request"}
    assert "user_id" not in generated["context"]
    assert context.request_id.get() == "earlier-request"
