"""Engines as aegis-db makes them: clear driver and connection errors, SQLite set up right.

A missing driver names what to install, a connection the server never answered is marked
transient, and SQLite gets nested transactions and foreign keys.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aegis.core.errors import ConfigurationError
from aegis.db._constraint_fields import remember_tables
from aegis.db._errors import ConnectFailure, unstorable_parameter_error
from aegis.db._settings import DatabaseSettings


def create_engine(url: URL, settings: DatabaseSettings, **overrides: Any) -> AsyncEngine:
    """An async engine for ``url`` with aegis-db's error handling and SQLite set-up.

    ``overrides`` replace options of :meth:`DatabaseSettings.engine_options`.

    Raises:
        ConfigurationError: the URL's driver is not installed (the message says what to
            install).
    """
    try:
        engine = create_async_engine(url, **{**settings.engine_options(url), **overrides})
    except ImportError as exc:
        raise _missing_driver(url, exc) from exc
    event.listen(engine.sync_engine, "do_connect", _connect_or_report)
    event.listen(engine.sync_engine, "handle_error", unstorable_parameter_error)
    event.listen(engine.sync_engine, "handle_error", remember_tables)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, url, settings.sqlite_transaction_mode)
    return engine


def _configure_sqlite(engine: AsyncEngine, url: URL, transaction_mode: str) -> None:
    """Let SQLAlchemy own BEGIN (so SAVEPOINTs nest), enforce foreign keys, use WAL on files."""
    begin = f"BEGIN {transaction_mode}"
    file_database = url.database not in {None, "", ":memory:"}

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # The sqlite3 driver's legacy mode skips BEGIN before SELECT and SAVEPOINT, which
        # breaks savepoints and repeatable reads (SQLAlchemy docs, "sqlite_transactions").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if file_database:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _connect_or_report(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a driver connection; a server that never answered becomes a transient DBAPI error.

    asyncpg raises plain ``OSError`` when it cannot connect, which SQLAlchemy passes through
    unwrapped; as a DBAPI ``OperationalError`` it is recognisably the database's, without
    mistaking the application's own network errors for an unavailable database. That error,
    and a driver error without a SQLSTATE (no host of a multi-host URL is the primary yet),
    carry :class:`ConnectFailure` in their cause chain, so ``run_transaction`` tries again.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        failure = _connect_failure(exc)
        raise dialect.loaded_dbapi.OperationalError(str(failure)) from failure
    except dialect.loaded_dbapi.Error as exc:
        if getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None):
            raise  # the server answered: a wrong password, a missing database
        failure = _connect_failure(exc)
        raise dialect.loaded_dbapi.OperationalError(str(failure)) from failure


def _connect_failure(error: BaseException) -> ConnectFailure:
    failure = ConnectFailure(f"cannot connect to the database: {type(error).__name__}")
    failure.__cause__ = error
    return failure


# How to install each driver a dialect loads: aegis-db's extras where it declares one.
_DRIVER_INSTALLS = {
    "asyncpg": "pip install 'aegis-db[postgres]'",
    "aiosqlite": "pip install 'aegis-db[sqlite]'",
    "psycopg": "pip install 'psycopg[binary]'",
}


def _missing_driver(url: URL, error: ImportError) -> ConfigurationError:
    """The error for a database URL whose driver is not installed, naming what to install."""
    driver = (error.name or "").partition(".")[0] or url.get_driver_name()
    install = _DRIVER_INSTALLS.get(driver, f"pip install {driver}")
    return ConfigurationError(
        f"the database URL ({url.drivername}://) needs the {driver} driver, which is not "
        f"installed: {install}",
        details={"setting": "url", "driver": driver},
    )
