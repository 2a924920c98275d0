"""The service's one settings class (aegis-config): ``USERS_*`` variables, ``.env``, defaults."""

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.cache import CacheSettings
from aegis.config import AegisSettings
from aegis.db import DatabaseSettings
from aegis.msg import KafkaSettings


class Settings(AegisSettings):
    """Settings of user-service; every default is the embedded one (SQLite, memory)."""

    model_config = SettingsConfigDict(env_prefix="USERS_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8001
    database: DatabaseSettings = DatabaseSettings(
        url=SecretStr("sqlite:///users.db"), sqlite_transaction_mode="IMMEDIATE"
    )
    cache: CacheSettings = CacheSettings(namespace="users")
    redis_url: SecretStr | None = None
    """Redis for token revocation; ``None`` keeps revocations in this process."""
    kafka: KafkaSettings | None = None
    """Kafka for events (``USERS_KAFKA__BOOTSTRAP_SERVERS``); ``None`` is the in-memory transport,
    which reaches only subscribers in this process."""
    cursor_secret: SecretStr = SecretStr("dev-only-cursor-secret-32-bytes!")
    jwt_issuer: str = "users"
    jwt_audience: str = "aegis"
    admin_email: str = "admin@example.com"
    admin_password: SecretStr = SecretStr("Admin-Passw0rd-Demo")
    policy_service_client_id: str = "policy-service"
    policy_service_secret: SecretStr = SecretStr("dev-only-policy-service-secret")
    user_cache_ttl: int = 300
