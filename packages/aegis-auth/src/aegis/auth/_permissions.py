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


class _Decorator:
    """What ``roles_required(...)`` and its siblings return: a decorator, never a dependency.

    ``Depends(roles_required("admin"))`` looks right and FastAPI accepts it, then reads the
    decorator's ``function`` parameter as a query parameter and answers every caller 422. FastAPI
    reads a dependency's signature when the route is defined, so refusing to give one turns that
    mistake into a ``TypeError`` naming the dependency meant, before the app serves anything.
    """

    def __init__(
        self, check: Callable[[Principal | None], Principal], spelled: str, dependency: str
    ) -> None:
        self._check = check
        self._spelled = spelled
        self._dependency = dependency

    @property
    def __signature__(self) -> inspect.Signature:
        raise TypeError(
            f"{self._spelled} is a decorator for Starlette endpoints and service functions, not a "
            f"FastAPI dependency; use Depends({self._dependency}) (from aegis.auth) instead"
        )

    def __repr__(self) -> str:
        return f"<decorator {self._spelled}>"

    def __call__(self, function: Callable[_P, _R]) -> Callable[_P, _R]:
        check = self._check
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


def _spelling(name: str, required: tuple[str, ...], match: Match, default: Match) -> str:
    arguments = [repr(item) for item in required]
    if match != default:
        arguments.append(f"match={match!r}")
    return f"{name}({', '.join(arguments)})"


def roles_required(
    *roles: str, match: Match = "any"
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a Starlette endpoint or service function so it runs only for these roles.

    The principal is the one :class:`~aegis.auth.AuthMiddleware` set for the request
    (:func:`~aegis.auth.current_principal`). Works on sync and async functions. In FastAPI use
    the dependency :func:`~aegis.auth.require_roles` instead: ``Depends(roles_required(...))``
    raises ``TypeError`` when the route is defined.

    Example:
        >>> @roles_required("admin", "manager")
        ... async def delete_policy(request: Request) -> Response: ...
    """
    return _Decorator(
        functools.partial(ensure_roles, roles=roles, match=match),
        _spelling("roles_required", roles, match, "any"),
        _spelling("require_roles", roles, match, "any"),
    )


def permissions_required(
    *permissions: str, match: Match = "all"
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function so it runs only when the caller's grants allow ``permissions``.

    In FastAPI use the dependency :func:`~aegis.auth.require_permissions` instead.
    """
    return _Decorator(
        functools.partial(ensure_permissions, permissions=permissions, match=match),
        _spelling("permissions_required", permissions, match, "all"),
        _spelling("require_permissions", permissions, match, "all"),
    )


def scopes_required(
    *scopes: str, match: Match = "all"
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function so it runs only when the caller's token carries ``scopes``.

    In FastAPI use the dependency :func:`~aegis.auth.require_scopes` instead.
    """
    return _Decorator(
        functools.partial(ensure_scopes, scopes=scopes, match=match),
        _spelling("scopes_required", scopes, match, "all"),
        _spelling("require_scopes", scopes, match, "all"),
    )
