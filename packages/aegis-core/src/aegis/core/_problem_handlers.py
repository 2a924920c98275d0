"""Turn exceptions into RFC 9457 problem responses; the machinery behind :mod:`aegis.core.web`."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import Scope
from starlette.websockets import WebSocket, WebSocketState

from aegis.core import context
from aegis.core.errors import (
    DEFAULT_PROBLEM_TYPE_BASE,
    ERROR_CODES,
    PROBLEM_CONTENT_TYPE,
    AegisError,
    FieldError,
    InvalidInputError,
    RateLimitedError,
)

# The id is echoed back to the client and into logs: accept printable ASCII only, bounded.
_VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,200}")
_CODE_BY_STATUS = {
    ERROR_CODES[code].status: code
    for code in (
        "BAD_REQUEST",
        "UNAUTHORIZED",
        "FORBIDDEN",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "CONFLICT",
        "PAYLOAD_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
        "VALIDATION_ERROR",
        "RATE_LIMITED",
        "INTERNAL_ERROR",
        "EXTERNAL_SERVICE_ERROR",
        "SERVICE_UNAVAILABLE",
        "EXTERNAL_SERVICE_TIMEOUT",
    )
}
_FIELDS_NAMED_IN_DETAIL = 5
_WS_POLICY_VIOLATION = 1008  # RFC 6455 section 7.4.1
_WS_INTERNAL_ERROR = 1011
_HTTP_ERROR_STATUS = 400
_HTTP_SERVER_ERROR_STATUS = 500
UNEXPECTED_ERROR_DETAIL = "The server failed to handle this request. The error has been logged."


class ProblemResponse(JSONResponse):
    """A JSON response with the ``application/problem+json`` media type (RFC 9457).

    Values JSON cannot encode natively (``UUID``, ``datetime``, ``Decimal``) are written with
    ``str()`` so an error's ``details`` never turn an error answer into a crash.
    """

    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        """Encode ``content`` as compact UTF-8 JSON."""
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str
        )
        return text.encode("utf-8")


def problem_response(
    problem: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> ProblemResponse:
    """Return a :class:`ProblemResponse` for ``problem`` with ``status`` and extra ``headers``.

    ``Content-Type`` and ``Content-Length`` in ``headers`` are ignored: the response sets them.
    """
    kept = {
        name.lower(): value
        for name, value in (headers or {}).items()
        if name.lower() not in {"content-type", "content-length"}
    }
    return ProblemResponse(dict(problem), status_code=status, headers=kept)


def request_id_for(scope: Scope) -> str | None:
    """Return the request id: the context's ``request_id``, else a well-formed X-Request-ID."""
    current = context.request_id.get()
    if current:
        return current
    header = Headers(scope=scope).get("x-request-id")
    return header if header is not None and _VALID_REQUEST_ID.fullmatch(header) else None


def error_response(
    error: AegisError,
    scope: Scope,
    *,
    type_base: str = DEFAULT_PROBLEM_TYPE_BASE,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """Answer ``error`` for the HTTP request ``scope`` as a problem document.

    ``instance`` is the request path, ``request_id`` comes from the context or the
    ``X-Request-ID`` header. Headers are, by rising priority: a ``headers`` mapping the error
    carries as an attribute (aegis-auth's errors set ``WWW-Authenticate`` this way), then
    ``headers``. A :class:`~aegis.core.errors.RateLimitedError` with ``retry_after`` adds
    ``Retry-After`` in whole seconds, rounded up. Pure ASGI middleware uses it like this:
    ``await error_response(exc, scope)(scope, receive, send)``.
    """
    merged: dict[str, str] = {}
    carried = getattr(error, "headers", None)
    for extra in (carried if isinstance(carried, Mapping) else {}, headers or {}):
        merged.update({str(name).lower(): str(value) for name, value in extra.items()})
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        merged.setdefault("retry-after", str(math.ceil(max(error.retry_after, 0))))
    problem = error.to_problem(
        instance=scope.get("path"), request_id=request_id_for(scope), type_base=type_base
    )
    return problem_response(problem, error.status, merged)


def field_name(location: Sequence[str | int], *, from_request: bool) -> str:
    """Return the dotted field of an error location: ``("items", 0, "name")`` -> ``items.0.name``.

    For request validation (``from_request``) the ``body`` prefix is dropped, so a body field is
    named as the client wrote it (``address.zip``), and ``body`` alone names the whole body;
    ``query``, ``path``, ``header`` and ``cookie`` stay (``query.page``).
    """
    parts = [str(part) for part in location]
    if from_request and parts and parts[0] == "body":
        parts = parts[1:] or ["body"]
    return ".".join(parts)


def field_errors(errors: Sequence[Mapping[str, Any]], *, from_request: bool) -> list[FieldError]:
    """Convert pydantic/FastAPI error dicts to :class:`~aegis.core.errors.FieldError` entries."""
    converted = []
    for error in errors:
        kind = str(error.get("type", "invalid"))
        message = str(error.get("msg", "invalid value"))
        if kind == "json_invalid" and from_request:
            # FastAPI locates a JSON syntax error by character offset; name the body instead.
            cause = (error.get("ctx") or {}).get("error")
            converted.append(FieldError("body", f"{message}: {cause}" if cause else message, kind))
            continue
        location = error.get("loc", ())
        converted.append(FieldError(field_name(location, from_request=from_request), message, kind))
    return converted


def invalid_input(errors: Sequence[FieldError]) -> InvalidInputError:
    """Return an :class:`~aegis.core.errors.InvalidInputError` whose message names the fields."""
    names = list(dict.fromkeys(error.field or "(root)" for error in errors))
    shown = ", ".join(names[:_FIELDS_NAMED_IN_DETAIL])
    if len(names) > _FIELDS_NAMED_IN_DETAIL:
        shown += f" and {len(names) - _FIELDS_NAMED_IN_DETAIL} more"
    message = (
        f"1 field is invalid: {shown}"
        if len(names) == 1
        else f"{len(names)} fields are invalid: {shown}"
    )
    return InvalidInputError(message, errors=errors)


class _HasErrors(Protocol):
    """FastAPI's ``RequestValidationError``, typed without importing FastAPI."""

    def errors(self) -> Sequence[Any]: ...


class ProblemHandlers:
    """The exception handlers :func:`aegis.core.web.install_error_handlers` registers."""

    def __init__(self, *, type_base: str, logger: logging.Logger) -> None:
        self.type_base = type_base
        self.logger = logger

    async def aegis_error(self, conn: HTTPConnection, exc: AegisError) -> Response | None:
        """Answer an :class:`~aegis.core.errors.AegisError` with its own problem document."""
        return await self._respond(conn, exc, cause=exc)

    async def pydantic_error(self, conn: HTTPConnection, exc: ValidationError) -> Response | None:
        """Answer a pydantic ``ValidationError`` raised by a handler: 422, one entry per error."""
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        error = invalid_input(field_errors(errors, from_request=False))
        return await self._respond(conn, error, cause=exc)

    async def request_validation_error(
        self, conn: HTTPConnection, exc: Exception
    ) -> Response | None:
        """Answer FastAPI's ``RequestValidationError``: 422, fields named by the request rule."""
        errors = cast("_HasErrors", exc).errors()
        error = invalid_input(field_errors(errors, from_request=True))
        return await self._respond(conn, error, cause=exc)

    async def http_error(self, conn: HTTPConnection, exc: HTTPException) -> Response | None:
        """Answer a Starlette/FastAPI ``HTTPException``, keeping its status and headers."""
        status = exc.status_code
        if status < _HTTP_ERROR_STATUS:  # 204, 304 and redirects carry no problem body
            return Response(status_code=status, headers=exc.headers)
        generic = "INTERNAL_ERROR" if status >= _HTTP_SERVER_ERROR_STATUS else "BAD_REQUEST"
        code = _CODE_BY_STATUS.get(status, generic)
        detail = exc.detail if isinstance(exc.detail, str) else ERROR_CODES[code].title
        # FastAPI allows any JSON value as detail; keep a non-text one as the `details` member.
        details = None if isinstance(exc.detail, str) else {"details": exc.detail}
        error = AegisError(detail, code=code, status=status, details=details)
        return await self._respond(conn, error, cause=exc, headers=exc.headers)

    async def unexpected_error(self, conn: HTTPConnection, exc: Exception) -> Response | None:
        """Answer any other exception with a generic 500 and log it with its stack trace.

        Starlette calls this handler for exceptions that escape the user middleware too, so
        known errors raised there still get their own answer.
        """
        if isinstance(exc, AegisError):
            return await self.aegis_error(conn, exc)
        if isinstance(exc, HTTPException):
            return await self.http_error(conn, exc)
        if isinstance(exc, ValidationError):
            return await self.pydantic_error(conn, exc)
        error = AegisError(UNEXPECTED_ERROR_DETAIL, code="INTERNAL_ERROR")
        return await self._respond(conn, error, cause=exc)

    async def _respond(
        self,
        conn: HTTPConnection,
        error: AegisError,
        *,
        cause: Exception,
        headers: Mapping[str, str] | None = None,
    ) -> Response | None:
        scope = conn.scope
        method, path = scope.get("method", "WEBSOCKET"), scope.get("path", "")
        request_id = request_id_for(scope)
        # The middleware that set the context may have restored it before this handler runs.
        with context.request_context(request_id=request_id):
            if error.status >= _HTTP_SERVER_ERROR_STATUS:
                self.logger.error(
                    "%s %s answered %d %s", method, path, error.status, error.code, exc_info=cause
                )
            else:
                self.logger.debug("%s %s answered %d %s", method, path, error.status, error.code)
        if isinstance(conn, WebSocket):
            if conn.application_state is not WebSocketState.DISCONNECTED:
                server_side = error.status >= _HTTP_SERVER_ERROR_STATUS
                close_code = _WS_INTERNAL_ERROR if server_side else _WS_POLICY_VIOLATION
                await conn.close(code=close_code, reason=error.code)
            return None
        return error_response(error, scope, type_base=self.type_base, headers=headers)
