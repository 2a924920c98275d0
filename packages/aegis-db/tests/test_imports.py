"""`import aegis.db` loads no SQL dialect, no driver and no web framework."""

from __future__ import annotations

from aegis.testing import modules_loaded_by

# Loaded by create_async_engine for the one database a service uses, never by the import.
DEFERRED = {
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.sqlite",
    "sqlite3",
    "asyncpg",
    "aiosqlite",
    "fastapi",
    "starlette",
}


def test_import_aegis_db_loads_no_dialect_driver_or_web_framework() -> None:
    loaded = modules_loaded_by("import aegis.db")
    assert sorted(loaded & DEFERRED) == []


def test_an_engine_loads_only_its_own_dialect() -> None:
    loaded = modules_loaded_by(
        "import aegis.db\naegis.db.DatabaseManager(aegis.db.DatabaseSettings(url='sqlite://'))"
    )
    assert "sqlalchemy.dialects.sqlite" in loaded
    assert "sqlalchemy.dialects.postgresql" not in loaded
