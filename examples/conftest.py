"""Fixtures shared by the example services' tests: their tables, made as the demo makes them."""

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from aegis.schema import MigrationCoordinator, MigrationRun, SchemaRegistry

SCHEMAS = Path(__file__).resolve().parent / "schemas"
"""The services' schema registry."""

CreateTables = Callable[[Mapping[str, str]], MigrationRun]


@pytest.fixture
def create_tables(tmp_path: Path) -> CreateTables:
    """Create every table of examples/schemas through aegis-schema's coordinator, as the demo does.

    Call it with one database URL per service (``{"users": ..., "policies": ...}``); the run's
    history goes to a SQLite file of the test's own.
    """

    def create(urls: Mapping[str, str]) -> MigrationRun:
        history = f"sqlite:///{tmp_path / 'schema-history.db'}"
        with MigrationCoordinator(SchemaRegistry.load(SCHEMAS), urls, history=history) as schemas:
            return schemas.bootstrap()

    return create
