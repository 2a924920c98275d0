"""The service's one settings class: aegis-service's ``ServiceSettings`` with ``USERS_*`` names."""

import uuid
from pathlib import Path
from typing import Self

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from aegis.cache import CacheSettings
from aegis.db import DatabaseSettings
from aegis.service import AuthSettings, PagesSettings, ServiceSettings

PUBLIC_PATHS = ("POST /users", "/auth/token", "/auth/refresh", "/oauth/token")
"""Sign-up and the token routes need no token; reading users does ("POST /users": one method)."""
SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
"""examples/schemas: the schema registry that declares this service's tables (as ``users``)."""


class Settings(ServiceSettings):
    """Settings of user-service; every default is the embedded one (SQLite, memory).

    Any secret may be written ``enc:v1:...`` (aegis-config, key ring in ``AEGIS_MASTER_KEY``).
    """

    model_config = SettingsConfigDict(
        env_prefix="USERS_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        nested_model_default_partial_update=True,  # USERS_AUTH__SIGNING_KEY keeps the rest
    )

    name: str = "user-service"
    host: str = "127.0.0.1"
    port: int = 8001
    database: DatabaseSettings = DatabaseSettings(
        url=SecretStr("sqlite:///users.db"), sqlite_transaction_mode="IMMEDIATE"
    )
    cache: CacheSettings = CacheSettings(namespace="users")
    auth: AuthSettings = AuthSettings(
        issuer="users",
        audience="aegis",
        # A generated key gets a kid of its own: a verifier that cached the previous
        # process's key under the same kid would refuse every new token.
        key_id=f"users-{uuid.uuid4().hex[:8]}",
        public_paths=PUBLIC_PATHS,
    )
    """Tokens this service issues (``USERS_AUTH__SIGNING_KEY``: a PEM key; unset: one generated
    at start)."""
    redis_url: SecretStr | None = None
    """Redis for token revocation, shared with policy-service (``USERS_REDIS_URL``): logouts and
    reused refresh tokens are written there and announced to every service's in-process replica
    (``auth.revocation_redis_url``, unless ``USERS_AUTH__REVOCATION_REDIS_URL`` says otherwise).
    ``None`` keeps revocations in this process only."""
    pages: PagesSettings | None = PagesSettings(schema_registry=SCHEMAS, schema_service="users")
    """``/asyncapi`` (the user events) and ``/schema`` (its tables, ``users`` in the registry);
    ``USERS_PAGES__SCHEMA_HISTORY_URL``, the migration history, adds the pending migrations."""
    cursor_secret: SecretStr = SecretStr("dev-only-cursor-secret-32-bytes!")
    admin_email: str = "admin@example.com"
    admin_password: SecretStr = SecretStr("Admin-Passw0rd-Demo")
    policy_service_client_id: str = "policy-service"
    policy_service_secret: SecretStr = SecretStr("dev-only-policy-service-secret")
    user_cache_ttl: int = 300

    @model_validator(mode="after")
    def _shared_revocations(self) -> Self:
        """``redis_url`` is the revocation Redis too, unless ``auth`` names one."""
        if self.redis_url is not None and self.auth.revocation_redis_url is None:
            self.auth = self.auth.model_copy(update={"revocation_redis_url": self.redis_url})
        return self
