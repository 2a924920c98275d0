"""route_template and UnhandledErrorMiddleware: the route and the 500 of every request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegis.core import context
from aegis.core.errors import ForbiddenError
from aegis.core.paths import ROUTE_TEMPLATE_KEY, route_template
from aegis.core.web import UnhandledErrorMiddleware, install_error_handlers

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


class Refuse:
    """A middleware answering 401 before routing, noting the route template afterwards."""

    def __init__(self, app: ASGIApp, seen: list[str | None]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/users/"):
            await PlainTextResponse("no", status_code=401)(scope, receive, send)
        else:
            await self.app(scope, receive, send)
        self.seen.append(route_template(scope))


def _apps(seen: list[str | None]) -> list[Starlette]:
    inner = Starlette(routes=[Route("/items/{item_id}", ok)])
    starlette = Starlette(
        routes=[
            Route("/users/{user_id}", ok),
            Route("/only-post", ok, methods=["POST"]),
            Mount("/api", app=inner),
        ],
        middleware=[Middleware(Refuse, seen=seen)],
    )
    fastapi = FastAPI()
    fastapi.get("/users/{user_id}")(lambda user_id: {"id": user_id})
    # A plain Starlette Route inside FastAPI's router never records scope["route"].
    fastapi.router.routes.append(Route("/jwks", ok, methods=["GET"]))
    fastapi.router.routes.append(Route("/only-post", ok, methods=["POST"]))
    fastapi.router.routes.append(Mount("/api", app=inner))
    fastapi.add_middleware(Refuse, seen=seen)
    return [starlette, fastapi]


@pytest.mark.parametrize("kind", [0, 1], ids=["starlette", "fastapi"])
async def test_route_template_names_requests_answered_before_routing(kind: int) -> None:
    seen: list[str | None] = []
    app = _apps(seen)[kind]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        assert (await http.get("/users/7")).status_code == 401
        assert (await http.get("/only-post")).status_code == 405
        assert (await http.get("/api/items/3")).status_code == 200
        assert (await http.get("/nowhere")).status_code == 404
    assert seen == ["/users/{user_id}", "/only-post", "/api/items/{item_id}", None]


async def test_a_starlette_route_inside_fastapi_gets_its_template() -> None:
    seen: list[str | None] = []
    app = _apps(seen)[1]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        assert (await http.get("/jwks")).status_code == 200
    assert seen == ["/jwks"]


def test_route_template_is_kept_in_the_scope_and_needs_an_app() -> None:
    scope: dict[str, Any] = {"type": "http", "path": "/x", "method": "GET"}
    assert route_template(scope) is None
    assert scope[ROUTE_TEMPLATE_KEY] == ""
    scope[ROUTE_TEMPLATE_KEY] = "/kept"
    assert route_template(scope) == "/kept"


class AddsRequestId:
    """Stands in for the logging middleware: a request id in the context and the header."""

    def __init__(self, app: ASGIApp, statuses: list[int]) -> None:
        self.app = app
        self.statuses = statuses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", b"r-1")]
            await send(message)

        with context.request_context(request_id="r-1"):
            await self.app(scope, receive, send_with_id)


class Raises:
    def __init__(self, app: ASGIApp, error: Callable[[], Exception]) -> None:
        self.app = app
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/middleware":
            raise self.error()
        await self.app(scope, receive, send)


async def boom(request: Request) -> Response:
    raise RuntimeError("handler exploded")


def _app(error: Callable[[], Exception], statuses: list[int]) -> Starlette:
    app = Starlette(
        routes=[Route("/boom", boom), Route("/middleware", ok)],
        middleware=[
            Middleware(AddsRequestId, statuses=statuses),
            Middleware(UnhandledErrorMiddleware),
            Middleware(Raises, error=error),
        ],
    )
    install_error_handlers(app)
    return app


@pytest.mark.parametrize("path", ["/boom", "/middleware"])
async def test_an_unhandled_error_is_answered_inside_the_request_and_logged_once(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    statuses: list[int] = []
    app = _app(lambda: RuntimeError("middleware exploded"), statuses)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get(path)  # raise_app_exceptions: nothing escaped
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "r-1"
    assert response.json()["request_id"] == "r-1"
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert statuses == [500]  # the middleware outside saw the answer, not an exception
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].name == "aegis.core.web"


async def test_a_known_error_raised_by_a_middleware_keeps_its_own_answer() -> None:
    app = _app(lambda: ForbiddenError("not yours"), [])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/middleware")
    assert response.status_code == 403
    assert response.json()["request_id"] == "r-1"


async def test_an_error_after_the_response_started_is_re_raised() -> None:
    async def streams(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("mid-stream")

    middleware = UnhandledErrorMiddleware(streams)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    with pytest.raises(RuntimeError, match="mid-stream"):
        await middleware({"type": "http", "path": "/", "headers": []}, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"]


async def test_websockets_and_lifespan_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing(*args: Any) -> Any:
        raise AssertionError("not called")

    await UnhandledErrorMiddleware(app)({"type": "lifespan"}, nothing, nothing)
    assert seen == ["lifespan"]
