"""Bound values no database can store are the client's mistake (422 naming the field), not a 500.

sqlite3 raises a bare ``OverflowError`` / ``UnicodeEncodeError`` that SQLAlchemy does not wrap;
asyncpg and psycopg fail differently for the same values. Every driver answers alike here.
"""

# ruff: noqa: PT012 - a transaction block is the unit under test: its errors come from its exit

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import BigInteger, ColumnElement, Numeric, String, Text, func, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.core.errors import DatabaseError, DatabaseUnavailableError, InvalidInputError
from aegis.db import BaseRepository, DatabaseManager, DatabaseSettings, DuplicateError

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    views: Mapped[int] = mapped_column(BigInteger, default=0)


class Pledge(Base):
    __tablename__ = "pledges"
    id: Mapped[int] = mapped_column(primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(40, 0), unique=True)
    memo: Mapped[str] = mapped_column(String(20), default="")


class NoteRepository(BaseRepository[Note]):
    filterable = frozenset({"title", "views"})


@pytest.fixture(params=["sqlite", "asyncpg", "psycopg"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseManager]:
    """Every driver aegis-db supports: the same value fails differently in each."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'notes.db'}"
    else:
        server: str = request.getfixturevalue("postgres_database")
        url = server.replace("postgresql://", f"postgresql+{request.param}://", 1)
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(url)))
    async with manager.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    yield manager
    await manager.dispose()


async def count(db: DatabaseManager) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(Note))).scalar_one()


@pytest.mark.parametrize(
    ("values", "field", "rule"),
    [
        ({"title": "\ud800"}, "title", "unicode"),
        ({"title": "ok", "body": "x" * 100 + "\udfff"}, "body", "unicode"),
        ({"title": "ok", "views": 2**63}, "views", "integer_range"),
        ({"title": "ok", "views": -(2**63) - 1}, "views", "integer_range"),
        # The widest storable integers beside the bad one are not taken for it.
        ({"id": 2**63 - 1, "title": "ok", "views": 2**63}, "views", "integer_range"),
        ({"id": -(2**63), "title": "ok", "views": -(2**63) - 1}, "views", "integer_range"),
    ],
    ids=[
        "surrogate",
        "surrogate-in-long-text",
        "above-int64",
        "below-int64",
        "above-int64-after-the-largest",
        "below-int64-after-the-smallest",
    ],
)
async def test_an_unstorable_value_is_a_422_naming_its_column_and_nothing_is_written(
    db: DatabaseManager, values: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        async with db.transaction() as session:
            await NoteRepository(session).create({"id": 1, **values})
    assert (caught.value.status, caught.value.field, caught.value.errors[0].type) == (
        422,
        field,
        rule,
    )
    assert "\ud800" not in caught.value.message  # the value itself is never echoed
    assert isinstance(caught.value.__cause__, Exception)  # the driver's error stays chained
    assert await count(db) == 0


async def test_an_unstorable_value_in_a_filter_or_raw_statement_is_a_422(
    db: DatabaseManager,
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        async with db.session() as session:
            await NoteRepository(session).list(title="\ud800")
    assert (caught.value.field, caught.value.errors[0].type) == ("title", "unicode")
    with pytest.raises(InvalidInputError) as caught:
        async with db.session() as session:
            await session.execute(select(Note).where(Note.views == 2**64))
    assert (caught.value.field, caught.value.errors[0].type) == ("views", "integer_range")
    with pytest.raises(InvalidInputError) as caught:
        async with db.session() as session:
            await session.execute(text("SELECT :needle"), {"needle": "\udc80"})
    assert (caught.value.field, caught.value.errors[0].type) == ("needle", "unicode")
    with pytest.raises(InvalidInputError) as caught:
        async with db.session() as session:
            await NoteRepository(session).get(2**64)
    assert (caught.value.field, caught.value.errors[0].type) == ("id", "integer_range")
    with pytest.raises(InvalidInputError) as caught:
        async with db.session() as session:
            await NoteRepository(session).list(limit=10, offset=2**64)
    assert (caught.value.field, caught.value.errors[0].type) == ("offset", "integer_range")


async def test_nul_is_refused_on_postgresql_and_kept_on_sqlite(db: DatabaseManager) -> None:
    if db.dialect_name == "postgresql":
        with pytest.raises(InvalidInputError) as caught:
            async with db.transaction() as session:
                await NoteRepository(session).create({"id": 1, "title": "a\x00b"})
        assert (caught.value.field, caught.value.errors[0].type) == ("title", "nul")
        assert await count(db) == 0
        return
    async with db.transaction() as session:
        await NoteRepository(session).create({"id": 1, "title": "a\x00b"})
    async with db.session() as session:
        assert (await NoteRepository(session).get(1)).title == "a\x00b"


async def test_the_widest_storable_values_are_stored(db: DatabaseManager) -> None:
    async with db.transaction() as session:
        notes = NoteRepository(session)
        await notes.create({"id": 1, "title": "\U0010ffff\u202e", "views": 2**63 - 1})
        await notes.create({"id": 2, "title": "low", "views": -(2**63)})
    async with db.session() as session:
        stored = await NoteRepository(session).get(1)
        assert (stored.title, stored.views) == ("\U0010ffff\u202e", 2**63 - 1)


async def test_errors_of_the_application_itself_are_not_taken_for_bad_input(
    db: DatabaseManager,
) -> None:
    """Only a failed statement with such a bound value is translated, never the block's code."""
    with pytest.raises(OverflowError):
        async with db.transaction() as session:
            await NoteRepository(session).create({"id": 1, "title": "ok", "views": 2**63 - 1})
            raise OverflowError("the application's own arithmetic")
    with pytest.raises(UnicodeEncodeError):
        async with db.transaction() as session:
            "\ud800".encode()
    assert await count(db) == 0


@pytest.mark.parametrize(
    ("driver", "value"),
    # Values each driver sends to the server unchecked: only the server could refuse them.
    [("asyncpg", "a\x00b"), ("psycopg", 2**63)],
)
async def test_a_lost_connection_is_not_taken_for_bad_input(
    postgres_database: str, driver: str, value: object
) -> None:
    """A statement that failed because the server went away stays DatabaseUnavailableError."""
    url = postgres_database.replace("postgresql://", f"postgresql+{driver}://", 1)
    db = DatabaseManager(DatabaseSettings(url=SecretStr(url)))
    try:
        with pytest.raises(DatabaseUnavailableError):
            async with db.session() as session:
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                async with db.transaction(propagation="requires_new") as other:
                    await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await session.execute(text("SELECT :value"), {"value": value})
    finally:
        await db.dispose()


async def test_an_integer_beyond_64_bits_in_a_numeric_column_is_stored_and_can_be_a_duplicate(
    db: DatabaseManager,
) -> None:
    """A NUMERIC column takes any integer: when the statement fails for another reason (a
    duplicate), the wide integer it carries is not taken for the cause."""
    async with db.transaction() as session:
        await session.execute(insert(Pledge).values(id=1, amount=2**64))
    with pytest.raises(DuplicateError) as caught:
        async with db.transaction() as session:
            await session.execute(insert(Pledge).values(id=2, amount=2**64))
    assert caught.value.status == 409
    assert caught.value.details["fields"] == ["amount"]


@pytest.mark.parametrize("db", ["asyncpg", "psycopg"], indirect=True)  # SQLite keeps long text
async def test_text_too_long_beside_an_integer_beyond_64_bits_is_reported_as_the_text(
    db: DatabaseManager,
) -> None:
    """PostgreSQL refuses the text (SQLSTATE 22001); the wide integer it took is not blamed."""
    with pytest.raises(InvalidInputError) as caught:
        async with db.transaction() as session:
            await session.execute(insert(Pledge).values(id=1, amount=2**64, memo="x" * 21))
    assert caught.value.errors[0].type == "data"
    assert "SQLSTATE 22001" in caught.value.message


@pytest.mark.parametrize("db", ["sqlite", "asyncpg"], indirect=True)  # positional parameters
@pytest.mark.parametrize(
    ("where", "named"),
    [
        (Note.id.in_([1, 2**64]), "id"),
        # The empty list binds no value: the views value comes first among the bound ones.
        (Note.id.in_([]) & (Note.views == 2**64), "views"),
    ],
    ids=["in-list", "after-an-empty-in-list"],
)
async def test_an_unstorable_value_beside_an_in_list_is_never_put_on_another_column(
    db: DatabaseManager, where: ColumnElement[bool], named: str
) -> None:
    """An IN list binds as many values as it has items, so a driver's positional values no
    longer line up with the statement's parameter names: the error then says ``value``."""
    with pytest.raises(InvalidInputError) as caught:
        async with db.session() as session:
            await session.execute(select(Note).where(where))
    assert caught.value.errors[0].type == "integer_range"
    assert caught.value.field in {named, "value"}


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("value", [2**64, "\ud800"], ids=["above-int64", "surrogate"])
async def test_a_statement_refused_before_its_values_are_bound_is_not_blamed_on_them(
    db: DatabaseManager, value: object
) -> None:
    """SQLite prepares a statement before binding its values: a missing table fails first
    (an OperationalError without a SQLSTATE), and the unstorable value is never looked at."""
    with pytest.raises(DatabaseError) as caught:
        async with db.session() as session:
            await session.execute(text("INSERT INTO no_such_table VALUES (:v)"), {"v": value})
    assert type(caught.value) is DatabaseError
    assert "SQLite code 1)" in caught.value.message
