"""aegis.auth: JWT access and refresh tokens, JWKS, ASGI authentication, RBAC, service accounts.

Example:
    >>> keys = KeySet([JWTKey.generate("2026-01", "EdDSA")])
    >>> tokens = TokenService(keys, issuer="users", audience="users", store=MemoryTokenStore())
    >>> app = Starlette(routes=[...], middleware=[Middleware(AuthMiddleware, tokens=tokens)])

The FastAPI dependencies (``CurrentUser``, ``current_user``, ``require_roles``,
``require_permissions``, ``require_scopes``) need the ``fastapi`` extra, ``ServiceTokenAuth`` the
``http`` extra, ``RolePolicy.from_yaml`` the ``yaml`` extra, ``RedisTokenStore`` a
``redis.asyncio`` client and ``ReplicatedTokenStore`` the ``redis`` extra; importing
``aegis.auth`` needs none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.auth.__about__ import __version__
from aegis.auth._errors import (
    AuthenticationError,
    InvalidCredentialsError,
    InvalidTokenError,
    PermissionDeniedError,
    RejectionReason,
    RevocationUnavailableError,
    TokenExpiredError,
    TokenMissingError,
    TokenRevokedError,
)
from aegis.core.utils.lazy import lazy_getattr

if TYPE_CHECKING:
    from aegis.auth._asgi import AuthMiddleware
    from aegis.auth._claims import MAX_TOKEN_BYTES, REQUIRED_CLAIMS, TokenPair, TokenType
    from aegis.auth._fastapi import (
        CurrentUser,
        current_user,
        require_permissions,
        require_roles,
        require_scopes,
    )
    from aegis.auth._httpx import ServiceTokenAuth
    from aegis.auth._jwks import JWKS_PATH, JWKSClient, jwks_route
    from aegis.auth._keys import (
        ASYMMETRIC_ALGORITHMS,
        HMAC_ALGORITHMS,
        KID_PATTERN,
        SUPPORTED_ALGORITHMS,
        JWTKey,
        KeySet,
    )
    from aegis.auth._passwords import PasswordCheck, PasswordService
    from aegis.auth._permissions import (
        Match,
        ensure_permissions,
        ensure_roles,
        ensure_scopes,
        permissions_required,
        require_owner,
        roles_required,
        scopes_required,
    )
    from aegis.auth._principal import Principal, current_principal
    from aegis.auth._rbac import RoleDefinition, RolePolicy
    from aegis.auth._redis import RedisTokenStore
    from aegis.auth._replica import ReplicatedTokenStore
    from aegis.auth._service import ServiceAccount, ServiceAccounts
    from aegis.auth._store import MemoryTokenStore, NowaitRevocationCheck, TokenStore
    from aegis.auth._tokens import TokenService

# Every name but the errors (which register their codes) is imported on first use
# (PEP 562), so that `import aegis.auth` costs almost nothing; several modules need an
# optional library besides (benchmarks/import_time.py).
_LAZY = {
    "ASYMMETRIC_ALGORITHMS": "aegis.auth._keys",
    "AuthMiddleware": "aegis.auth._asgi",
    "CurrentUser": "aegis.auth._fastapi",
    "HMAC_ALGORITHMS": "aegis.auth._keys",
    "JWKSClient": "aegis.auth._jwks",
    "JWKS_PATH": "aegis.auth._jwks",
    "JWTKey": "aegis.auth._keys",
    "KID_PATTERN": "aegis.auth._keys",
    "KeySet": "aegis.auth._keys",
    "MAX_TOKEN_BYTES": "aegis.auth._claims",
    "Match": "aegis.auth._permissions",
    "MemoryTokenStore": "aegis.auth._store",
    "NowaitRevocationCheck": "aegis.auth._store",
    "PasswordCheck": "aegis.auth._passwords",
    "PasswordService": "aegis.auth._passwords",
    "Principal": "aegis.auth._principal",
    "REQUIRED_CLAIMS": "aegis.auth._claims",
    "RedisTokenStore": "aegis.auth._redis",
    "ReplicatedTokenStore": "aegis.auth._replica",
    "RoleDefinition": "aegis.auth._rbac",
    "RolePolicy": "aegis.auth._rbac",
    "SUPPORTED_ALGORITHMS": "aegis.auth._keys",
    "ServiceAccount": "aegis.auth._service",
    "ServiceAccounts": "aegis.auth._service",
    "ServiceTokenAuth": "aegis.auth._httpx",
    "TokenPair": "aegis.auth._claims",
    "TokenService": "aegis.auth._tokens",
    "TokenStore": "aegis.auth._store",
    "TokenType": "aegis.auth._claims",
    "current_principal": "aegis.auth._principal",
    "current_user": "aegis.auth._fastapi",
    "ensure_permissions": "aegis.auth._permissions",
    "ensure_roles": "aegis.auth._permissions",
    "ensure_scopes": "aegis.auth._permissions",
    "jwks_route": "aegis.auth._jwks",
    "permissions_required": "aegis.auth._permissions",
    "require_owner": "aegis.auth._permissions",
    "require_permissions": "aegis.auth._fastapi",
    "require_roles": "aegis.auth._fastapi",
    "require_scopes": "aegis.auth._fastapi",
    "roles_required": "aegis.auth._permissions",
    "scopes_required": "aegis.auth._permissions",
}


__getattr__ = lazy_getattr(
    __name__,
    _LAZY,
    extras={
        "fastapi": "aegis-auth[fastapi]",
        "httpx": "aegis-auth[http]",
        "redis": "aegis-auth[redis]",
    },
)


__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "JWKS_PATH",
    "KID_PATTERN",
    "MAX_TOKEN_BYTES",
    "REQUIRED_CLAIMS",
    "SUPPORTED_ALGORITHMS",
    "AuthMiddleware",
    "AuthenticationError",
    "CurrentUser",
    "InvalidCredentialsError",
    "InvalidTokenError",
    "JWKSClient",
    "JWTKey",
    "KeySet",
    "Match",
    "MemoryTokenStore",
    "NowaitRevocationCheck",
    "PasswordCheck",
    "PasswordService",
    "PermissionDeniedError",
    "Principal",
    "RedisTokenStore",
    "RejectionReason",
    "ReplicatedTokenStore",
    "RevocationUnavailableError",
    "RoleDefinition",
    "RolePolicy",
    "ServiceAccount",
    "ServiceAccounts",
    "ServiceTokenAuth",
    "TokenExpiredError",
    "TokenMissingError",
    "TokenPair",
    "TokenRevokedError",
    "TokenService",
    "TokenStore",
    "TokenType",
    "__version__",
    "current_principal",
    "current_user",
    "ensure_permissions",
    "ensure_roles",
    "ensure_scopes",
    "jwks_route",
    "permissions_required",
    "require_owner",
    "require_permissions",
    "require_roles",
    "require_scopes",
    "roles_required",
    "scopes_required",
]
