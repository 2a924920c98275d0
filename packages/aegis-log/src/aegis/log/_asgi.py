"""RequestLoggingMiddleware: request id, request context and one access line per request."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any, Final

from aegis.core import context
from aegis.core.context import scope_caller
from aegis.core.models import uuid7_str
from aegis.core.paths import PathMatcher, route_template
from aegis.log._access import ACCESS_LOGGER, AccessLine
from aegis.log._context import EMPTY_FIELDS, bound_fields

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SERVER_ERROR: Final = 500
_MIN_ID_LENGTH: Final = 8
_REQUEST_ID: Final = context.request_id
_CORRELATION_ID: Final = context.correlation_id
_SERVICE_NAME: Final = context.service_name
_USER_ID: Final = context.user_id
_TENANT_ID: Final = context.tenant_id


class RequestLoggingMiddleware:
    """Pure ASGI middleware: a request id and context for every request, and its access line.

    For each HTTP request and WebSocket it

    * takes the ``X-Request-ID`` header when it is 1 to ``max_id_length`` characters of
      ``A-Z a-z 0-9 . _ : -``, and otherwise generates a UUIDv7 (so a client cannot inject
      text into the logs), and takes ``X-Correlation-ID`` the same way (default: the request
      id);
    * sets ``request_id``, ``correlation_id`` and ``service_name`` in ``aegis.core.context``,
      clears ``user_id`` and ``tenant_id`` (the auth middleware inside sets them), and starts
      with no fields bound by :func:`~aegis.log.bind_context`; every value is reset with its
      token when the request ends, so no request inherits another's, whatever context the
      server runs it in (uvicorn's ``--reset-contextvars`` is not needed);

    and for each HTTP request it also

    * sends the request id back in the ``X-Request-ID`` response header;
    * writes one line to the ``aegis.access`` logger: method, path, route template, status,
      duration_ms and client address, with the ``user_id`` and ``tenant_id`` that were set
      when the response started (the caller the auth middleware found, or none; for a
      response started outside the auth middleware, the authenticated ``scope["user"]`` it
      left); at ERROR
      with the structured stack trace when the application raised (the exception is
      re-raised), at INFO otherwise.

    Args:
        app: the ASGI application to wrap.
        service_name: written into the context of each request.
        skip_paths: paths that get context and header but no access line, in the path
            language of :mod:`aegis.core.paths` (``/metrics``, ``/health*``, ``GET /ping``).
        header: the request id header.
        correlation_header: the correlation id header.
        max_id_length: longest id accepted from a client.

    Example:
        >>> app.add_middleware(RequestLoggingMiddleware, service_name="users")

    .. versionchanged:: 0.1
        ``skip_paths`` takes :class:`~aegis.core.paths.PathMatcher` patterns: prefixes
        (``/health*``) and one method (``GET /ping``), not only exact paths.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service_name: str | None = None,
        skip_paths: Collection[str] = (),
        header: str = "X-Request-ID",
        correlation_header: str = "X-Correlation-ID",
        max_id_length: int = 128,
    ) -> None:
        self.app = app
        self._service_name = service_name
        self._skip = PathMatcher(skip_paths)
        self._header = header.lower().encode("latin-1")
        self._correlation_header = correlation_header.lower().encode("latin-1")
        pattern = rb"[A-Za-z0-9._:-]{1,%d}" % max(max_id_length, _MIN_ID_LENGTH)
        self._valid_id = re.compile(pattern).fullmatch
        # Levels live in stdlib logging (aegis.log's set_level, LogSettings.levels).
        self._gate = logging.getLogger(ACCESS_LOGGER)
        self._line = AccessLine()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection; ``http`` and ``websocket`` scopes get a context."""
        kind = scope["type"]
        if kind != "http" and kind != "websocket":  # noqa: PLR1714 (two compares beat a set)
            await self.app(scope, receive, send)
            return
        header, correlation_header = self._header, self._correlation_header
        sent_id = sent_correlation = None
        for name, value in scope.get("headers", ()):
            if name == header:
                sent_id = value
            elif name == correlation_header:
                sent_correlation = value
        valid = self._valid_id
        request_id = (
            sent_id.decode("ascii") if sent_id is not None and valid(sent_id) else uuid7_str()
        )
        correlation_id = (
            sent_correlation.decode("ascii")
            if sent_correlation is not None and valid(sent_correlation)
            else request_id
        )
        # Every field is set, None included, and reset with its token when the request ends:
        # the server may start this request in a context that still holds an earlier
        # request's values (see aegis.core.context). Spelled out rather than request_scope()
        # and isolated_context(): on this path of every request their generality was a
        # measurable share of the middleware's cost (benchmarks/obs_overhead.py).
        tokens = (
            _REQUEST_ID.set(request_id),
            _CORRELATION_ID.set(correlation_id),
            _SERVICE_NAME.set(self._service_name),
            _USER_ID.set(None),
            _TENANT_ID.set(None),
        )
        fields_token = bound_fields.set(EMPTY_FIELDS)
        try:
            if kind == "websocket":
                await self.app(scope, receive, send)
                return
            id_header = (header, request_id.encode("ascii"))
            status = _SERVER_ERROR
            caller: tuple[str | None, str | None] = (None, None)

            async def send_with_id(message: Message) -> None:
                nonlocal status, caller
                if message["type"] == "http.response.start":
                    status = message["status"]
                    # Sent from inside the auth middleware: the caller of this request.
                    caller = (_USER_ID.get(), _TENANT_ID.get())
                    if caller[0] is None:
                        # Sent from outside it (a 500 answered by an error middleware around
                        # it): the caller it left in this request's scope.
                        caller = scope_caller(scope)
                    headers = message.get("headers", ())
                    for item in headers:
                        if item[0] == header:  # the app's own is replaced
                            headers = [item for item in headers if item[0] != header]
                            break
                    message = {**message, "headers": [*headers, id_header]}
                await send(message)

            root_path = scope.get("root_path", "")
            started = time.perf_counter()
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                self._access_line(
                    scope, root_path, _SERVER_ERROR, started, error=exc, caller=caller
                )
                raise
            self._access_line(scope, root_path, status, started, error=None, caller=caller)
        finally:
            bound_fields.reset(fields_token)
            for token in tokens:
                token.var.reset(token)

    def _access_line(
        self,
        scope: Scope,
        root_path: str,
        status: int,
        started: float,
        *,
        error: Exception | None,
        caller: tuple[str | None, str | None],
    ) -> None:
        path = scope.get("path", "")
        method = scope.get("method")
        if self._skip.matches(method, path):
            return
        if error is not None or status >= _SERVER_ERROR:
            level, level_name = logging.ERROR, "error"
        else:
            level, level_name = logging.INFO, "info"
        if not self._gate.isEnabledFor(level):
            return
        client = scope.get("client")
        self._line.write(
            level,
            level_name,
            method=method,
            path=path,
            route=_route_template(scope, root_path),
            status=status,
            # whole microseconds, in ms: round() to an int is a tenth of round(x, 3)'s cost
            duration_ms=round((time.perf_counter() - started) * 1_000_000) / 1000,
            client=client[0] if client else None,
            caller=caller,
            error=error,
        )


def _route_template(scope: Scope, root_path: str) -> str | None:
    """``/users/{user_id}`` for a matched Starlette/FastAPI route, with any mount prefix."""
    route = scope.get("route")
    if route is None:
        # Answered before routing (a 401, a 429), or a Starlette Route in a FastAPI router.
        return route_template(scope)
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    mounted_at = scope.get("root_path", "")
    if mounted_at == root_path:
        return template
    return str(mounted_at)[len(root_path) :] + template
