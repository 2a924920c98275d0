"""examples/schemas describes exactly the tables the services' SQLAlchemy models use.

The tables are made twice on the same kind of database: once by aegis-schema's coordinator from
the registry (as the demo makes them), once by SQLAlchemy from the services' models (a test
helper, never the services' start-up). The two databases, read back through SQLAlchemy's
inspector, must agree column by column: type, nullability, default, keys, unique and plain
indexes. A model change without its registry change (or the other way round) fails here.
"""

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import policy_service.models
import pytest
import sqlalchemy as sa
import user_service.models
from sqlalchemy.ext.asyncio import create_async_engine

from aegis.msg import SqlIdempotencyStore
from aegis.schema import SchemaRegistry
from aegis.testing import create_database, drop_database, unique_name

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
SERVICES = ("users", "policies")
# The same clock under two spellings: aegis-db's models say now(), the registry CURRENT_TIMESTAMP.
SAME_DEFAULTS = {"now()": "CURRENT_TIMESTAMP"}

CreateTables = Callable[[Mapping[str, str]], object]
Shape = dict[str, Any]


def model_tables() -> dict[str, list[sa.Table]]:
    """Every table each service's code reads and writes, as its SQLAlchemy code defines it."""
    engine = create_async_engine("sqlite+aiosqlite://")  # never connected: the store wants one
    processed = SqlIdempotencyStore(engine).table  # what policy-service's app creates
    engine.sync_engine.dispose()
    return {
        "users": list(user_service.models.Base.metadata.sorted_tables),
        "policies": [*policy_service.models.Base.metadata.sorted_tables, processed],
    }


def create_from_models(url: str, tables: list[sa.Table]) -> None:
    """The test helper that builds the models' tables with SQLAlchemy, to compare with."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            for table in tables:
                table.create(connection)
    finally:
        engine.dispose()


def shapes(url: str) -> dict[str, Shape]:
    """Each table of the database at ``url`` as the inspector sees it, in comparable form."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        inspector = sa.inspect(engine)
        return {
            table: shape(inspector, table, engine.dialect) for table in inspector.get_table_names()
        }
    finally:
        engine.dispose()


def shape(inspector: sa.Inspector, table: str, dialect: sa.Dialect) -> Shape:
    """Columns (type, nullability, default), primary key, unique keys, indexes, foreign keys.

    A unique constraint and a unique index are the same key here (SQLAlchemy's ``unique=True``
    makes the one, the registry the other); plain indexes are compared by name.
    """
    indexes = inspector.get_indexes(table)
    unique = {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
    unique |= {tuple(map(str, i["column_names"])) for i in indexes if i["unique"]}
    return {
        "columns": {
            column["name"]: (
                column["type"].compile(dialect=dialect),
                column["nullable"],
                SAME_DEFAULTS.get(str(column["default"]), column["default"]),
            )
            for column in inspector.get_columns(table)
        },
        "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
        "unique": sorted(unique),
        "indexes": {i["name"]: i["column_names"] for i in indexes if not i["unique"]},
        "foreign keys": sorted(
            (tuple(key["constrained_columns"]), key["referred_table"])
            for key in inspector.get_foreign_keys(table)
        ),
    }


def differences(registry: Mapping[str, Shape], models: Mapping[str, Shape]) -> list[str]:
    """What the registry's tables and the models' tables disagree on, one line each."""
    found = [f"{table}: only in the registry" for table in registry.keys() - models.keys()]
    found += [f"{table}: only in the models" for table in models.keys() - registry.keys()]
    for table in sorted(registry.keys() & models.keys()):
        ours, theirs = registry[table], models[table]
        for aspect in ("primary key", "unique", "indexes", "foreign keys"):
            if ours[aspect] != theirs[aspect]:
                found.append(f"{table} {aspect}: registry {ours[aspect]} != {theirs[aspect]}")
        for name in sorted(ours["columns"].keys() | theirs["columns"].keys()):
            mine, yours = ours["columns"].get(name), theirs["columns"].get(name)
            if mine != yours:
                found.append(f"{table}.{name} (type, null, default): registry {mine} != {yours}")
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of one kind: one for the registry's tables, one for the models'."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}", f"sqlite:///{tmp_path / 'models.db'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    name = unique_name("example_models")
    models = create_database(server, name)
    yield request.getfixturevalue("postgres_database"), models
    drop_database(server, name)


def test_every_table_a_service_uses_is_in_the_registry_under_that_service() -> None:
    registry = SchemaRegistry.load(SCHEMAS)
    assert registry.validate() == []
    for service, tables in model_tables().items():
        assert sorted(t.name for t in tables) == sorted(s.table for s in registry.tables(service))


def test_the_coordinator_makes_the_tables_the_models_make(
    databases: tuple[str, str], create_tables: CreateTables
) -> None:
    registry_url, models_url = databases
    create_tables(dict.fromkeys(SERVICES, registry_url))
    create_from_models(models_url, [t for tables in model_tables().values() for t in tables])

    registry, models = shapes(registry_url), shapes(models_url)

    assert differences(registry, models) == []
    assert len(registry) == 5  # users, aegis_outbox; policies, known_users, aegis_msg_processed


def test_a_model_change_without_its_registry_change_is_found(
    tmp_path: Path, create_tables: CreateTables
) -> None:
    registry_url, models_url = f"sqlite:///{tmp_path / 'r.db'}", f"sqlite:///{tmp_path / 'm.db'}"
    create_tables(dict.fromkeys(SERVICES, registry_url))
    metadata = sa.MetaData()
    changed = [t.to_metadata(metadata) for tables in model_tables().values() for t in tables]
    users = metadata.tables["users"]
    users.append_column(sa.Column("nickname", sa.String(40)))
    sa.Index("ix_users_name", users.c.name)
    metadata.tables["policies"].c.premium.type = sa.Numeric(14, 2)
    create_from_models(models_url, changed)

    assert differences(shapes(registry_url), shapes(models_url)) == [
        "policies.premium (type, null, default): "
        "registry ('NUMERIC(12, 2)', False, None) != ('NUMERIC(14, 2)', False, None)",
        "users indexes: registry {'ix_users_created_at': ['created_at'], 'ix_users_deleted_at': "
        "['deleted_at']} != {'ix_users_created_at': ['created_at'], 'ix_users_deleted_at':"
        " ['deleted_at'], 'ix_users_name': ['name']}",
        "users.nickname (type, null, default): registry None != ('VARCHAR(40)', True, None)",
    ]
