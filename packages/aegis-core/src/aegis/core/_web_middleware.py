"""UnhandledErrorMiddleware: an unhandled exception answered inside the request, logged once."""

from __future__ import annotations

import logging
from typing import Final

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegis.core._problem_handlers import ProblemHandlers
from aegis.core.errors import DEFAULT_PROBLEM_TYPE_BASE
from aegis.core.paths import route_template

_LOGGER_NAME: Final = "aegis.core.web"


class UnhandledErrorMiddleware:
    """Answer an exception that escapes the app with a problem document, inside the request.

    Starlette hands an unhandled exception to its ``ServerErrorMiddleware``, outside every
    user middleware: there the request id is no longer in the context, the 500 leaves without
    the ``X-Request-ID`` header the logging middleware adds, the access line has to log the
    exception itself, and the server logs it once more when Starlette re-raises. Placed
    inside the request-logging middleware, this middleware answers the exception where the
    request still is: a 500 ``INTERNAL_ERROR`` problem carrying the ``request_id`` (and an
    :class:`~aegis.core.errors.AegisError`, ``HTTPException`` or pydantic ``ValidationError``
    raised by a middleware gets its own answer), logged once at ERROR with the stack trace by
    the same handlers :func:`~aegis.core.web.install_error_handlers` installs. Nothing is
    re-raised, so the server logs nothing more. An exception after the response started
    cannot be answered: it is re-raised for the server to close the connection. WebSockets
    pass through untouched.

    Args:
        app: the ASGI application (the rest of the middleware stack).
        type_base: prefix of the problem ``type`` URI.
        logger: where to log errors; ``logging.getLogger("aegis.core.web")`` by default.

    Example:
        >>> app.add_middleware(UnhandledErrorMiddleware)  # then the logging middleware
        >>> app.add_middleware(RequestLoggingMiddleware)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        type_base: str = DEFAULT_PROBLEM_TYPE_BASE,
        logger: logging.Logger | None = None,
    ) -> None:
        self.app = app
        self._handlers = ProblemHandlers(
            type_base=type_base, logger=logger or logging.getLogger(_LOGGER_NAME)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection; answer an HTTP request's unhandled exception."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def noting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        except Exception as exc:
            if started:
                raise
            # The route the request was for, so the answer is counted and logged under it.
            route_template(scope)
            response = await self._handlers.unexpected_error(Request(scope), exc)
            if response is None:  # only for WebSockets, which never get here
                raise
            await response(scope, receive, send)
