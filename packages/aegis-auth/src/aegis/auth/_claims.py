"""What tokens carry: claim rules, token pairs, and verified claims turned into a Principal."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jwt

from aegis.auth._errors import InvalidTokenError, RejectionReason, TokenExpiredError
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

TIME_CLAIMS = ("iat", "nbf", "exp")
"""The NumericDate claims (RFC 7519 section 2): checked here, not by PyJWT, which takes ``"1"``."""

# NumericDate values a float holds exactly; beyond them (or NaN, infinity) arithmetic with the
# leeway overflows or lies, and no real token needs them.
_MAX_NUMERIC_DATE = 2**53


def text_collection(value: Iterable[str], parameter: str) -> Iterable[str]:
    """Return ``value``, refusing a string or bytes where a collection of strings is expected.

    ``roles="admin"`` iterates as ``a, d, m, i, n``; that mistake must fail loudly, not grant
    or require five one-letter roles.

    Raises:
        TypeError: ``value`` is ``str``, ``bytes``, ``bytearray`` or ``memoryview``.
    """
    if isinstance(value, str | bytes | bytearray | memoryview):
        raise TypeError(
            f"{parameter} must be a collection of strings such as [{str(value)[:40]!r}], "
            f"not a single {type(value).__name__}"
        )
    return value


def is_numeric_date(value: object) -> bool:
    """Whether ``value`` is a JSON number usable as an RFC 7519 NumericDate.

    Strings (``"1700000000"``), booleans, NaN, infinities and values beyond 2**53 are not.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and abs(value) <= _MAX_NUMERIC_DATE


def check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    """Check ``iat``, ``nbf`` and ``exp`` as PyJWT would, but only accept JSON numbers.

    Raises:
        InvalidTokenError: a time claim is not a NumericDate (``claims``), or ``nbf``/``iat``
            lie in the future (``not_yet_valid``).
        TokenExpiredError: ``exp`` has passed.
    """
    for name in TIME_CLAIMS:
        if name in claims and not is_numeric_date(claims[name]):
            raise InvalidTokenError("claims", f"The bearer token's {name} is not a NumericDate.")
    if "exp" in claims and claims["exp"] <= now - leeway:
        raise TokenExpiredError
    for name in ("nbf", "iat"):
        if name in claims and claims[name] > now + leeway:
            raise InvalidTokenError("not_yet_valid")


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
