"""The errors aegis.auth raises: 401s that carry an RFC 6750 challenge, and 403 denials.

Every rejection names a stable ``code`` (the ``AUTH_*`` codes, registered in
:data:`aegis.core.errors.ERROR_CODES` when aegis.auth is imported) and a short ``reason`` a client
may switch on; what would help an attacker (library messages, expected issuer or audience values,
the token itself) never goes into the answer, only into the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from aegis.core.errors import (
    ExternalServiceError,
    ForbiddenError,
    UnauthorizedError,
    register_error_code,
)

register_error_code("AUTH_CREDENTIALS_INVALID", 401, "Invalid credentials")
register_error_code("AUTH_TOKEN_MISSING", 401, "Authentication required")
register_error_code("AUTH_TOKEN_INVALID", 401, "Invalid token")
register_error_code("AUTH_TOKEN_EXPIRED", 401, "Token expired")
register_error_code("AUTH_TOKEN_REVOKED", 401, "Token revoked")
register_error_code("AUTH_PERMISSION_DENIED", 403, "Permission denied")
register_error_code("AUTH_REVOCATION_UNAVAILABLE", 503, "Revocation status unavailable")

RejectionReason = Literal[
    "missing",
    "malformed",
    "too_large",
    "algorithm",
    "unknown_key",
    "signature",
    "claims",
    "token_type",
    "issuer",
    "audience",
    "not_yet_valid",
    "expired",
    "revoked",
    "reused",
    "credentials",
]
"""Why a token or credential was refused; sent as the problem's ``reason`` member."""

_MESSAGES: dict[str, str] = {
    "missing": "This resource needs a bearer token.",
    "malformed": "The bearer token is not a well-formed JWT.",
    "too_large": "The bearer token is too large.",
    "algorithm": "The bearer token is signed with an algorithm this service does not accept.",
    "unknown_key": "The bearer token is signed with a key this service does not know.",
    "signature": "The bearer token's signature does not verify.",
    "claims": "The bearer token's claims are missing or malformed.",
    "token_type": "The token is not of the type this operation needs.",
    "issuer": "The bearer token was issued by an issuer this service does not trust.",
    "audience": "The bearer token is not meant for this service.",
    "not_yet_valid": "The bearer token is not valid yet.",
    "expired": "The bearer token has expired.",
    "revoked": "The token has been revoked.",
    "reused": "The refresh token was already used; its whole token family is now revoked.",
    "credentials": "The credentials are not valid.",
}


def _quoted(value: str) -> str:
    # RFC 6750 section 3: auth-param values are quoted strings; keep them to safe characters.
    return '"' + "".join(c for c in value if c.isprintable() and c not in '"\\') + '"'


class AuthenticationError(UnauthorizedError):
    """A request could not be authenticated (HTTP 401) — the base of every auth 401.

    ``headers`` carries the RFC 6750 ``WWW-Authenticate: Bearer`` challenge, which
    :func:`aegis.core.web.error_response` and the installed error handlers send.

    Args:
        reason: why, from :data:`RejectionReason`; also the problem's ``reason`` member.
        message: overrides the generic message for the reason (never put secrets in it).
        realm: the ``realm`` of the challenge, when the service names one.
    """

    default_code = "UNAUTHORIZED"
    rfc6750_error: str | None = "invalid_token"

    def __init__(
        self,
        reason: RejectionReason,
        message: str | None = None,
        *,
        realm: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message or _MESSAGES[reason], details={"reason": reason, **(details or {})}
        )
        self.reason: RejectionReason = reason
        self.realm = realm

    @property
    def headers(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` challenge for this error (RFC 6750 section 3)."""
        params = []
        if self.realm:
            params.append(f"realm={_quoted(self.realm)}")
        if self.rfc6750_error is not None:
            params.append(f"error={_quoted(self.rfc6750_error)}")
            params.append(f"error_description={_quoted(self.message)}")
        return {"WWW-Authenticate": "Bearer " + ", ".join(params) if params else "Bearer"}


class TokenMissingError(AuthenticationError):
    """No bearer token came with a request that needs one (``AUTH_TOKEN_MISSING``).

    Per RFC 6750 section 3.1 the challenge carries no ``error`` for a request without
    credentials.
    """

    default_code = "AUTH_TOKEN_MISSING"
    rfc6750_error = None

    def __init__(self, message: str | None = None, *, realm: str | None = None) -> None:
        super().__init__("missing", message, realm=realm)


class InvalidTokenError(AuthenticationError):
    """The token is malformed, forged, foreign or of the wrong kind (``AUTH_TOKEN_INVALID``)."""

    default_code = "AUTH_TOKEN_INVALID"


class TokenExpiredError(AuthenticationError):
    """The token's ``exp`` has passed (``AUTH_TOKEN_EXPIRED``)."""

    default_code = "AUTH_TOKEN_EXPIRED"

    def __init__(self, message: str | None = None, *, realm: str | None = None) -> None:
        super().__init__("expired", message, realm=realm)


class TokenRevokedError(AuthenticationError):
    """The token, or its refresh-token family, has been revoked (``AUTH_TOKEN_REVOKED``)."""

    default_code = "AUTH_TOKEN_REVOKED"


class InvalidCredentialsError(AuthenticationError):
    """A login or client-credentials exchange failed (``AUTH_CREDENTIALS_INVALID``).

    The message is the same whether the account exists or not.
    """

    default_code = "AUTH_CREDENTIALS_INVALID"
    rfc6750_error = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__("credentials", message)


class PermissionDeniedError(ForbiddenError):
    """The caller is authenticated but lacks a role, permission or scope (HTTP 403).

    Code ``AUTH_PERMISSION_DENIED``. A missing scope adds the RFC 6750 ``insufficient_scope``
    challenge naming the scopes needed.

    Args:
        message: what is missing, naming the requirement (never what the caller holds).
        scopes: the scopes the operation needs, when a scope check failed.
    """

    default_code = "AUTH_PERMISSION_DENIED"

    def __init__(self, message: str, *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.scopes = scopes

    @property
    def headers(self) -> dict[str, str]:
        """An ``insufficient_scope`` challenge when scopes were missing, else nothing."""
        if not self.scopes:
            return {}
        return {
            "WWW-Authenticate": 'Bearer error="insufficient_scope", '
            f"scope={_quoted(' '.join(self.scopes))}"
        }


class RevocationUnavailableError(ExternalServiceError):
    """Whether a token is revoked cannot be told now (HTTP 503, ``AUTH_REVOCATION_UNAVAILABLE``).

    Raised by a :class:`~aegis.auth.ReplicatedTokenStore` configured to fail closed when its
    replica of the revocations is stale and Redis does not answer either. The answer carries
    ``Retry-After``; the token may be perfectly good, so it is not a 401.
    """

    default_code = "AUTH_REVOCATION_UNAVAILABLE"

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After: 1``: the replica resynchronises as soon as Redis is back."""
        return {"Retry-After": "1"}
