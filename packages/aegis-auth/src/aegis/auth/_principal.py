"""Who is calling: the typed :class:`Principal` a verified token becomes, and where it lives."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.authentication import AuthCredentials, BaseUser

from aegis.core.models import Permission

SERVICE_SUBJECT_PREFIX: Final = "service:"
"""Subjects of service-account tokens start with this: ``service:billing``."""

PRINCIPAL: Final = contextvars.ContextVar["Principal | None"]("aegis_auth_principal", default=None)
"""The principal of the request being served (set by the middleware)."""


@dataclass(frozen=True, eq=False)
class Principal(BaseUser):
    """The authenticated caller, built from a verified token.

    It is what ``request.user`` (``scope["user"]``) holds behind
    :class:`~aegis.auth.AuthMiddleware`, and what :func:`current_principal` returns. Roles are
    already expanded through the role policy (an ``admin`` is also a ``manager``), and
    ``permissions`` include those the roles grant.

    Attributes:
        subject: the ``sub`` claim: a user id, or ``service:<name>`` for a service.
        roles: role names.
        permissions: granted ``resource:action`` permissions (wildcards allowed).
        scopes: OAuth scopes (the ``scope`` claim).
        tenant: the tenant the token acts for, when the service is multi-tenant.
        token_id: the ``jti`` claim.
        family: the refresh-token family (one login) the token belongs to.
        expires_at: the ``exp`` claim, seconds since the epoch.
        claims: every verified claim, for application-specific ones.
    """

    subject: str
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    tenant: str | None = None
    token_id: str | None = None
    family: str | None = None
    expires_at: int | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_service(self) -> bool:
        """Whether this caller is a service account (``sub`` is ``service:<name>``)."""
        return self.subject.startswith(SERVICE_SUBJECT_PREFIX)

    @functools.cached_property
    def credentials(self) -> AuthCredentials:
        """Starlette ``AuthCredentials`` with the scopes (``request.auth``), made once."""
        return AuthCredentials(sorted(self.scopes))

    @property
    def is_authenticated(self) -> bool:
        """Always true: an unauthenticated request has no principal (Starlette protocol)."""
        return True

    @property
    def display_name(self) -> str:
        """The subject (Starlette protocol)."""
        return self.subject

    @property
    def identity(self) -> str:
        """The subject (Starlette protocol)."""
        return self.subject

    def has_role(self, role: str) -> bool:
        """Whether the caller holds ``role`` (directly or through inheritance)."""
        return role in self.roles

    def has_permission(self, permission: str) -> bool:
        """Whether a granted permission allows ``permission``; wildcards count.

        ``policy:*`` allows ``policy:read`` and ``*:read`` allows ``user:read``.

        Raises:
            InvalidInputError: ``permission`` is not ``resource:action``.
        """
        wanted = Permission(permission)
        return wanted in self.permissions or any(
            Permission(granted).matches(wanted) for granted in self.permissions
        )

    def has_scope(self, scope: str) -> bool:
        """Whether the token carries the OAuth ``scope``."""
        return scope in self.scopes

    def owns_or_has_role(self, owner_id: str | None, roles: Iterable[str] = ("admin",)) -> bool:
        """Whether the caller is the resource's owner (``owner_id == subject``) or has a role.

        Use it for "users edit their own profile, admins edit any" checks;
        :func:`~aegis.auth.require_owner` raises instead of answering.
        """
        return (owner_id is not None and owner_id == self.subject) or any(
            role in self.roles for role in roles
        )


def current_principal() -> Principal | None:
    """Return the principal of the request being served, or ``None`` outside one.

    :class:`~aegis.auth.AuthMiddleware` sets it for the request, so service functions deep in
    the call stack can check permissions without the request object.
    """
    return PRINCIPAL.get()
