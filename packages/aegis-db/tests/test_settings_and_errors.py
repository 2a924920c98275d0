"""Settings, URL handling and the error translation that needs no particular table."""

# ruff: noqa: PT012 - a transaction block is the unit under test: its errors come from its exit

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.core.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from aegis.db import (
    BaseRepository,
    DatabaseManager,
    DatabaseSettings,
    RetryPolicy,
    UTCDateTime,
    async_url,
    is_transient,
    sqlstate_of,
    translate_error,
    translating_errors,
    utcnow,
)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://app@db/main", "postgresql+asyncpg"),
        ("postgres://app@db/main", "postgresql+asyncpg"),
        ("postgresql+psycopg://app@db/main", "postgresql+psycopg"),
        ("sqlite:///data.db", "sqlite+aiosqlite"),
        ("sqlite://", "sqlite+aiosqlite"),
    ],
)
def test_bare_schemes_get_the_async_driver(url: str, driver: str) -> None:
    assert async_url(url).drivername == driver


def test_unix_socket_query_parameters_are_kept() -> None:
    url = async_url(SecretStr("postgresql://postgres@/postgres?host=/run/pg-data"))
    assert url.query == {"host": "/run/pg-data"}
    assert url.render_as_string(hide_password=False).startswith("postgresql+asyncpg://")


def test_settings_never_show_the_password() -> None:
    settings = DatabaseSettings(url=SecretStr("postgresql://app:s3cret@db/main"))
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())
    with pytest.raises(ValidationError) as caught:
        DatabaseSettings(url=SecretStr("not a url with s3cret"))
    assert "s3cret" not in str(caught.value).replace("input_value='not a url with s3cret'", "")


def test_engine_options_carry_pool_and_server_settings() -> None:
    settings = DatabaseSettings(
        url=SecretStr("postgresql://app@db/main"),
        pool_size=7,
        statement_timeout_ms=1500,
        application_name="orders",
    )
    options = settings.engine_options(async_url(settings.url))
    assert options["pool_size"] == 7
    assert options["connect_args"]["server_settings"] == {
        "statement_timeout": "1500",
        "application_name": "orders",
    }
    memory = settings.engine_options(async_url("sqlite://"))
    assert "pool_size" not in memory


@pytest.mark.anyio
async def test_in_memory_sqlite_works_with_savepoints() -> None:
    db = DatabaseManager(DatabaseSettings(url=SecretStr("sqlite://")))
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(RuntimeError):
                async with db.transaction():
                    await session.execute(text("INSERT INTO t VALUES (2)"))
                    raise RuntimeError("undo the inner insert")
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
    finally:
        await db.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(database_url)))
    yield manager
    await manager.dispose()


@pytest.mark.anyio
async def test_bad_values_are_validation_errors(db: DatabaseManager) -> None:
    with pytest.raises(InvalidInputError) as caught:
        async with db.session() as session:
            await session.execute(text("CREATE TEMP TABLE m (id INTEGER PRIMARY KEY)"))
            await session.execute(text("INSERT INTO m VALUES ('x')"))
    assert caught.value.errors[0].type == "data"
    assert isinstance(caught.value.__cause__, sa_exc.DBAPIError)
    if db.dialect_name == "postgresql":
        assert sqlstate_of(caught.value.__cause__) == "22P02"


def test_only_database_errors_are_translated() -> None:
    assert translate_error(ValueError("x")) is None
    assert translate_error(NotFoundError("x")) is None
    assert isinstance(translate_error(sa_exc.TimeoutError()), DatabaseUnavailableError)
    assert not is_transient(ValueError("x"))
    assert sqlstate_of(ValueError("x")) is None
    with pytest.raises(KeyError), translating_errors():
        raise KeyError("not a database error")


def test_retry_policy_backs_off_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(retries=5, base_delay=0.1, max_delay=0.3)
    assert 0.05 <= policy.delay(1) <= 0.1
    assert 0.1 <= policy.delay(2) <= 0.2
    assert 0.15 <= policy.delay(5) <= 0.3
    with pytest.raises(ValueError, match="max_delay"):
        RetryPolicy(base_delay=1, max_delay=0.5)


@pytest.mark.anyio
async def test_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    db = DatabaseManager(DatabaseSettings(url=SecretStr(f"sqlite:///{tmp_path / 'main.db'}")))
    try:
        with pytest.raises(DatabaseUnavailableError):
            async with db.session() as session:
                await session.execute(text("ATTACH DATABASE '/no/such/directory/x.db' AS other"))
    finally:
        await db.dispose()


def test_utc_timestamps_refuse_naive_datetimes_and_compile_for_other_dialects() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), sqlite.dialect())
    assert str(utcnow().compile()) == "CURRENT_TIMESTAMP"
    assert (
        str(
            utcnow().compile(
                dialect=DatabaseManager(
                    DatabaseSettings(url=SecretStr("postgresql://a@b/c"))
                ).engine.dialect
            )
        )
        == "now()"
    )


@pytest.mark.anyio
async def test_repository_refuses_composite_primary_keys() -> None:
    class Base(DeclarativeBase):
        pass

    class Pair(Base):
        __tablename__ = "pairs"
        left: Mapped[int] = mapped_column(primary_key=True)
        right: Mapped[int] = mapped_column(primary_key=True)

    class PairRepository(BaseRepository[Pair]):
        pass

    db = DatabaseManager(DatabaseSettings(url=SecretStr("sqlite://")))
    try:
        async with db.session() as session:
            with pytest.raises(ConfigurationError, match="one primary key"):
                PairRepository(session)
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("url", "driver", "install"),
    [
        ("postgresql://app:pw@db/main", "asyncpg", "pip install 'aegis-db[postgres]'"),
        ("postgresql+asyncpg://app:pw@db/main", "asyncpg", "pip install 'aegis-db[postgres]'"),
        ("sqlite:///app.db", "aiosqlite", "pip install 'aegis-db[sqlite]'"),
        ("postgresql+psycopg://app:pw@db/main", "psycopg", "pip install 'psycopg[binary]'"),
    ],
)
def test_a_missing_driver_is_a_configuration_error_naming_what_to_install(
    url: str, driver: str, install: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import driver` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, driver, None)
    with pytest.raises(ConfigurationError) as caught:
        DatabaseManager(DatabaseSettings(url=SecretStr(url)))
    assert str(caught.value).endswith(
        f"needs the {driver} driver, which is not installed: {install}"
    )
    assert "pw" not in str(caught.value)
    assert caught.value.details == {"setting": "url", "driver": driver}
    assert isinstance(caught.value.__cause__, ImportError)
