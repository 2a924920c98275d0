"""``RateLimitMiddleware``: a pure ASGI middleware answering 429 problem+json over the limit."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Literal

from aegis.cache._errors import CacheUnavailableError
from aegis.cache._ratelimit import RateLimiter
from aegis.core import context
from aegis.core.context import scope_caller
from aegis.core.errors import PROBLEM_CONTENT_TYPE, AegisError, RateLimitedError
from aegis.core.paths import PathMatcher

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
KeyFunc = Callable[[Scope], str | None]


def client_key(scope: Scope) -> str | None:
    """The client's IP address (the ASGI server's view; run behind a proxy-headers middleware)."""
    client = scope.get("client")
    return f"client:{client[0]}" if client else None


def user_key(scope: Scope) -> str | None:
    """The request's authenticated user, else the client address.

    The user is ``scope["user"]`` as an authentication middleware outside this one sets it
    (aegis-auth's ``AuthMiddleware``, Starlette's ``AuthenticationMiddleware``): its
    ``identity``, or its ``display_name`` where a Starlette user has no identity. The scope
    belongs to this request alone; a context variable read here, outside the middleware that
    sets it, could still hold an earlier request's user (see ``aegis.core.context``).
    """
    name, _ = scope_caller(scope)
    return f"user:{name}" if name else client_key(scope)


def route_key(scope: Scope) -> str | None:
    """The route template when the router set one (bounded), else the method and raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("path", "")
    return f"route:{scope.get('method', '')}:{path}"


_KEYS: dict[str, KeyFunc] = {"client": client_key, "user": user_key, "route": route_key}


class RateLimitMiddleware:
    """Limit HTTP requests per client, user, route or any key; pure ASGI, no Starlette needed.

    Allowed responses carry ``RateLimit-Limit``, ``RateLimit-Remaining`` and
    ``RateLimit-Reset``; refused requests get ``429`` ``application/problem+json`` (code
    ``RATE_LIMITED``) with ``Retry-After``. When Redis is unavailable the limiter's
    ``fail_open`` decides: let requests through, or answer 503 ``CACHE_UNAVAILABLE``.

    Example:
        >>> app.add_middleware(RateLimitMiddleware, limiter=RateLimiter(cache, 100, 60), key="user")

    Args:
        app: the ASGI application.
        limiter: the limit.
        key: ``"client"``, ``"user"``, ``"route"``, or a function of the scope returning the
            key (None: not limited).
        exempt: paths never limited (health checks, metrics), in the path language of
            :mod:`aegis.core.paths`: ``/health``, ``/health*``, ``GET /docs*``.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        *,
        key: Literal["client", "user", "route"] | KeyFunc = "client",
        exempt: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.key = _KEYS[key] if isinstance(key, str) else key
        self.exempt = PathMatcher(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt.matches(scope.get("method"), scope["path"]):
            await self.app(scope, receive, send)
            return
        key = self.key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        try:
            result = await self.limiter.hit(key)
        except CacheUnavailableError as exc:
            await _send_problem(scope, send, exc, {})
            return
        headers = self.limiter.headers(result)
        if not result.allowed:
            error = RateLimitedError(
                f"too many requests: {result.limit} per {self.limiter.period_ms / 1000:g}s",
                retry_after=max(1, math.ceil(result.retry_after)),
            )
            await _send_problem(scope, send, error, headers)
            return
        await self.app(scope, receive, _with_headers(send, headers))


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return send_with_headers


async def _send_problem(
    scope: Scope, send: Send, error: AegisError, headers: dict[str, str]
) -> None:
    problem = error.to_problem(instance=scope.get("path"), request_id=context.request_id.get())
    body = json.dumps(problem, separators=(",", ":"), default=str).encode()
    raw = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
