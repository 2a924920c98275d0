"""Database settings: URLs (secret, since they may hold a password) and pool options."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def async_url(url: str | SecretStr) -> URL:
    """Parse a database URL and pick the async driver for a bare scheme.

    ``postgresql://`` (and ``postgres://``) become ``postgresql+asyncpg://``, ``sqlite://``
    becomes ``sqlite+aiosqlite://``; an explicit driver is kept. Query parameters stay, so
    ``postgresql://postgres@/db?host=/run/pg`` still reaches a unix socket.

    Raises:
        ValueError: the text is not a database URL.

    Example:
        >>> async_url("postgresql://app@db/main").drivername
        'postgresql+asyncpg'
    """
    text = url.get_secret_value() if isinstance(url, SecretStr) else url
    try:
        parsed = make_url(text)
    except ArgumentError:
        # The parse error would echo the URL, password included.
        raise ValueError("not a database URL (expected e.g. postgresql://user@host/db)") from None
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


class DatabaseSettings(BaseModel):
    """How to reach the database and size the connection pool.

    URLs are :class:`~pydantic.SecretStr` because they may carry a password; ``repr`` and logs
    show ``**********``. Bare ``postgresql://`` and ``sqlite://`` URLs use asyncpg and aiosqlite.

    Example:
        >>> DatabaseSettings(url="postgresql://app:pw@db/main", pool_size=10)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: SecretStr
    """Primary database URL: every write, and every read inside a write transaction."""
    read_replica_urls: tuple[SecretStr, ...] = ()
    """Replicas for ``session(read_only=True)``, used in turn; empty: reads go to the primary.

    On PostgreSQL a read waits for the replica to replay the writes its scope committed
    (read-your-writes, see ``DatabaseManager.read_your_writes``), and a replica that is down or
    lags beyond ``replica_max_lag_seconds`` leaves the rotation until it is healthy again."""
    replica_wait_timeout: float = Field(default=0.1, ge=0)
    """Seconds a read waits for a replica to replay its scope's last write before it reads on
    the primary instead (0: go to the primary at once)."""
    replica_max_lag_seconds: float = Field(default=10.0, gt=0)
    """A replica further behind the primary than this leaves the rotation until it catches up."""
    replica_check_interval: float = Field(default=1.0, gt=0)
    """Seconds between two checks of every replica's lag and health (a background task that
    starts with the first read-only session)."""
    pool_size: int = Field(default=5, ge=1)
    """Connections kept open per engine."""
    max_overflow: int = Field(default=10, ge=0)
    """Extra connections opened under load beyond ``pool_size``."""
    pool_timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for a free connection before ``DatabaseUnavailableError``."""
    pool_recycle: int = Field(default=1800, ge=-1)
    """Seconds after which a connection is replaced; keep it below the server's idle timeout."""
    pool_pre_ping: bool = True
    """Test each connection at checkout, so one killed while idle is replaced unnoticed."""
    statement_timeout_ms: int | None = Field(default=None, ge=1)
    """PostgreSQL ``statement_timeout`` for every connection (``None``: the server's)."""
    application_name: str | None = Field(default=None, max_length=63)
    """Shown in ``pg_stat_activity`` (PostgreSQL)."""
    connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait when opening a connection."""
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    """How long SQLite waits for a lock before reporting the database busy."""
    sqlite_transaction_mode: Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"] = "DEFERRED"
    """How SQLite transactions begin. With ``IMMEDIATE`` the write lock is taken at ``BEGIN``, so
    transactions that read and then write queue behind each other (up to the busy timeout)
    instead of one failing at once with "database is locked", which SQLite reports without
    waiting when two ``DEFERRED`` transactions would deadlock; choose it for concurrent writers.
    The cost: a ``requires_new`` transaction opened inside another one on the same database
    waits for that one's lock, i.e. out the busy timeout. Readers are never blocked (WAL)."""
    echo: bool = False
    """Log every statement (development only: parameters are logged too)."""

    @field_validator("url", "read_replica_urls")
    @classmethod
    def _parseable(cls, value: Any) -> Any:
        for url in value if isinstance(value, tuple) else (value,):
            async_url(url)
        return value

    def engine_options(self, url: URL) -> dict[str, Any]:
        """Keyword arguments for :func:`sqlalchemy.ext.asyncio.create_async_engine` at ``url``."""
        options: dict[str, Any] = {"echo": self.echo, "pool_pre_ping": self.pool_pre_ping}
        backend = url.get_backend_name()
        memory = backend == "sqlite" and url.database in {None, "", ":memory:"}
        if not memory:
            options.update(
                pool_size=self.pool_size,
                max_overflow=self.max_overflow,
                pool_timeout=self.pool_timeout,
                pool_recycle=self.pool_recycle,
            )
        if url.drivername == "postgresql+asyncpg":
            server_settings: dict[str, str] = {}
            if self.statement_timeout_ms is not None:
                server_settings["statement_timeout"] = str(self.statement_timeout_ms)
            if self.application_name is not None:
                server_settings["application_name"] = self.application_name
            options["connect_args"] = {
                "server_settings": server_settings,
                "timeout": self.connect_timeout,
            }
        elif backend == "sqlite":
            options["connect_args"] = {"timeout": self.sqlite_busy_timeout_ms / 1000}
        return options
