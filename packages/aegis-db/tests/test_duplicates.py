"""A unique violation names its columns on every driver, whichever scope it happens in.

PostgreSQL reports them only in the message detail (``Key (email)=(...)``, values included),
asyncpg and psycopg each in their own way; an expression index reports none. The error names the
columns and never the value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Index, String, UniqueConstraint, func, insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.db import DatabaseManager, DatabaseSettings, DuplicateError

pytestmark = pytest.mark.anyio

SECRET_VALUE = "kim-7f3a@example.com"


class Base(DeclarativeBase):
    pass


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("tenant", "Handle", name="members_tenant_handle"),
        Index("members_lower_nick", func.lower(mapped_column("nick", String(50))), unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100), unique=True)
    tenant: Mapped[int] = mapped_column(default=1)
    handle: Mapped[str] = mapped_column("Handle", String(50))  # a quoted, mixed-case column
    nick: Mapped[str] = mapped_column(String(50))


@pytest.fixture(params=["sqlite", "asyncpg", "psycopg"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseManager]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'members.db'}"
    else:
        server: str = request.getfixturevalue("postgres_database")
        url = server.replace("postgresql://", f"postgresql+{request.param}://", 1)
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(url)))
    async with manager.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    async with manager.transaction() as session:
        session.add(Member(email=SECRET_VALUE, handle=SECRET_VALUE, nick=SECRET_VALUE))
    yield manager
    await manager.dispose()


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"email": SECRET_VALUE, "handle": "b", "nick": "b"}, ["email"]),
        ({"email": "b@example.com", "handle": SECRET_VALUE, "nick": "b"}, ["tenant", "Handle"]),
        ({"email": "b@example.com", "handle": "b", "nick": SECRET_VALUE.upper()}, ["nick"]),
        ({"id": 1, "email": "b@example.com", "handle": "b", "nick": "b"}, ["id"]),
    ],
    ids=["unique-column", "composite-constraint", "expression-index", "primary-key"],
)
async def test_a_duplicate_names_its_columns_and_never_the_value(
    db: DatabaseManager, values: dict[str, object], fields: list[str]
) -> None:
    with pytest.raises(DuplicateError) as caught:
        async with db.transaction() as session:
            session.add(Member(**values))
    assert caught.value.details["fields"] == fields
    shown = f"{caught.value} {caught.value.details} {caught.value.to_problem()}".lower()
    assert SECRET_VALUE.lower() not in shown


async def test_a_core_insert_names_the_columns_too(db: DatabaseManager) -> None:
    with pytest.raises(DuplicateError) as caught:
        async with db.session() as session:
            await session.execute(
                insert(Member).values(email="c@example.com", handle="c", nick=SECRET_VALUE)
            )
    assert caught.value.details["fields"] == ["nick"]
