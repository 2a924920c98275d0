"""No request sees another's caller, on a real uvicorn server, over raw sockets.

uvicorn runs the requests of one keep-alive connection in copies of the connection's context,
and a value set inside one request can reach that context (CPython gh-140947, uvicorn #2167):
pipelined requests, and a request after one whose body passed the 64 KiB high-water mark,
started with the previous request's principal. The app stacks the real middlewares
(aegis-obs, aegis-log, aegis-auth, aegis-cache rate limiting) under uvicorn's defaults (no
``--reset-contextvars``), on both loops and both HTTP implementations, and every anonymous
request must come out anonymous: no principal, no ``user_id`` in the context or in its access
line, no trace of the caller before it, and role-guarded code refusing it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from aegis.auth import (
    AuthMiddleware,
    JWTKey,
    KeySet,
    TokenService,
    current_principal,
    roles_required,
)
from aegis.cache import Cache, RateLimiter, RateLimitMiddleware, user_key
from aegis.core import context
from aegis.core.errors import AegisError
from aegis.log import (
    LogSettings,
    RequestLoggingMiddleware,
    bind_context,
    configured_logging,
    get_context,
)
from aegis.obs import ObservabilityMiddleware
from aegis.testing import (
    UVICORN_LOOPS,
    UVICORN_PROTOCOLS,
    LogLines,
    RawResponse,
    RunningServer,
    http_request,
    uvicorn_server,
)

ALTERNATIONS = 200
"""Authenticated -> anonymous -> other user -> anonymous rounds per server."""

LARGE_BODY = b"x" * (80 * 1024)
"""Above uvicorn's 64 KiB high-water mark: reading it pauses and resumes the transport."""

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
"""The trace the authenticated requests arrive in; no anonymous request may be in it."""

ANONYMOUS: dict[str, Any] = {
    "principal": None,
    "user_id": None,
    "tenant_id": None,
    "scope_user": None,
    "scope_scopes": [],
    "bound": {},
    "trace_id": None,
    "rate_key": "client:127.0.0.1",
    "admin_only": "AUTH_TOKEN_MISSING",
}
"""What every anonymous request must see."""


def observed(connection: HTTPConnection, admin_only_result: str) -> dict[str, Any]:
    """What the handler of a request sees of its caller, from every place it may look."""
    principal = current_principal()
    user = connection.scope.get("user")
    span = trace.get_current_span().get_span_context()
    return {
        "principal": principal.subject if principal is not None else None,
        "user_id": context.user_id.get(),
        "tenant_id": context.tenant_id.get(),
        "scope_user": user.display_name if user and user.is_authenticated else None,
        "scope_scopes": list(connection.scope["auth"].scopes) if "auth" in connection.scope else [],
        "bound": get_context(),
        "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
        "rate_key": connection.scope.get("rate_key"),
        "admin_only": admin_only_result,
    }


def make_app(tokens: TokenService) -> Starlette:
    """Public and private routes and WebSockets behind the real middleware stack."""

    @roles_required("admin")
    async def admin_only() -> str:
        return "ran"

    async def run_admin_only() -> str:
        try:
            return await admin_only()
        except AegisError as refused:
            return refused.code

    async def endpoint(request: Request) -> Response:
        await request.body()  # a large one pauses and resumes the transport
        marker = request.headers.get("x-marker")
        if marker:
            bind_context(marker=marker)
        return JSONResponse(observed(request, await run_admin_only()))

    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(observed(websocket, await run_admin_only()))
        await websocket.close()

    def rate_key(scope: Any) -> str | None:
        scope["rate_key"] = user_key(scope)
        return str(scope["rate_key"])

    return Starlette(
        routes=[
            Route("/public", endpoint, methods=["GET", "POST"]),
            Route("/private", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/ws/public", websocket_endpoint),
            WebSocketRoute("/ws/private", websocket_endpoint),
        ],
        middleware=[
            Middleware(
                ObservabilityMiddleware,
                registry=CollectorRegistry(),
                tracer_provider=NoOpTracerProvider(),  # spans only from traceparent: any leak shows
            ),
            Middleware(RequestLoggingMiddleware, service_name="isolation"),
            Middleware(AuthMiddleware, tokens=tokens, public_paths=["/public", "/ws/public"]),
            Middleware(
                RateLimitMiddleware, limiter=RateLimiter(Cache(), 1_000_000, 60), key=rate_key
            ),
        ],
    )


_REQUEST_NUMBERS = itertools.count()


class Users:
    """Two callers with different roles, and the requests they and anonymous callers send."""

    def __init__(self, tokens: TokenService) -> None:
        self.tokens = {
            "admin-1": tokens.issue_access_token("admin-1", roles=["admin"], scopes=["all"]),
            "user-2": tokens.issue_access_token("user-2", roles=["user"], tenant="tenant-2"),
        }
        self._ids = _REQUEST_NUMBERS  # unique in the module: one LogLines holds every line

    def request(
        self, caller: str | None, *, body: bytes = b"", path: str | None = None
    ) -> tuple[str, bytes]:
        """(request id, bytes) of a request by ``caller`` (None: anonymous, to /public)."""
        request_id = f"req-{next(self._ids)}"
        headers = [("X-Request-ID", request_id)]
        if caller is not None:
            headers += [
                ("Authorization", f"Bearer {self.tokens[caller]}"),
                ("X-Marker", f"bound-by-{caller}"),
                ("traceparent", TRACEPARENT),
            ]
        target = path or ("/public" if caller is None else "/private")
        return request_id, http_request("POST", target, headers=headers, body=body)


@pytest.fixture(scope="module")
def access_lines() -> Iterator[LogLines]:
    lines = LogLines("aegis.access")
    with configured_logging(LogSettings(console=None, level="INFO"), outputs=[lines]):
        yield lines


@pytest.fixture(scope="module")
def tokens() -> TokenService:
    keys = KeySet([JWTKey.hmac("hs-1", b"k" * 64)])
    return TokenService(keys, issuer="https://isolation.test", audience="isolation")


@pytest.fixture(
    scope="module",
    params=list(itertools.product(UVICORN_LOOPS, UVICORN_PROTOCOLS)),
    ids="-".join,
)
def server(
    request: pytest.FixtureRequest, tokens: TokenService, access_lines: LogLines
) -> Iterator[RunningServer]:
    loop, http = request.param
    app = make_app(tokens)
    with uvicorn_server(app, loop=loop, http=http, ws="websockets-sansio") as running:
        # uvicorn's defaults: isolation must not come from its opt-in context reset
        assert not getattr(running.server.config, "reset_contextvars", False)
        yield running


@pytest.fixture
def users(tokens: TokenService) -> Users:
    return Users(tokens)


def expected(caller: str | None) -> dict[str, Any]:
    """What a request by ``caller`` must see."""
    if caller is None:
        return ANONYMOUS
    return {
        "principal": caller,
        "user_id": caller,
        "tenant_id": "tenant-2" if caller == "user-2" else None,
        "scope_user": caller,
        "scope_scopes": ["all"] if caller == "admin-1" else [],
        "bound": {"marker": f"bound-by-{caller}"},
        "trace_id": TRACEPARENT.split("-")[1],
        "rate_key": f"user:{caller}",
        "admin_only": "ran" if caller == "admin-1" else "AUTH_PERMISSION_DENIED",
    }


def check(
    callers: list[str | None],
    request_ids: list[str],
    responses: list[RawResponse],
    access_lines: LogLines,
) -> None:
    """Each response and access line belongs to its own caller, and only to it."""
    lines = access_lines.wait_for("request_id", request_ids)
    numbered = list(enumerate(zip(callers, responses, lines, strict=True)))
    # The anonymous requests first: what must never happen shows before anything else.
    numbered.sort(key=lambda item: item[1][0] is not None)
    for number, (caller, response, line) in numbered:
        where = f"request {number} of {len(callers)}, by {caller or 'an anonymous caller'}"
        assert response.status == 200, f"{where}: {response.status} {response.body[:300]!r}"
        assert response.json() == expected(caller), where
        assert line.get("user_id") == caller, f"{where}: access line {line}"
        if caller is None:
            assert "tenant_id" not in line, where
            assert "trace_id" not in line, where
            assert "marker" not in line, where


def test_pipelined_requests_each_see_only_their_own_caller(
    server: RunningServer, users: Users, access_lines: LogLines
) -> None:
    callers: list[str | None] = ["admin-1", None, "user-2", None, None, "admin-1", None]
    requests = [users.request(caller, body=b"{}") for caller in callers]
    with server.connect() as connection:
        connection.send(b"".join(data for _, data in requests))  # one write: pipelined
        responses = [connection.read_response() for _ in callers]
    check(callers, [rid for rid, _ in requests], responses, access_lines)


def test_a_request_after_a_body_above_the_high_water_mark_is_anonymous(
    server: RunningServer, users: Users, access_lines: LogLines
) -> None:
    callers: list[str | None] = ["admin-1", None, "user-2", None]
    with server.connect() as connection:
        one_by_one = [users.request(c, body=LARGE_BODY if c else b"") for c in callers]
        responses = []
        for _, data in one_by_one:  # each written after the previous answer, same connection
            connection.send(data)
            responses.append(connection.read_response())
        check(callers, [rid for rid, _ in one_by_one], responses, access_lines)

        pipelined = [users.request(c, body=LARGE_BODY if c else b"") for c in callers]
        connection.send(b"".join(data for _, data in pipelined))
        responses = [connection.read_response() for _ in callers]
        check(callers, [rid for rid, _ in pipelined], responses, access_lines)


def test_alternating_callers_on_one_connection_never_inherit_a_principal(
    server: RunningServer, users: Users, access_lines: LogLines
) -> None:
    round_callers: list[str | None] = ["admin-1", None, "user-2", None]
    callers, request_ids, responses = [], [], []
    with server.connect() as connection:
        for number in range(ALTERNATIONS):
            requests = [users.request(c, body=LARGE_BODY if c else b"") for c in round_callers]
            if number % 2:  # odd rounds: the four requests in one write
                connection.send(b"".join(data for _, data in requests))
                responses += [connection.read_response() for _ in requests]
            else:  # even rounds: each written after the previous answer
                for _, data in requests:
                    connection.send(data)
                    responses.append(connection.read_response())
            callers += round_callers
            request_ids += [request_id for request_id, _ in requests]
    check(callers, request_ids, responses, access_lines)


def test_a_websocket_after_http_requests_on_the_same_connection_is_anonymous(
    server: RunningServer, users: Users, access_lines: LogLines
) -> None:
    # uvicorn upgrades a keep-alive connection in the middle: the WebSocket protocol takes the
    # socket over from the HTTP one, so the upgrade can follow requests on the same socket.
    for websocket_caller, pipelined in itertools.product((None, "user-2"), (False, True)):
        path = "/ws/public" if websocket_caller is None else "/ws/private"
        headers = {}
        if websocket_caller is not None:
            headers["Authorization"] = f"Bearer {users.tokens[websocket_caller]}"
        with server.connect() as connection:
            request_id, data = users.request("admin-1", body=LARGE_BODY)
            connection.send(data)
            check(["admin-1"], [request_id], [connection.read_response()], access_lines)
            request_id, data = users.request("admin-1", body=LARGE_BODY)
            upgrade = connection.websocket_request(path, headers=headers)
            if pipelined:  # the upgrade in the same write as the admin's request
                connection.send(data + upgrade)
                check(["admin-1"], [request_id], [connection.read_response()], access_lines)
            else:
                connection.send(data)
                check(["admin-1"], [request_id], [connection.read_response()], access_lines)
                connection.send(upgrade)
            assert connection.read_websocket_handshake().status == 101
            seen = json.loads(connection.websocket_receive_text())
            assert connection.websocket_close() == 1000
        # The rate limiter and bound fields are HTTP-only; no access line for a WebSocket.
        want = {**expected(websocket_caller), "rate_key": None, "bound": {}}
        if websocket_caller is not None:
            want["trace_id"] = None  # no traceparent on the upgrade
        assert seen == want, (websocket_caller, pipelined)
