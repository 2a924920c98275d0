"""No request inherits an earlier request's caller, whatever context the server starts it in.

uvicorn runs the requests of a keep-alive connection in copies of one context, and a value set
inside one request can reach it (CPython gh-140947, uvicorn #2167): under uvicorn's defaults a
pipelined anonymous request ran as the admin before it. The middleware sets the principal,
``user_id`` and ``tenant_id`` on every request, to ``None`` when there is no caller, and puts
the caller in ``scope["user"]`` / ``scope["auth"]``. tests/test_request_isolation.py runs the
whole middleware stack this way; here aegis-auth alone.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import UnauthenticatedUser
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from aegis.auth import (
    AuthMiddleware,
    JWTKey,
    KeySet,
    Principal,
    TokenService,
    current_principal,
    roles_required,
)
from aegis.auth._principal import PRINCIPAL
from aegis.core import context
from aegis.core.context import request_context
from aegis.core.errors import AegisError
from aegis.testing import (
    UVICORN_LOOPS,
    UVICORN_PROTOCOLS,
    RunningServer,
    http_request,
    uvicorn_server,
)

ANONYMOUS: dict[str, Any] = {
    "principal": None,
    "user_id": None,
    "tenant_id": None,
    "user": None,
    "scopes": [],
    "unauthenticated_user": True,
    "admin_only": "AUTH_TOKEN_MISSING",
}


@roles_required("admin")
async def admin_only() -> str:
    return "ran"


async def observed(connection: HTTPConnection) -> dict[str, Any]:
    try:
        guarded = await admin_only()
    except AegisError as refused:
        guarded = refused.code
    principal = current_principal()
    user, auth = connection.scope.get("user"), connection.scope.get("auth")
    return {
        "principal": principal.subject if principal else None,
        "user_id": context.user_id.get(),
        "tenant_id": context.tenant_id.get(),
        # .get: without the scope keys (the middleware before this fix on public paths),
        # request.user raises, and the test would show that instead of what the caller sees
        "user": user.display_name if user is not None and user.is_authenticated else None,
        "scopes": list(auth.scopes) if auth is not None else [],
        "unauthenticated_user": isinstance(user, UnauthenticatedUser),
        "admin_only": guarded,
    }


def make_app(tokens: TokenService) -> Starlette:
    async def endpoint(request: Request) -> Response:
        await request.body()
        return JSONResponse(await observed(request))

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(await observed(websocket))
        await websocket.close()

    return Starlette(
        routes=[
            Route("/public", endpoint, methods=["GET", "POST"]),
            Route("/private", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/ws", websocket_endpoint),
        ],
        middleware=[Middleware(AuthMiddleware, tokens=tokens, public_paths=["/public", "/ws"])],
    )


@pytest.fixture
def earlier_admin() -> Iterator[Principal]:
    """What an earlier admin request left in the context the server starts the next one in."""
    admin = Principal("admin-1", roles=frozenset({"admin"}), tenant="t-1")
    token = PRINCIPAL.set(admin)
    with request_context(user_id="admin-1", tenant_id="t-1"):
        yield admin
    PRINCIPAL.reset(token)


@pytest.mark.anyio
async def test_public_and_refused_requests_in_a_stale_context_have_no_caller(
    tokens: TokenService, earlier_admin: Principal
) -> None:
    app = make_app(tokens)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        public = await http.get("/public")
        refused = await http.get("/private")
        kim = tokens.issue_access_token("kim", roles=["user"])
        signed_in = await http.get("/private", headers={"Authorization": f"Bearer {kim}"})
    assert public.json() == ANONYMOUS
    assert refused.status_code == 401
    assert signed_in.json()["principal"] == "kim"
    assert signed_in.json()["tenant_id"] is None  # not the earlier admin's tenant
    assert signed_in.json()["admin_only"] == "AUTH_PERMISSION_DENIED"
    # the context the requests started in is the earlier one again: reset with the tokens
    assert current_principal() is earlier_admin
    assert context.user_id.get() == "admin-1"


@pytest.fixture(
    scope="module", params=list(itertools.product(UVICORN_LOOPS, UVICORN_PROTOCOLS)), ids="-".join
)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    tokens = TokenService(KeySet([JWTKey.hmac("hs-1", b"s" * 64)]), issuer="i", audience="a")
    app = make_app(tokens)
    app.state.tokens = tokens
    loop, http = request.param
    with uvicorn_server(app, loop=loop, http=http, ws="websockets-sansio") as running:
        yield running


def test_pipelined_anonymous_requests_after_an_admin_have_no_caller(
    server: RunningServer,
) -> None:
    tokens: TokenService = server.server.config.app.state.tokens  # type: ignore[union-attr]
    admin = tokens.issue_access_token("admin-1", roles=["admin"], scopes=["all"])
    as_admin = {"Authorization": f"Bearer {admin}"}
    with server.connect() as connection:
        # one write: the admin (with a body above the 64 KiB high-water mark), then anonymous
        connection.send(
            http_request("POST", "/private", headers=as_admin, body=b"x" * 80_000)
            + http_request("GET", "/public")
            + http_request("POST", "/public", body=b"x" * 80_000)
        )
        admin_seen = connection.read_response().json()
        anonymous = [connection.read_response().json() for _ in range(2)]
        # then the admin again and an anonymous WebSocket upgrade of this connection, one write
        # (uvicorn 0.55 on uvloop + httptools dropped one of three requests pipelined ahead of
        # an upgrade: a uvicorn matter, kept out of this test)
        connection.send(
            http_request("POST", "/private", headers=as_admin, body=b"x" * 80_000)
            + connection.websocket_request("/ws")
        )
        assert connection.read_response().json() == admin_seen
        assert connection.read_websocket_handshake().status == 101
        websocket = connection.websocket_receive_text()
    assert admin_seen["principal"] == "admin-1"
    assert admin_seen["admin_only"] == "ran"
    assert anonymous == [ANONYMOUS, ANONYMOUS]
    assert json.loads(websocket) == ANONYMOUS
