"""What tokens carry: claim rules, token pairs, and verified claims turned into a Principal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jwt

from aegis.auth._errors import RejectionReason
from aegis.auth._principal import Principal
from aegis.core.errors import InvalidInputError
from aegis.core.models import Permission

if TYPE_CHECKING:
    from aegis.auth._rbac import RolePolicy

TokenType = Literal["access", "refresh"]
"""The ``typ`` claim: an access token is never accepted as a refresh token, nor the reverse."""

MAX_TOKEN_BYTES = 8192
"""Tokens longer than this (8 KiB) are refused before any parsing."""

REQUIRED_CLAIMS = ("exp", "iat", "sub", "jti", "iss", "aud", "typ")
"""Claims every token must carry; PyJWT alone would accept a token without ``exp``."""


_MAX_ITEMS = 256  # roles, permissions or scopes in one token; more is an attack or a mistake
_MAX_TEXT = 256


_NO_TEXTS: frozenset[str] = frozenset()


class _MalformedClaimError(Exception):
    pass


def _texts(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise _MalformedClaimError
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= _MAX_TEXT:
            raise _MalformedClaimError
    return frozenset(value)


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_TEXT:
        raise _MalformedClaimError
    return value


def principal_from_claims(claims: Mapping[str, Any], policy: RolePolicy | None) -> Principal | None:
    """Return the principal the claims describe, or ``None`` when one of them is malformed.

    ``roles`` and ``permissions`` are lists of text, ``scope`` is space-separated text (or a
    list), ``tenant`` and ``fam`` are text. The policy expands roles and adds the permissions
    they grant.
    """
    try:
        roles = _texts(claims["roles"]) if "roles" in claims else _NO_TEXTS
        granted: frozenset[str] = (
            frozenset(Permission(p) for p in _texts(claims["permissions"]))
            if "permissions" in claims
            else _NO_TEXTS
        )
        scope = claims.get("scope", "")
        scopes = _texts(scope.split() if isinstance(scope, str) else scope)
        tenant = _optional_text(claims.get("tenant"))
        family = _optional_text(claims.get("fam"))
    except (_MalformedClaimError, InvalidInputError):
        return None
    if not claims["sub"]:
        return None
    if policy is not None:
        granted |= policy.permissions_for(roles)
        roles = policy.expand_roles(roles)
    return Principal(
        subject=claims["sub"],
        roles=roles,
        permissions=granted,
        scopes=scopes,
        tenant=tenant,
        token_id=claims["jti"],
        family=family,
        expires_at=int(claims["exp"]),
        claims=claims,
    )


@dataclass(frozen=True)
class TokenPair:
    """An access token and the refresh token that renews it (an OAuth 2 token response)."""

    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds the access token lives."""
    refresh_expires_in: int
    """Seconds the refresh token lives."""
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret

    def to_response(self) -> dict[str, Any]:
        """Return the RFC 6749 section 5.1 token response body."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


_REASONS: list[tuple[type[jwt.PyJWTError], RejectionReason]] = [
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.InvalidAlgorithmError, "algorithm"),
    (jwt.MissingRequiredClaimError, "claims"),
]


def reason_for(exc: jwt.PyJWTError) -> RejectionReason:
    """Return the rejection reason a PyJWT error stands for."""
    for error_class, reason in _REASONS:
        if isinstance(exc, error_class):
            return reason
    # PyJWT raises DecodeError both for unparsable tokens and for non-numeric time claims.
    if isinstance(exc, jwt.DecodeError) and "claim" not in str(exc):
        return "malformed"
    return "malformed" if type(exc) is jwt.InvalidTokenError else "claims"
