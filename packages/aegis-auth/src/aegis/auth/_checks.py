"""Authorization checks on a :class:`~aegis.auth.Principal`, as functions and as decorators.

The functions raise :class:`~aegis.auth.PermissionDeniedError` (403) on denial and
:class:`~aegis.auth.TokenMissingError` (401) when nobody is authenticated. The decorators apply
them to plain Starlette endpoints and to service functions, using the principal the middleware
put in the context; the FastAPI dependencies in :mod:`aegis.auth` use the same functions.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, ParamSpec, TypeVar, cast

from aegis.auth._claims import text_collection
from aegis.auth._errors import PermissionDeniedError, TokenMissingError
from aegis.auth._principal import Principal, current_principal

Match = Literal["any", "all"]
"""Whether any one of the listed requirements suffices, or all of them are needed."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _authenticated(principal: Principal | None) -> Principal:
    if principal is None:
        raise TokenMissingError
    return principal


def _met(held: Callable[[str], bool], required: tuple[str, ...], match: Match) -> bool:
    if not required:
        return True
    return any(map(held, required)) if match == "any" else all(map(held, required))


def _listed(required: tuple[str, ...], match: Match) -> str:
    return (" or " if match == "any" else " and ").join(repr(item) for item in required)


def ensure_roles(
    principal: Principal | None, roles: Iterable[str], *, match: Match = "any"
) -> Principal:
    """Return ``principal`` if it holds the ``roles`` (any one by default), else raise.

    Raises:
        TokenMissingError: ``principal`` is ``None``.
        PermissionDeniedError: the role check failed.
    """
    user, required = _authenticated(principal), tuple(text_collection(roles, "roles"))
    if not _met(user.has_role, required, match):
        raise PermissionDeniedError(f"This needs the role {_listed(required, match)}.")
    return user


def ensure_permissions(
    principal: Principal | None, permissions: Iterable[str], *, match: Match = "all"
) -> Principal:
    """Return ``principal`` if its grants allow the ``permissions`` (all by default), else raise.

    Wildcard grants count: ``policy:*`` allows ``policy:delete``.

    Raises:
        TokenMissingError: ``principal`` is ``None``.
        PermissionDeniedError: the permission check failed.
    """
    user = _authenticated(principal)
    required = tuple(text_collection(permissions, "permissions"))
    if not _met(user.has_permission, required, match):
        raise PermissionDeniedError(f"This needs the permission {_listed(required, match)}.")
    return user


def ensure_scopes(
    principal: Principal | None, scopes: Iterable[str], *, match: Match = "all"
) -> Principal:
    """Return ``principal`` if its token carries the ``scopes`` (all by default), else raise.

    Raises:
        TokenMissingError: ``principal`` is ``None``.
        PermissionDeniedError: with an RFC 6750 ``insufficient_scope`` challenge.
    """
    user, required = _authenticated(principal), tuple(text_collection(scopes, "scopes"))
    if not _met(user.has_scope, required, match):
        raise PermissionDeniedError(
            f"This needs the scope {_listed(required, match)}.", scopes=required
        )
    return user


def require_owner(
    principal: Principal | None, owner_id: str | None, *, roles: Iterable[str] = ("admin",)
) -> Principal:
    """Return ``principal`` if it owns the resource (``owner_id``) or holds one of ``roles``.

    Raises:
        TokenMissingError: ``principal`` is ``None``.
        PermissionDeniedError: neither the owner nor one of ``roles``.

    Example:
        >>> require_owner(current_principal(), order.owner_id, roles=["admin", "support"])
    """
    user, allowed = _authenticated(principal), tuple(text_collection(roles, "roles"))
    if not user.owns_or_has_role(owner_id, allowed):
        raise PermissionDeniedError(
            f"Only the owner or the role {_listed(allowed, 'any')} may do this."
        )
    return user


def _decorator(
    check: Callable[[Principal | None], Principal],
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        if inspect.iscoroutinefunction(function):
            asynchronous = cast("Callable[_P, Awaitable[Any]]", function)

            @functools.wraps(function)
            async def guarded_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                check(current_principal())
                return await asynchronous(*args, **kwargs)

            return cast("Callable[_P, _R]", guarded_async)

        @functools.wraps(function)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            check(current_principal())
            return function(*args, **kwargs)

        return guarded

    return decorate


def roles_required(
    *roles: str, match: Match = "any"
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a Starlette endpoint or service function so it runs only for these roles.

    The principal is the one :class:`~aegis.auth.AuthMiddleware` set for the request
    (:func:`~aegis.auth.current_principal`). Works on sync and async functions.

    Example:
        >>> @roles_required("admin", "manager")
        ... async def delete_policy(request: Request) -> Response: ...
    """
    return _decorator(functools.partial(ensure_roles, roles=roles, match=match))


def permissions_required(
    *permissions: str, match: Match = "all"
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function so it runs only when the caller's grants allow ``permissions``."""
    return _decorator(functools.partial(ensure_permissions, permissions=permissions, match=match))


def scopes_required(
    *scopes: str, match: Match = "all"
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function so it runs only when the caller's token carries ``scopes``."""
    return _decorator(functools.partial(ensure_scopes, scopes=scopes, match=match))
