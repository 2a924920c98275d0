"""Request-scoped context shared by every aegis package: who, which request, which service.

The values live in :class:`contextvars.ContextVar` objects, so each asyncio task sees the values of
the task that created it. aegis-log reads them into every log line, the auth middleware writes
``user_id``, aegis-msg copies ``correlation_id`` into events.

A server does not guarantee each request a fresh context: uvicorn runs the requests of one
keep-alive connection in copies of the connection's context, and a value set inside one request
can reach that context (CPython gh-140947, uvicorn #2167), so the next request starts with it.
Middleware therefore sets every field it owns at the start of every request, to the request's
value or to ``None``, with :func:`request_scope`, which resets them with their tokens after.

Example:
    >>> with request_context(request_id="r-1", user_id="u-7"):
    ...     current_context()
    {'request_id': 'r-1', 'user_id': 'u-7'}
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypedDict, TypeVar

if TYPE_CHECKING:
    from typing import Unpack

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


class RequestFields(TypedDict, total=False):
    """The fields :func:`request_scope` takes, each optional: a value, or ``None`` to clear it."""

    request_id: str | None
    correlation_id: str | None
    user_id: str | None
    service_name: str | None
    tenant_id: str | None


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

    Fields left as ``None`` keep their current value (use :func:`request_scope` to clear
    them, as middleware starting a request must). Restoring uses the tokens of the values
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


class _RequestScope(AbstractContextManager[None]):
    """What :func:`request_scope` returns: one use; the tokens are kept from enter to exit.

    Every request crosses this twice per middleware, so it is kept to a list of tokens (a token
    knows its variable) and no validation beyond the field lookup.
    """

    __slots__ = ("_fields", "_tokens")

    def __init__(self, fields: RequestFields) -> None:
        self._fields = fields
        self._tokens: list[contextvars.Token[str | None]] = []

    def __enter__(self) -> None:
        tokens = self._tokens
        try:
            for name, value in self._fields.items():
                tokens.append(CONTEXT_VARS[name].set(value))  # type: ignore[arg-type]
        except KeyError as unknown:
            for token in tokens:  # undo the fields set before the unknown one
                token.var.reset(token)
            raise TypeError(f"request_scope() got an unknown context field {unknown}") from None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for token in self._tokens:
            token.var.reset(token)


def request_scope(**fields: Unpack[RequestFields]) -> AbstractContextManager[None]:
    """Set the named fields for one request, ``None`` included, and reset them after the block.

    Unlike :func:`request_context`, a field given as ``None`` is *cleared* for the block, so
    nothing left set by an earlier request on the same connection shows through: the
    middleware that starts a request names every field (aegis-log's names all five), one that
    learns some later names those (an auth middleware: ``user_id`` and ``tenant_id``, ``None``
    on a public path). Fields not named keep their value. Leaving the block resets each field
    with its token, so it works whatever context the server runs the request in and whatever
    the block set in between.

    Raises:
        TypeError: on entering the block, a name that is not a field of :data:`CONTEXT_VARS`.

    Example:
        >>> with request_scope(user_id=None, tenant_id=None):
        ...     current_context().get("user_id") is None
        True

    .. versionadded:: 0.1
    """
    return _RequestScope(fields)


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


def scope_caller(scope: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The authenticated caller of an ASGI scope: its id and tenant, or ``(None, None)``.

    Reads ``scope["user"]`` as aegis-auth's ``AuthMiddleware`` and Starlette's
    ``AuthenticationMiddleware`` set it (a ``BaseUser``): its ``identity``, or its
    ``display_name`` where the user has no identity (Starlette's ``SimpleUser``). The scope
    belongs to one request alone, so unlike a context variable it can never show an earlier
    request's caller, wherever it is read.
    """
    user: Any = scope.get("user")
    if not getattr(user, "is_authenticated", False):
        return None, None
    try:
        identity = user.identity
    except NotImplementedError:  # Starlette's BaseUser.identity: SimpleUser does not override it
        identity = getattr(user, "display_name", None)
    tenant = getattr(user, "tenant", None)
    return (str(identity) if identity else None), (str(tenant) if tenant else None)


__all__ = [
    "CONTEXT_VARS",
    "RequestFields",
    "correlation_id",
    "current_context",
    "request_context",
    "request_id",
    "request_scope",
    "scope_caller",
    "service_name",
    "tenant_id",
    "user_id",
    "with_current_context",
]
