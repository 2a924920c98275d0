"""`import aegis.auth` stays lean: only the errors (which register their codes) load with it."""

from __future__ import annotations

from aegis.testing import modules_loaded_by

# What each deferred module would cost every `import aegis.auth` (benchmarks/import_time.py).
DEFERRED = {
    "pydantic": "the principal and the token models",
    "aegis.core.models": "the principal and the token models",
    "aegis.auth._tokens": "the token service, with PyJWT and cryptography",
    "aegis.auth._asgi": "the middleware, with Starlette",
    "argon2": "password hashing",
}


def test_import_aegis_auth_loads_only_its_errors() -> None:
    loaded = modules_loaded_by("import aegis.auth")
    assert sorted(loaded & DEFERRED.keys()) == []
    assert "aegis.auth._errors" in loaded  # the AUTH_* codes are registered at import


def test_a_name_loads_its_module_when_first_read() -> None:
    loaded = modules_loaded_by("from aegis.auth import PasswordService")
    assert {"aegis.auth._passwords", "argon2"} <= loaded
    assert "aegis.auth._asgi" not in loaded
