"""Request-scoped context shared by every aegis package: who, which request, which service.

The values live in :class:`contextvars.ContextVar` objects, so each asyncio task sees the values of
the task that created it, and one request never sees another's. aegis-log reads them into every
log line, the auth middleware writes ``user_id``, aegis-msg copies ``correlation_id`` into events.

Example:
    >>> with request_context(request_id="r-1", user_id="u-7"):
    ...     current_context()
    {'request_id': 'r-1', 'user_id': 'u-7'}
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, ParamSpec, TypeVar

request_id: Final = contextvars.ContextVar[str | None]("aegis_request_id", default=None)
"""The id of the request being served (``X-Request-ID``)."""

correlation_id: Final = contextvars.ContextVar[str | None]("aegis_correlation_id", default=None)
"""The id that ties together every request and event caused by one original action."""

user_id: Final = contextvars.ContextVar[str | None]("aegis_user_id", default=None)
"""The authenticated subject, set by the auth middleware."""

service_name: Final = contextvars.ContextVar[str | None]("aegis_service_name", default=None)
"""The name of the service handling the request."""

tenant_id: Final = contextvars.ContextVar[str | None]("aegis_tenant_id", default=None)
"""The tenant the request acts for, in multi-tenant services."""

CONTEXT_VARS: Final[dict[str, contextvars.ContextVar[str | None]]] = {
    "request_id": request_id,
    "correlation_id": correlation_id,
    "user_id": user_id,
    "service_name": service_name,
    "tenant_id": tenant_id,
}
"""Every context variable by field name, in the order log lines show them."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextmanager
def request_context(
    *,
    request_id: str | None = None,
    correlation_id: str | None = None,
    user_id: str | None = None,
    service_name: str | None = None,
    tenant_id: str | None = None,
) -> Iterator[None]:
    """Set the given context fields for the block and restore the previous values after it.

    Fields left as ``None`` keep their current value. Restoring uses the tokens of the values
    set here, so nested blocks and concurrent tasks each get back exactly what they had.
    """
    values = {
        "request_id": request_id,
        "correlation_id": correlation_id,
        "user_id": user_id,
        "service_name": service_name,
        "tenant_id": tenant_id,
    }
    tokens = [
        (CONTEXT_VARS[name], CONTEXT_VARS[name].set(value))
        for name, value in values.items()
        if value is not None
    ]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def current_context() -> dict[str, str]:
    """Return the fields that are set in the current context, by name."""
    values = {name: variable.get() for name, variable in CONTEXT_VARS.items()}
    return {name: value for name, value in values.items() if value is not None}


def with_current_context(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap ``function`` so it runs in the context of the caller of this function.

    Threads do not inherit context variables. Wrap work before handing it to another thread
    (``executor.submit(with_current_context(work), item)``) so it sees the caller's request.
    Each call runs in its own copy, so the wrapper may run in several threads at once.
    """
    captured = contextvars.copy_context()

    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return captured.copy().run(function, *args, **kwargs)

    return run


__all__ = [
    "CONTEXT_VARS",
    "correlation_id",
    "current_context",
    "request_context",
    "request_id",
    "service_name",
    "tenant_id",
    "user_id",
    "with_current_context",
]
