"""Starlette/FastAPI glue for the error model: every error answers as RFC 9457 problem+json.

Needs the ``web`` extra (``pip install aegis-core[web]``). FastAPI is optional: its
``RequestValidationError`` is handled when FastAPI can be imported.

Example:
    >>> from starlette.applications import Starlette
    >>> app = Starlette()
    >>> install_error_handlers(app)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, cast

from pydantic import ValidationError

from aegis.core.errors import DEFAULT_PROBLEM_TYPE_BASE, PROBLEM_CONTENT_TYPE, AegisError
from aegis.core.utils.lazy import extra_required

# Without the extra, say which one to install instead of a bare "No module named".
with extra_required(__name__, {"starlette": "aegis-core[web]"}):
    from starlette.exceptions import HTTPException

    from aegis.core._problem_handlers import (
        ProblemHandlers,
        ProblemResponse,
        error_response,
        problem_response,
    )
    from aegis.core._web_middleware import UnhandledErrorMiddleware

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ExceptionHandler

_LOGGER_NAME = "aegis.core.web"


def install_error_handlers(
    app: Starlette,
    *,
    type_base: str = DEFAULT_PROBLEM_TYPE_BASE,
    logger: logging.Logger | None = None,
) -> None:
    """Make ``app`` (Starlette or FastAPI) answer every error with an RFC 9457 problem document.

    Every answer has the members ``type``, ``title``, ``status``, ``detail``, ``instance`` (the
    request path), ``code`` and, when known, ``request_id`` (from
    :data:`aegis.core.context.request_id`, else a well-formed ``X-Request-ID`` header). Handled:

    - :class:`~aegis.core.errors.AegisError`: its own code, status and details; a ``headers``
      mapping the error carries is sent; :class:`~aegis.core.errors.RateLimitedError` adds
      ``Retry-After``.
    - FastAPI ``RequestValidationError`` and a pydantic ``ValidationError`` raised by a handler:
      422 ``VALIDATION_ERROR`` with ``errors: [{field, message, type}]``, one entry per pydantic
      error. Fields are dotted (``items.0.name``). Request body fields drop the ``body`` prefix,
      so they read as the client wrote them (``address.zip``); ``body`` alone names the whole
      body (missing, or not valid JSON). Other sources keep theirs: ``query.page``, ``path.id``,
      ``header.x-token``, ``cookie.session``. A handler's own ``ValidationError`` has no source:
      its fields are the model's (``address.zip``), ``""`` for a model-level error.
    - Starlette/FastAPI ``HTTPException``: its status and headers (``Allow`` on 405,
      ``WWW-Authenticate`` on 401) and a code from the status (``NOT_FOUND``,
      ``METHOD_NOT_ALLOWED``, ...; else ``BAD_REQUEST`` for 4xx, ``INTERNAL_ERROR`` for 5xx). A
      non-text FastAPI ``detail`` is kept as the ``details`` member. Below 400: no body.
    - any other exception: 500 ``INTERNAL_ERROR`` with a generic detail; the message and stack
      trace go only to the log. The errors above keep their own answer when raised by
      middleware, though Starlette then re-raises them to the server too.

    Errors answering 5xx are logged at ERROR level with the stack trace, others at DEBUG. On a
    WebSocket the connection is closed (1008 for 4xx, 1011 for 5xx) with the code as reason.
    Starlette's ``debug=True`` mode keeps its own traceback page for unexpected errors. A
    handler you register for a narrower exception class wins for that class.

    Args:
        app: the application; FastAPI apps are Starlette apps.
        type_base: prefix of the problem ``type`` URI, e.g. ``"https://errors.example.com/"``.
        logger: where to log errors; defaults to ``logging.getLogger("aegis.core.web")``.

    Example:
        >>> from fastapi import FastAPI
        >>> app = FastAPI()
        >>> install_error_handlers(app, type_base="https://errors.example.com/")
    """
    handlers = ProblemHandlers(
        type_base=type_base, logger=logger or logging.getLogger(_LOGGER_NAME)
    )
    # Starlette's handler type says "takes Exception"; it calls each handler only with the
    # class it is registered for, with a Request, or a WebSocket where a None answer is right.
    table: dict[type[Exception], object] = {
        AegisError: handlers.aegis_error,
        ValidationError: handlers.pydantic_error,
        HTTPException: handlers.http_error,
        Exception: handlers.unexpected_error,
    }
    try:
        from fastapi.exceptions import RequestValidationError  # optional
    except ImportError:
        pass
    else:
        table[RequestValidationError] = handlers.request_validation_error
    for exception_class, handler in table.items():
        app.add_exception_handler(exception_class, cast("ExceptionHandler", handler))


__all__ = [
    "DEFAULT_PROBLEM_TYPE_BASE",
    "PROBLEM_CONTENT_TYPE",
    "ProblemResponse",
    "UnhandledErrorMiddleware",
    "error_response",
    "install_error_handlers",
    "problem_response",
]
