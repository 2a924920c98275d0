"""The service's one settings class: aegis-service's ``ServiceSettings``, ``POLICIES_*`` names."""

from pathlib import Path
from typing import Any

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from aegis.auth import JWKS_PATH
from aegis.db import DatabaseSettings
from aegis.service import AuthSettings, PagesSettings, ServiceSettings

USERS_URL = "http://127.0.0.1:8001"
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
"""examples/schemas: the schema registry that declares this service's tables (as ``policies``)."""


class Settings(ServiceSettings):
    """Settings of policy-service; every default is the embedded one (SQLite, memory).

    Any secret may be written ``enc:v1:...`` (aegis-config, key ring in ``AEGIS_MASTER_KEY``).
    """

    model_config = SettingsConfigDict(
        env_prefix="POLICIES_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    name: str = "policy-service"
    host: str = "127.0.0.1"
    port: int = 8002
    database: DatabaseSettings = DatabaseSettings(
        url=SecretStr("sqlite:///policies.db"), sqlite_transaction_mode="IMMEDIATE"
    )
    users_url: str = USERS_URL
    """user-service: its JWKS, its token route and ``GET /users/{id}``."""
    auth: AuthSettings = AuthSettings(
        issuer="users", audience="aegis", jwks_url=f"{USERS_URL}{JWKS_PATH}"
    )
    """Tokens are user-service's, verified with its JWKS (``{users_url}/.well-known/jwks.json``
    unless ``POLICIES_AUTH__JWKS_URL`` says otherwise)."""
    pages: PagesSettings | None = PagesSettings(schema_registry=SCHEMAS, schema_service="policies")
    """``/asyncapi`` (the user events it consumes) and ``/schema`` (its tables, ``policies`` in the
    registry, and the users table they reference); ``POLICIES_PAGES__SCHEMA_HISTORY_URL`` adds
    the pending migrations."""
    consumer_group: str = "policy-service"
    """The Kafka consumer group of the user-event projection (``POLICIES_KAFKA__*``: Kafka;
    unset: the in-memory transport, which reaches only publishers in this process)."""
    client_id: str = "policy-service"
    client_secret: SecretStr = SecretStr("dev-only-policy-service-secret")
    cursor_secret: SecretStr = SecretStr("dev-only-cursor-secret-32-bytes!")
    redis_url: SecretStr | None = None
    """The Redis where user-service keeps its revocations (``POLICIES_REDIS_URL``, the same as
    ``USERS_REDIS_URL``): a token revoked there (logout, a reused refresh token) is refused here
    too, checked in memory (``auth.revocation_redis_url``). ``None``: no revocation check, a
    revoked token works here until it expires (a store in memory cannot be shared between
    processes)."""

    @model_validator(mode="before")
    @classmethod
    def _auth_defaults(cls, data: Any) -> Any:
        """Fill what ``POLICIES_AUTH__*`` leaves out from user-service's URL and ``redis_url``."""
        if not isinstance(data, dict):
            return data
        given = data.get("auth") or {}
        if isinstance(given, AuthSettings):
            given = given.model_dump(exclude_unset=True)
        users_url = str(data.get("users_url", USERS_URL)).rstrip("/")
        auth = {"issuer": "users", "audience": "aegis", "jwks_url": f"{users_url}{JWKS_PATH}"}
        if data.get("redis_url"):  # user-service's revocations (prefix "users:", the issuer's)
            auth["revocation_redis_url"] = data["redis_url"]
        return {**data, "auth": auth | given}
