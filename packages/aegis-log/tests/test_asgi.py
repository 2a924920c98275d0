"""RequestLoggingMiddleware on FastAPI/Starlette apps and on a real uvicorn socket."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.authentication import SimpleUser
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from aegis.core.context import current_context
from aegis.log import RequestLoggingMiddleware, bind_context, get_context, get_logger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from conftest import Lines

pytestmark = pytest.mark.anyio


def make_app(**options: Any) -> FastAPI:
    app = FastAPI()
    log = get_logger("app.users")

    @app.get("/users/{user_id}")
    async def get_user(user_id: int) -> dict[str, Any]:
        bind_context(user_lookup=user_id)
        log.info("looking up user", password="pw")
        return {"context": current_context(), "bound": get_context()}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler exploded")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    app.router.routes.append(Mount("/api", app=sub))
    app.add_middleware(RequestLoggingMiddleware, **{"service_name": "users", **options})
    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def access_lines(lines: Lines) -> list[dict[str, Any]]:
    return [line for line in lines.all() if line["logger"] == "aegis.access"]


async def test_request_gets_an_id_context_and_one_access_line(lines: Lines) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/users/42?token=secret")
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 36
    body = response.json()
    assert body["context"] == {
        "request_id": request_id,
        "correlation_id": request_id,
        "service_name": "users",
    }
    assert body["bound"] == {"user_lookup": 42}
    handler_line, access = (
        line for line in lines.all() if line["logger"] in {"app.users", "aegis.access"}
    )
    assert handler_line["request_id"] == request_id
    assert handler_line["user_lookup"] == 42
    assert handler_line["password"] == "***"
    assert access["event"] == "request"
    assert access["level"] == "info"
    assert access["request_id"] == request_id
    assert access["method"] == "GET"
    assert access["path"] == "/users/42"
    assert access["route"] == "/users/{user_id}"
    assert access["status"] == 200
    assert access["duration_ms"] >= 0
    assert access["client"] == "127.0.0.1"
    assert "token" not in str(access)


async def test_a_secret_in_the_path_is_masked_in_the_access_line(lines: Lines) -> None:
    async with client_for(make_app()) as client:
        await client.get("/users/4111111111111111")
    (access,) = access_lines(lines)
    assert access["route"] == "/users/{user_id}"
    assert "4111111111111111" not in access["path"]
    assert access["path"].startswith("/users/")


async def test_valid_request_and_correlation_ids_are_kept(lines: Lines) -> None:
    headers = {"X-Request-ID": "abc-123.def:9_z", "X-Correlation-ID": "flow-7"}
    async with client_for(make_app()) as client:
        response = await client.get("/users/1", headers=headers)
    assert response.headers["x-request-id"] == "abc-123.def:9_z"
    assert response.json()["context"]["correlation_id"] == "flow-7"
    assert access_lines(lines)[0]["correlation_id"] == "flow-7"


@pytest.mark.parametrize(
    "sent",
    ["has space", "x" * 129, "line\nbreak", '"quoted"', "", "ünïcode"],
)
async def test_invalid_request_ids_are_replaced(lines: Lines, sent: str) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/users/1", headers=[(b"X-Request-ID", sent.encode())])
    assert response.headers["x-request-id"] != sent
    assert len(response.headers["x-request-id"]) == 36
    assert access_lines(lines)[0]["request_id"] == response.headers["x-request-id"]


async def test_request_id_length_limit_is_configurable(lines: Lines) -> None:
    async with client_for(make_app(max_id_length=10)) as client:
        kept = await client.get("/users/1", headers={"X-Request-ID": "0123456789"})
        replaced = await client.get("/users/1", headers={"X-Request-ID": "0123456789a"})
    assert kept.headers["x-request-id"] == "0123456789"
    assert replaced.headers["x-request-id"] != "0123456789a"


async def test_failing_request_logs_the_error_with_its_context(lines: Lines) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    (access,) = access_lines(lines)
    assert access["level"] == "error"
    assert access["event"] == "request failed"
    assert access["status"] == 500
    assert access["route"] == "/boom"
    assert access["request_id"]
    assert access["exception"][0]["exc_value"] == "handler exploded"
    assert get_context() == {}
    assert current_context() == {}


async def test_error_statuses_without_exception_log_at_error(lines: Lines) -> None:
    app = FastAPI()

    @app.get("/unavailable")
    async def unavailable() -> None:
        from fastapi import HTTPException

        raise HTTPException(503)

    app.add_middleware(RequestLoggingMiddleware)
    async with client_for(app) as client:
        await client.get("/unavailable")
        await client.get("/missing")
    unavailable_line, missing = access_lines(lines)
    assert (unavailable_line["status"], unavailable_line["level"]) == (503, "error")
    assert (missing["status"], missing["level"], missing["route"]) == (404, "info", None)


async def test_skipped_paths_get_an_id_but_no_access_line(lines: Lines) -> None:
    async with client_for(make_app(skip_paths={"/health"})) as client:
        response = await client.get("/health")
    assert "x-request-id" in response.headers
    assert access_lines(lines) == []


async def test_skipped_paths_take_prefixes_and_methods(lines: Lines) -> None:
    app = make_app(skip_paths=["/heal*", "GET /users/1"])
    async with client_for(app) as client:
        await client.get("/health")
        await client.get("/users/1")
        await client.get("/users/2")
        await client.head("/users/1")
    assert [(line["method"], line["path"]) for line in access_lines(lines)] == [
        ("GET", "/users/2"),
        ("HEAD", "/users/1"),
    ]


async def test_requests_answered_before_routing_carry_their_route(lines: Lines) -> None:
    app = make_app()

    async def jwks(request: Any) -> Any:
        return PlainTextResponse("{}")

    class RefuseUsers:  # an auth middleware's shape: 401 before the router runs
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/users/"):
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            await self.app(scope, receive, send)

    app.router.routes.append(Route("/jwks", jwks, methods=["GET"]))
    app.add_middleware(RefuseUsers)
    app.user_middleware.reverse()  # inside the logging middleware
    async with client_for(app) as client:
        assert (await client.get("/users/7")).status_code == 401
        assert (await client.get("/jwks")).status_code == 200
    refused, plain = access_lines(lines)
    assert (refused["status"], refused["route"]) == (401, "/users/{user_id}")
    assert plain["route"] == "/jwks"


async def test_a_response_sent_outside_the_auth_middleware_names_the_scope_user(
    lines: Lines,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        # What an auth middleware leaves behind once it returned: the user in the scope, the
        # context reset; an error middleware outside it then sends the 500.
        scope["user"] = SimpleUser("kim")
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client_for(RequestLoggingMiddleware(app)) as client:  # type: ignore[arg-type]
        await client.get("/x")
    assert access_lines(lines)[0]["user_id"] == "kim"


async def test_mounted_routes_carry_the_full_template(lines: Lines) -> None:
    async with client_for(make_app()) as client:
        response = await client.get("/api/items/5")
    assert response.json() == {"item": 5}
    assert access_lines(lines)[0]["route"] == "/api/items/{item_id}"


async def test_an_id_set_by_the_app_is_replaced_not_duplicated(lines: Lines) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"x-request-id", b"app")]}
        )
        await send({"type": "http.response.body", "body": b""})

    async with client_for(RequestLoggingMiddleware(app)) as client:  # type: ignore[arg-type]
        response = await client.get("/", headers={"X-Request-ID": "client-id"})
    assert response.headers.get_list("x-request-id") == ["client-id"]


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await RequestLoggingMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


@pytest.fixture
async def uvicorn_url(lines: Lines) -> AsyncIterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(), host="127.0.0.1", port=port, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_a_real_server_logs_the_peer_address(uvicorn_url: str, lines: Lines) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{uvicorn_url}/users/3")
    assert response.status_code == 200
    access = access_lines(lines)[0]
    assert access["client"] == "127.0.0.1"
    assert access["request_id"] == response.headers["x-request-id"]
