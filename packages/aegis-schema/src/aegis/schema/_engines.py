"""Synchronous SQLAlchemy engines for the coordinator, with transactional DDL on SQLite too."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def database_url(url: str) -> sa.URL:
    """Parse ``url``; a bare ``postgresql://`` (or ``postgres://``) URL uses psycopg 3."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine(url: str) -> sa.Engine:
    """Create an engine whose transactions also cover DDL.

    Python's sqlite3 driver begins a transaction only before DML, so an ``ALTER TABLE`` would
    commit on its own; SQLAlchemy's documented fix lets SQLAlchemy emit ``BEGIN`` itself.
    """
    parsed = database_url(url)
    engine = sa.create_engine(parsed, poolclass=sa.NullPool)
    if parsed.get_backend_name() == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            connection.exec_driver_sql("BEGIN")

    return engine
