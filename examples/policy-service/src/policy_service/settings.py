"""The service's one settings class (aegis-config): ``POLICIES_*`` variables, ``.env``, defaults."""

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from aegis.config import AegisSettings
from aegis.db import DatabaseSettings
from aegis.msg import KafkaSettings


class Settings(AegisSettings):
    """Settings of policy-service; every default is the embedded one (SQLite, memory)."""

    model_config = SettingsConfigDict(env_prefix="POLICIES_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8002
    database: DatabaseSettings = DatabaseSettings(
        url=SecretStr("sqlite:///policies.db"), sqlite_transaction_mode="IMMEDIATE"
    )
    kafka: KafkaSettings | None = None
    """Kafka for events (``POLICIES_KAFKA__BOOTSTRAP_SERVERS``); ``None`` is the in-memory
    transport, which reaches only subscribers in this process."""
    consumer_group: str = "policy-service"
    """The Kafka consumer group of the user-event projection."""
    users_url: str = "http://127.0.0.1:8001"
    """user-service: its JWKS, its token route and ``GET /users/{id}``."""
    jwt_issuer: str = "users"
    jwt_audience: str = "aegis"
    client_id: str = "policy-service"
    client_secret: SecretStr = SecretStr("dev-only-policy-service-secret")
    cursor_secret: SecretStr = SecretStr("dev-only-cursor-secret-32-bytes!")
