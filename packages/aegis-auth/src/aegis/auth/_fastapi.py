"""FastAPI dependencies: the current user and role, permission and scope requirements.

Needs the ``fastapi`` extra. The principal comes from :class:`~aegis.auth.AuthMiddleware`
(``scope["user"]``); without one the dependency answers 401, a failed check 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from aegis.auth._errors import TokenMissingError
from aegis.auth._permissions import Match, ensure_permissions, ensure_roles, ensure_scopes
from aegis.auth._principal import Principal

Dependency = Callable[[HTTPConnection], Awaitable[Principal]]
"""What the ``require_*`` functions return: a FastAPI dependency giving the principal."""


async def current_user(connection: HTTPConnection) -> Principal:
    """Return the authenticated principal of the request or WebSocket.

    Raises:
        TokenMissingError: the middleware let the request through unauthenticated (a public
            path) or is not installed.
    """
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise TokenMissingError
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]
"""The authenticated caller as a FastAPI parameter type: ``async def me(user: CurrentUser)``."""


def require_roles(*roles: str, match: Match = "any") -> Dependency:
    """Return a dependency that admits callers holding ``roles`` (any one, by default).

    Example:
        >>> @app.delete("/policies/{id}", dependencies=[Depends(require_roles("admin"))])
        ... async def delete_policy(id: int) -> None: ...
    """

    async def dependency(connection: HTTPConnection) -> Principal:
        return ensure_roles(await current_user(connection), roles, match=match)

    return dependency


def require_permissions(*permissions: str, match: Match = "all") -> Dependency:
    """Return a dependency that admits callers whose grants allow ``permissions`` (all)."""

    async def dependency(connection: HTTPConnection) -> Principal:
        return ensure_permissions(await current_user(connection), permissions, match=match)

    return dependency


def require_scopes(*scopes: str, match: Match = "all") -> Dependency:
    """Return a dependency that admits callers whose token carries ``scopes`` (all)."""

    async def dependency(connection: HTTPConnection) -> Principal:
        return ensure_scopes(await current_user(connection), scopes, match=match)

    return dependency
