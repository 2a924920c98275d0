"""aegis.core.web: Starlette and FastAPI apps answer every error with RFC 9457 problem+json.

The apps are driven through httpx's ASGI transport rather than ``starlette.testclient``: with only
``httpx`` installed the latter warns on import (it wants ``httpx2``), and warnings are errors here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI, Header, Path, Query
from fastapi import HTTPException as FastAPIHTTPException
from pydantic import BaseModel, Field, model_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from aegis.core import context
from aegis.core.context import request_context
from aegis.core.errors import (
    AegisError,
    ConflictError,
    DatabaseUnavailableError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from aegis.core.web import (
    PROBLEM_CONTENT_TYPE,
    ProblemResponse,
    error_response,
    install_error_handlers,
    problem_response,
)

pytestmark = pytest.mark.anyio

AppKind = Literal["starlette", "fastapi"]
SECRET = "s3cr3t-connection-string"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Address(BaseModel):
    zip: str = Field(pattern=r"^\d{5}$")


class Item(BaseModel):
    name: str = Field(min_length=1)


class Order(BaseModel):
    address: Address
    items: list[Item]

    @model_validator(mode="after")
    def needs_items(self) -> Order:
        if not self.items:
            raise ValueError("an order needs at least one item")
        return self


class BearerError(UnauthorizedError):
    """An error that carries response headers, the way aegis-auth's errors do."""

    headers = {"WWW-Authenticate": 'Bearer realm="api"'}  # noqa: RUF012 - read-only here


async def get_user(request: Request) -> Response:
    user_id = request.path_params["user_id"]
    raise NotFoundError(f"user {user_id} does not exist", details={"user_id": user_id})


async def create_order(request: Request) -> Response:
    order = Order.model_validate(await request.json())  # raises pydantic's ValidationError
    return JSONResponse(order.model_dump())


async def limited(request: Request) -> Response:
    raise RateLimitedError("10 requests per minute", retry_after=1.2)


async def boom(request: Request) -> Response:
    raise RuntimeError(f"cannot connect with {SECRET}")


async def database_down(request: Request) -> Response:
    raise DatabaseUnavailableError("the database is unreachable; retry shortly")


async def bearer(request: Request) -> Response:
    raise BearerError("a bearer token is required")


async def http_error(request: Request) -> Response:
    status = int(request.query_params["status"])
    raise HTTPException(status, headers={"X-Hint": "kept"})


class OrderClosedError(ConflictError):
    """A service's own error, declared the natural way (``code``, not ``default_code``)."""

    code = "ORDER_CLOSED"
    title = "Order closed"


async def closed_order(request: Request) -> Response:
    raise OrderClosedError("order 7 is closed", details={"order_id": 7})


async def room(websocket: WebSocket) -> None:
    if websocket.query_params.get("accept") == "1":
        await websocket.accept()
    if websocket.query_params.get("close") == "1":
        await websocket.close()
    if websocket.query_params.get("down") == "1":
        raise DatabaseUnavailableError("the database is unreachable")
    raise NotFoundError("no such room")


ROUTES = [
    Route("/users/{user_id}", get_user),
    Route("/orders", create_order, methods=["POST"]),
    Route("/limited", limited),
    Route("/boom", boom),
    Route("/database-down", database_down),
    Route("/bearer", bearer),
    Route("/http-error", http_error),
    Route("/closed-order", closed_order),
    WebSocketRoute("/rooms", room),
]


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.post("/shops/{shop_id}/orders")
    async def create_shop_order(
        order: Order,
        shop_id: int = Path(),
        page: int = Query(1, ge=1),
        x_token: str = Header(),
    ) -> dict[str, int]:
        return {"shop_id": shop_id, "page": page}

    @app.get("/broken-response", response_model=int)
    async def broken_response() -> Any:
        return SECRET

    @app.get("/structured-detail")
    async def structured_detail() -> None:
        raise FastAPIHTTPException(409, detail={"reason": "duplicate", "ids": [1, 2]})

    return app


def make_app(kind: AppKind) -> Starlette:
    app = fastapi_app() if kind == "fastapi" else Starlette()
    app.router.routes.extend(ROUTES)
    install_error_handlers(app)
    return app


@asynccontextmanager
async def client_for(
    app: ASGIApp, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(params=["starlette", "fastapi"])
def app(request: pytest.FixtureRequest) -> Starlette:
    kind: AppKind = request.param
    return make_app(kind)


def problem_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


async def test_aegis_error_answers_with_its_own_problem_document(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.get("/users/42")
    assert response.status_code == 404
    assert problem_of(response) == {
        "type": "urn:aegis:problem:not-found",
        "title": "Not found",
        "status": 404,
        "detail": "user 42 does not exist",
        "instance": "/users/42",
        "code": "NOT_FOUND",
        "user_id": "42",
    }


async def test_an_error_class_declaring_code_answers_with_it_not_500(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.get("/closed-order")
    assert response.status_code == 409
    assert problem_of(response) == {
        "type": "urn:aegis:problem:order-closed",
        "title": "Order closed",
        "status": 409,
        "detail": "order 7 is closed",
        "instance": "/closed-order",
        "code": "ORDER_CLOSED",
        "order_id": 7,
    }


async def test_rate_limited_error_sets_retry_after_in_whole_seconds(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.get("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert problem_of(response)["retry_after"] == 1.2


async def test_headers_an_error_carries_are_sent(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.get("/bearer")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert problem_of(response)["code"] == "UNAUTHORIZED"


async def test_pydantic_validation_error_in_a_handler_names_each_field(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/orders", json={"address": {"zip": "1"}, "items": [{"name": "pen"}, {"name": ""}]}
        )
    assert response.status_code == 422
    problem = problem_of(response)
    assert problem["code"] == "VALIDATION_ERROR"
    assert problem["detail"] == "2 fields are invalid: address.zip, items.1.name"
    assert problem["errors"] == [
        {
            "field": "address.zip",
            "message": "String should match pattern '^\\d{5}$'",
            "type": "string_pattern_mismatch",
        },
        {
            "field": "items.1.name",
            "message": "String should have at least 1 character",
            "type": "string_too_short",
        },
    ]


async def test_a_model_level_validation_error_has_an_empty_field(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.post("/orders", json={"address": {"zip": "12345"}, "items": []})
    problem = problem_of(response)
    assert problem["detail"] == "1 field is invalid: (root)"
    assert problem["errors"] == [
        {
            "field": "",
            "message": "Value error, an order needs at least one item",
            "type": "value_error",
        }
    ]


async def test_validation_detail_names_the_first_five_fields_and_counts_the_rest(
    app: Starlette,
) -> None:
    items = [{"name": ""} for _ in range(7)]
    async with client_for(app) as client:
        response = await client.post("/orders", json={"address": {"zip": "12345"}, "items": items})
    problem = problem_of(response)
    assert problem["detail"] == (
        "7 fields are invalid: items.0.name, items.1.name, items.2.name, items.3.name, "
        "items.4.name and 2 more"
    )
    assert len(problem["errors"]) == 7


async def test_unmatched_route_answers_404_not_found(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    problem = problem_of(response)
    assert (problem["code"], problem["title"], problem["instance"]) == (
        "NOT_FOUND",
        "Not found",
        "/nowhere",
    )


async def test_wrong_method_answers_405_with_the_allow_header(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.delete("/orders")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert problem_of(response)["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "UNAUTHORIZED"),
        (406, "BAD_REQUEST"),
        (501, "INTERNAL_ERROR"),
        (503, "SERVICE_UNAVAILABLE"),
    ],
)
async def test_http_exception_keeps_status_and_headers_and_gets_a_code(
    app: Starlette, status: int, code: str
) -> None:
    async with client_for(app) as client:
        response = await client.get("/http-error", params={"status": status})
    assert response.status_code == status
    assert response.headers["x-hint"] == "kept"
    assert problem_of(response)["code"] == code


async def test_http_exception_without_an_error_status_answers_without_a_body(
    app: Starlette,
) -> None:
    async with client_for(app) as client:
        response = await client.get("/http-error", params={"status": 304})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["x-hint"] == "kept"


async def test_unexpected_error_answers_500_without_leaking_and_logs_the_stack_trace(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(app, raise_app_exceptions=False) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    problem = problem_of(response)
    assert problem == {
        "type": "urn:aegis:problem:internal-error",
        "title": "Internal server error",
        "status": 500,
        "detail": "The server failed to handle this request. The error has been logged.",
        "instance": "/boom",
        "code": "INTERNAL_ERROR",
    }
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    [record] = [r for r in caplog.records if r.name == "aegis.core.web"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "GET /boom answered 500 INTERNAL_ERROR"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "in boom" in caplog.text  # the stack trace names the failing function


async def test_server_side_aegis_errors_are_logged_with_their_stack_trace(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(app) as client:
        response = await client.get("/database-down")
    assert response.status_code == 503
    assert problem_of(response)["detail"] == "the database is unreachable; retry shortly"
    [record] = [r for r in caplog.records if r.name == "aegis.core.web"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], DatabaseUnavailableError)


async def test_client_errors_are_logged_at_debug_level_only(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aegis.core.web")
    async with client_for(app) as client:
        await client.get("/users/7")
    [record] = [r for r in caplog.records if r.name == "aegis.core.web"]
    assert (record.levelno, record.exc_info) == (logging.DEBUG, None)
    assert record.getMessage() == "GET /users/7 answered 404 NOT_FOUND"


async def test_request_id_comes_from_the_x_request_id_header(app: Starlette) -> None:
    async with client_for(app) as client:
        response = await client.get("/users/1", headers={"X-Request-ID": "req-abc.1"})
    assert problem_of(response)["request_id"] == "req-abc.1"


@pytest.mark.parametrize("header", ["has space", "x" * 201, "naïve"])
async def test_a_malformed_x_request_id_header_is_not_echoed(app: Starlette, header: str) -> None:
    async with client_for(app) as client:
        response = await client.get("/users/1", headers={b"X-Request-ID": header.encode()})
    assert "request_id" not in problem_of(response)


class RequestIdMiddleware:
    """Sets ``request_id`` in the context for the request, like a request-id middleware does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with request_context(request_id="ctx-7"):
            await self.app(scope, receive, send)


async def test_request_id_from_the_context_wins_over_the_header(app: Starlette) -> None:
    app.add_middleware(RequestIdMiddleware)
    async with client_for(app) as client:
        response = await client.get("/users/1", headers={"X-Request-ID": "from-header"})
    assert problem_of(response)["request_id"] == "ctx-7"


class ContextRecorder(logging.Handler):
    """Records each log record with the request id the context held when it was emitted."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), context.request_id.get()))


async def test_unexpected_errors_are_logged_to_the_given_logger_with_the_request_id(
    app: Starlette,
) -> None:
    logger = logging.getLogger("test_web.service")
    recorder = ContextRecorder()
    logger.addHandler(recorder)
    install_error_handlers(app, logger=logger, type_base="https://errors.example.com/")
    try:
        async with client_for(app, raise_app_exceptions=False) as client:
            response = await client.get("/boom", headers={"X-Request-ID": "r-9"})
    finally:
        logger.removeHandler(recorder)
    problem = problem_of(response)
    assert (problem["type"], problem["request_id"]) == (
        "https://errors.example.com/internal-error",
        "r-9",
    )
    assert recorder.seen == [("GET /boom answered 500 INTERNAL_ERROR", "r-9")]


class RejectingMiddleware:
    """Pure ASGI middleware that answers with ``error_response`` or raises before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path == "/guarded/answer":
            error = UnauthorizedError("a token is required")
            response = error_response(error, scope, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
        elif path == "/guarded/aegis":
            raise ConflictError("raised by middleware")
        elif path == "/guarded/http":
            raise HTTPException(403, "raised by middleware")
        elif path == "/guarded/validation":
            Item.model_validate({})
        else:
            await self.app(scope, receive, send)


async def test_pure_asgi_middleware_answers_with_error_response(app: Starlette) -> None:
    app.add_middleware(RejectingMiddleware)
    async with client_for(app) as client:
        response = await client.get("/guarded/answer", headers={"X-Request-ID": "r-1"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert problem_of(response) == {
        "type": "urn:aegis:problem:unauthorized",
        "title": "Unauthorized",
        "status": 401,
        "detail": "a token is required",
        "instance": "/guarded/answer",
        "code": "UNAUTHORIZED",
        "request_id": "r-1",
    }


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/guarded/aegis", 409, "CONFLICT"),
        ("/guarded/http", 403, "FORBIDDEN"),
        ("/guarded/validation", 422, "VALIDATION_ERROR"),
    ],
)
async def test_known_errors_raised_by_middleware_keep_their_own_answer(
    app: Starlette, path: str, status: int, code: str
) -> None:
    app.add_middleware(RejectingMiddleware)
    # Starlette re-raises errors that reach its outermost layer, so the server logs them too.
    async with client_for(app, raise_app_exceptions=False) as client:
        response = await client.get(path)
    assert response.status_code == status
    assert problem_of(response)["code"] == code


async def run_websocket(app: ASGIApp, query: str) -> list[Message]:
    sent: list[Message] = []
    incoming: list[Message] = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/rooms",
        "raw_path": b"/rooms",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [],
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("query", "close_code", "reason"),
    [
        ("accept=1", 1008, "NOT_FOUND"),
        ("accept=0", 1008, "NOT_FOUND"),
        ("accept=1&down=1", 1011, "DB_UNAVAILABLE"),
        ("accept=1&close=1", 1000, ""),  # already closed by the endpoint: not closed twice
    ],
)
async def test_errors_on_a_websocket_close_it_with_the_code_as_reason(
    app: Starlette, query: str, close_code: int, reason: str
) -> None:
    sent = await run_websocket(app, query)
    assert sent[-1] == {"type": "websocket.close", "code": close_code, "reason": reason}
    assert all(message["type"].startswith("websocket.") for message in sent)


async def test_fastapi_request_validation_names_body_fields_without_prefix_and_others_with() -> (
    None
):
    async with client_for(make_app("fastapi")) as client:
        response = await client.post(
            "/shops/abc/orders",
            params={"page": 0},
            json={"address": {"zip": "1"}, "items": [{"name": ""}]},
        )
    assert response.status_code == 422
    problem = problem_of(response)
    assert problem["code"] == "VALIDATION_ERROR"
    assert problem["instance"] == "/shops/abc/orders"
    fields = {entry["field"]: entry["type"] for entry in problem["errors"]}
    assert fields == {
        "path.shop_id": "int_parsing",
        "query.page": "greater_than_equal",
        "header.x-token": "missing",
        "address.zip": "string_pattern_mismatch",
        "items.0.name": "string_too_short",
    }
    assert problem["detail"].startswith("5 fields are invalid: ")
    assert all(set(entry) == {"field", "message", "type"} for entry in problem["errors"])


async def test_fastapi_missing_body_is_named_body() -> None:
    async with client_for(make_app("fastapi")) as client:
        response = await client.post("/shops/1/orders", headers={"X-Token": "t"})
    assert problem_of(response)["errors"] == [
        {"field": "body", "message": "Field required", "type": "missing"}
    ]


async def test_fastapi_malformed_json_is_named_body_with_the_parser_message() -> None:
    async with client_for(make_app("fastapi")) as client:
        response = await client.post(
            "/shops/1/orders",
            content=b'{"address": ',
            headers={"X-Token": "t", "Content-Type": "application/json"},
        )
    [entry] = problem_of(response)["errors"]
    assert entry == {
        "field": "body",
        "message": "JSON decode error: Expecting value",
        "type": "json_invalid",
    }


async def test_fastapi_response_validation_failure_is_a_500_without_leak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client_for(make_app("fastapi"), raise_app_exceptions=False) as client:
        response = await client.get("/broken-response")
    assert response.status_code == 500
    assert problem_of(response)["code"] == "INTERNAL_ERROR"
    assert SECRET not in response.text
    assert "answered 500 INTERNAL_ERROR" in caplog.text


async def test_fastapi_http_exception_with_structured_detail_keeps_it_as_details() -> None:
    async with client_for(make_app("fastapi")) as client:
        response = await client.get("/structured-detail")
    problem = problem_of(response)
    assert (problem["code"], problem["detail"]) == ("CONFLICT", "Conflict")
    assert problem["details"] == {"reason": "duplicate", "ids": [1, 2]}


async def test_fastapi_openapi_and_happy_paths_still_work() -> None:
    async with client_for(make_app("fastapi")) as client:
        created = await client.post(
            "/shops/3/orders",
            params={"page": 2},
            json={"address": {"zip": "12345"}, "items": [{"name": "pen"}]},
            headers={"X-Token": "t"},
        )
        schema = await client.get("/openapi.json")
    assert created.json() == {"shop_id": 3, "page": 2}
    assert schema.status_code == 200


def test_without_fastapi_only_starlette_errors_are_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi.exceptions", None)  # import now raises ImportError
    app = Starlette()
    install_error_handlers(app)
    names = sorted(cls.__name__ for cls in app.exception_handlers)
    assert names == ["AegisError", "Exception", "HTTPException", "ValidationError"]


def test_problem_response_uses_the_problem_media_type_and_drops_a_content_type_header() -> None:
    response = problem_response(
        {"status": 400, "code": "BAD_REQUEST"},
        400,
        headers={"Content-Type": "text/html", "X-Extra": "1"},
    )
    assert isinstance(response, ProblemResponse)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-extra"] == "1"
    assert response.body == b'{"status":400,"code":"BAD_REQUEST"}'


def test_problem_response_writes_values_json_cannot_encode_as_text() -> None:
    token = uuid.UUID(int=1)
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    response = ProblemResponse({"id": token, "at": when, "name": "Zoë"})
    assert json.loads(bytes(response.body)) == {
        "id": "00000000-0000-0000-0000-000000000001",
        "at": "2025-01-02 03:04:05+00:00",
        "name": "Zoë",
    }
    assert "Zoë".encode() in bytes(response.body)  # UTF-8, not \u escapes


def test_error_response_falls_back_to_the_context_request_id_and_custom_type_base() -> None:
    scope: Scope = {"type": "http", "path": "/x", "headers": []}
    error = AegisError("broken", code="CONFIGURATION_ERROR")
    with request_context(request_id="ctx-1"):
        response = error_response(error, scope, type_base="https://e.example/")
    assert response.status_code == 500
    assert b'"request_id":"ctx-1"' in response.body
    assert b'"type":"https://e.example/configuration-error"' in response.body


def test_rate_limited_error_with_a_negative_retry_after_sends_zero() -> None:
    response = error_response(
        RateLimitedError("now", retry_after=-3), {"type": "http", "headers": []}
    )
    assert response.headers["retry-after"] == "0"
