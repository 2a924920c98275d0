"""AuthMiddleware beyond HTTP bearer headers: WebSockets (ASGI and a real server), cookies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from aegis.auth import AuthMiddleware, Principal, TokenService
from aegis.core import context
from aegis.core.errors import ConfigurationError

pytestmark = pytest.mark.anyio


def websocket_app(tokens: TokenService, **options: Any) -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        user: Principal = websocket.user
        await websocket.send_text(f"{user.subject}:{context.user_id.get()}")
        await websocket.close()

    async def hello(request: Request) -> Response:
        return JSONResponse({"user": context.user_id.get()})

    return Starlette(
        routes=[WebSocketRoute("/ws", echo), Route("/hello", hello)],
        middleware=[Middleware(AuthMiddleware, tokens=tokens, **options)],
    )


async def test_websocket_with_a_bad_token_is_closed_with_1008_before_accept(
    tokens: TokenService,
) -> None:
    app = websocket_app(tokens)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [(b"authorization", b"Bearer not.a.token")],
        "query_string": b"",
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "AUTH_TOKEN_INVALID"}]


@pytest.fixture
async def server_url(tokens: TokenService) -> AsyncIterator[str]:
    """The WebSocket app under a real uvicorn server on a socket bound before it starts."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(
        websocket_app(tokens), log_level="warning", lifespan="off", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    yield f"ws://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    await task
    listener.close()


async def test_real_websocket_handshake_is_refused_without_a_valid_token(
    server_url: str, tokens: TokenService
) -> None:
    for headers in ({}, {"Authorization": "Bearer forged.token.value"}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server_url}/ws", additional_headers=headers):
                pass  # pragma: no cover - the handshake fails
        assert refused.value.response.status_code == 403
    token = tokens.issue_access_token("kim")
    async with connect(
        f"{server_url}/ws", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        assert await ws.recv() == "kim:kim"


async def test_token_may_come_from_a_cookie_but_the_header_wins(tokens: TokenService) -> None:
    app = websocket_app(tokens, cookie="session")
    kim, lee = tokens.issue_access_token("kim"), tokens.issue_access_token("lee")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        by_cookie = await http.get("/hello", headers={"Cookie": f"theme=dark; session={kim}"})
        assert by_cookie.json() == {"user": "kim"}
        both = await http.get(
            "/hello", headers={"Cookie": f"session={kim}", "Authorization": f"Bearer {lee}"}
        )
        assert both.json() == {"user": "lee"}
        empty = await http.get("/hello", headers={"Cookie": "session="})
        assert empty.json()["code"] == "AUTH_TOKEN_MISSING"
        bad = await http.get("/hello", headers={"Cookie": "session=x.y.z"})
        assert bad.json()["code"] == "AUTH_TOKEN_INVALID"
    assert context.user_id.get() is None  # restored after each request


async def test_realm_and_public_prefixes(tokens: TokenService) -> None:
    app = websocket_app(tokens, realm='users "api"', public_paths=["/hel*"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        assert (await http.get("/hello")).json() == {"user": None}
        refused = await http.get("/other", headers={"Authorization": "Bearer a.b.c"})
    assert refused.headers["www-authenticate"].startswith('Bearer realm="users api", error=')


async def test_a_public_route_with_a_method_leaves_other_methods_protected(
    tokens: TokenService,
) -> None:
    async def users(request: Request) -> Response:
        return JSONResponse({"user": context.user_id.get()})

    app = Starlette(
        routes=[Route("/users", users, methods=["GET", "POST"])],
        middleware=[Middleware(AuthMiddleware, tokens=tokens, public_paths=["post /users"])],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        assert (await http.post("/users")).json() == {"user": None}
        refused = await http.get("/users")
        kim = tokens.issue_access_token("kim")
        listed = await http.get("/users", headers={"Authorization": f"Bearer {kim}"})
    assert refused.status_code == 401
    assert refused.json()["code"] == "AUTH_TOKEN_MISSING"
    assert listed.json() == {"user": "kim"}


async def test_a_public_prefix_with_a_method_opens_that_method_only(tokens: TokenService) -> None:
    async def files(request: Request) -> Response:
        return JSONResponse({"user": context.user_id.get()})

    app = Starlette(
        routes=[Route("/files/{name}", files, methods=["GET", "PUT"])],
        middleware=[Middleware(AuthMiddleware, tokens=tokens, public_paths=["GET /files/*"])],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        assert (await http.get("/files/a")).json() == {"user": None}
        assert (await http.put("/files/a")).status_code == 401


def test_a_malformed_public_path_is_refused(tokens: TokenService) -> None:
    with pytest.raises(ConfigurationError, match="must start with '/'"):
        AuthMiddleware(websocket_app(tokens), tokens, public_paths=["GET docs"])


async def test_lifespan_passes_through(tokens: TokenService) -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await AuthMiddleware(inner, tokens)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
