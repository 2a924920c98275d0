"""The public names of aegis.auth: an addition or removal shows up here in review."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import aegis.auth
from aegis.testing import import_error_without


def test_public_names_are_exactly_these() -> None:
    assert aegis.auth.__all__ == [
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
    assert all(hasattr(aegis.auth, name) for name in aegis.auth.__all__)
    assert aegis.auth.__version__ == "0.1.0"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = aegis.auth.nothing


def test_every_public_function_and_class_has_a_docstring() -> None:
    objects = {name: getattr(aegis.auth, name) for name in aegis.auth.__all__}
    undocumented = [
        name
        for name, value in objects.items()
        if (inspect.isfunction(value) or inspect.isclass(value)) and not value.__doc__
    ]
    assert undocumented == []


def test_import_needs_none_of_the_optional_libraries() -> None:
    optional = ["fastapi", "httpx", "redis", "yaml"]
    code = f"import sys, aegis.auth; print([m for m in {optional!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_error_codes_are_the_registered_ones() -> None:
    from aegis.core.errors import ERROR_CODES

    for error in (
        aegis.auth.TokenMissingError(),
        aegis.auth.InvalidTokenError("signature"),
        aegis.auth.TokenExpiredError(),
        aegis.auth.TokenRevokedError("revoked"),
        aegis.auth.InvalidCredentialsError(),
        aegis.auth.PermissionDeniedError("no"),
        aegis.auth.RevocationUnavailableError("stale"),
    ):
        assert ERROR_CODES[error.code].status == error.status
    assert aegis.auth.RevocationUnavailableError("stale").status == 503


@pytest.mark.parametrize(
    ("hidden", "statement", "extra"),
    [
        ("fastapi", "from aegis.auth import CurrentUser", "fastapi"),
        ("fastapi", "from aegis.auth import require_roles", "fastapi"),
        ("httpx", "from aegis.auth import ServiceTokenAuth", "http"),
        ("httpx", "aegis.auth.JWKSClient('https://idp.example/jwks.json')", "http"),
        ("yaml", "aegis.auth.RolePolicy.from_yaml('roles: {}')", "yaml"),
        ("redis", "from aegis.auth import ReplicatedTokenStore", "redis"),
    ],
)
def test_a_name_whose_extra_is_missing_says_which_extra_to_install(
    hidden: str, statement: str, extra: str
) -> None:
    message = import_error_without([hidden], f"import aegis.auth\n{statement}")
    assert message is not None
    assert f"needs {hidden}, which is not installed" in message
    assert message.endswith(f"pip install 'aegis-auth[{extra}]'")
