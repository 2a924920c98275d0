"""Fixtures for aegis-db's tests: every database test runs on PostgreSQL and on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """SQLAlchemy's asyncio extension runs on asyncio only."""
    return "asyncio"


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A bare ``postgresql://`` URL of this module's fresh database, or a new SQLite file.

    The manager picks asyncpg / aiosqlite for bare schemes; query parameters such as
    ``?host=/socket/dir`` (the embedded server's unix socket) are kept.
    """
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        return url
    return f"sqlite:///{tmp_path / 'test.db'}"
