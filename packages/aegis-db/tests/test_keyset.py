"""Keyset pages for every sort shape, their cursors' wire format, and the WHERE they become.

Walking every page forward and then back must give exactly ``list(sort=...)``: no row skipped,
none repeated. Every walk is bounded, so a cursor that stops advancing fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import ColumnElement, Numeric, String, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

from aegis.core.errors import InvalidInputError
from aegis.core.models import SortField
from aegis.core.utils.pagination import decode_cursor, encode_cursor
from aegis.db import BaseRepository, DatabaseManager, DatabaseSettings
from aegis.db._keyset import after, check_not_nullable, decode_keys, encode_keys
from aegis.db._query import build_order, parse_sort

pytestmark = pytest.mark.anyio
SECRET = b"c" * 32
SPEC = "keyset_readings:age,id"
SHAPES = [
    "id",
    "-id",
    "age",
    "-age",
    "-age,-id",
    "age,-name",
    "-age,name",
    "name,age",
    "born",
    "-born,age",
    "at",
    "-at",
    "ref",
    "-ref,age",
    "active",
    "-active,name",
]


class Base(DeclarativeBase):
    pass


class Reading(Base):
    __tablename__ = "keyset_readings"

    id: Mapped[int] = mapped_column(primary_key=True)
    age: Mapped[int]
    name: Mapped[str] = mapped_column(String(20))
    born: Mapped[date]
    at: Mapped[datetime]
    ref: Mapped[uuid.UUID]
    active: Mapped[bool]
    note: Mapped[str | None] = mapped_column(String(20))
    lowered: Mapped[str] = column_property(func.lower(name))


class Priced(Base):
    """Decimal keys (not on SQLite, which stores no decimals): cursor encoding only."""

    __tablename__ = "keyset_priced"

    id: Mapped[int] = mapped_column(primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    flag: Mapped[bool]


class ReadingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int


class ReadingRepository(BaseRepository[Reading]):
    pass


def row(number: int, age: int, name: str) -> dict[str, Any]:
    return {
        "id": number,
        "age": age,
        "name": name,
        "born": date(1990, 1, 1) + timedelta(days=(number * 7) % 5),
        "at": datetime(2026, 1, 1, 12) + timedelta(minutes=(number * 5) % 7),
        "ref": uuid.UUID(int=(number * 2654435761) % 2**128),
        "active": number % 3 == 0,
    }


ROWS = [row(n, age, name) for n, (age, name) in enumerate(
    [(30, "b"), (25, "a"), (30, "a"), (41, "c"), (25, "b"), (19, "a"), (30, "c"), (25, "a"),
     (41, "a"), (19, "b"), (33, "b")],
    start=1,
)]  # fmt: skip


async def create(manager: DatabaseManager, rows: list[dict[str, Any]]) -> None:
    async with manager.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    async with manager.transaction() as session:
        await ReadingRepository(session).create_many(rows, returning=False)


async def walk(manager: DatabaseManager, sort: str, size: int) -> tuple[list[int], list[int]]:
    """Every page forward, then every page back from the last one; ids in listing order."""
    async with manager.session() as session:
        repository = ReadingRepository(session, cursor_secret=SECRET)
        expected = [item.id for item in await repository.list(sort=sort)]
        limit = len(expected) // size + 2  # pages a correct walk needs, and one more
        page = await repository.paginate_keyset(ReadingOut, size=size, sort=sort)
        assert page.prev_cursor is None
        pages = [page]
        while page.next_cursor is not None:
            assert len(pages) < limit, f"{sort}: the cursor stopped advancing"
            page = await repository.paginate_keyset(
                ReadingOut, size=size, sort=sort, cursor=page.next_cursor
            )
            pages.append(page)
        forward = [item.id for each in pages for item in each.items]
        back: list[int] = []
        cursor = pages[-1].prev_cursor
        steps = 0
        while cursor is not None:
            steps += 1
            assert steps < limit, f"{sort}: the cursor back stopped advancing"
            page = await repository.paginate_keyset(ReadingOut, size=size, sort=sort, cursor=cursor)
            assert page.next_cursor is not None
            back = [item.id for item in page.items] + back
            cursor = page.prev_cursor
        back += [item.id for item in pages[-1].items]
        assert forward == expected, sort
        return forward, back


@pytest.fixture
async def manager(database_url: str) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(database_url)))
    await create(manager, ROWS)
    yield manager
    await manager.dispose()


@pytest.mark.parametrize("sort", SHAPES)
async def test_walking_every_page_forward_and_back_gives_the_listing(
    manager: DatabaseManager, sort: str
) -> None:
    forward, back = await walk(manager, sort, size=3)
    assert back == forward
    assert sorted(forward) == list(range(1, len(ROWS) + 1))


async def test_pages_of_one_row_and_a_page_holding_everything(manager: DatabaseManager) -> None:
    one, back = await walk(manager, "age,-name", size=1)
    assert back == one
    everything, _ = await walk(manager, "-age,-id", size=len(ROWS))
    assert everything[:3] == [9, 4, 11]  # age 41 (ids 9 and 4, descending), then 33
    async with manager.session() as session:
        page = await ReadingRepository(session, cursor_secret=SECRET).paginate_keyset(
            ReadingOut, size=len(ROWS), sort="age"
        )
    assert (page.next_cursor, page.prev_cursor) == (None, None)


@settings(max_examples=25)
@given(
    people=st.lists(
        st.tuples(st.integers(18, 22), st.sampled_from(["a", "b", "c"])), min_size=1, max_size=9
    ),
    sort=st.sampled_from(SHAPES),
    size=st.integers(1, 4),
)
def test_any_rows_any_sort_any_page_size_walk_to_the_listing(
    people: list[tuple[int, str]], sort: str, size: int
) -> None:
    rows = [row(number, age, name) for number, (age, name) in enumerate(people, start=1)]

    async def check(path: Path) -> None:
        manager = DatabaseManager(DatabaseSettings(url=SecretStr(f"sqlite:///{path}")))
        try:
            await create(manager, rows)
            forward, back = await walk(manager, sort, size)
        finally:
            await manager.dispose()
        assert back == forward
        assert sorted(forward) == list(range(1, len(rows) + 1))

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(check(Path(folder) / "walk.db"))


def columns_of(model: type[Base], sort: str) -> tuple[list[Any], list[SortField]]:
    return build_order(model.__mapper__, parse_sort(sort), None)


class TestCursor:
    def test_a_cursor_carries_the_spec_the_keys_and_the_direction(self) -> None:
        columns, _ = columns_of(Reading, "born,at,ref,age")
        values = {
            "born": date(2026, 1, 2),
            "at": datetime(2026, 1, 2, 3, 4, 5, 6),
            "ref": uuid.UUID(int=7),
            "age": 30,
            "id": 9,
        }
        spec = "keyset_readings:born,at,ref,age,id"

        class Row:
            pass

        last = Row()
        vars(last).update(values)
        cursor = encode_keys(last, columns, spec, SECRET, backward=True)
        assert decode_cursor(cursor, SECRET) == {
            "s": spec,
            "v": ["2026-01-02", "2026-01-02T03:04:05.000006", str(uuid.UUID(int=7)), 30, 9],
            "b": True,
        }
        keys, backward = decode_keys(cursor, columns, spec, SECRET)
        assert keys == list(values.values())
        assert [type(key) for key in keys] == [date, datetime, uuid.UUID, int, int]
        assert backward is True
        forward = encode_keys(last, columns, spec, SECRET, backward=False)
        assert decode_keys(forward, columns, spec, SECRET)[1] is False

    def test_decimal_and_bool_keys_round_trip(self) -> None:
        columns, _ = columns_of(Priced, "amount,flag")
        cursor = encode_cursor({"s": "p", "v": ["10.50", True, 3]}, SECRET)
        keys, backward = decode_keys(cursor, columns, "p", SECRET)
        assert keys == [Decimal("10.50"), True, 3]
        assert type(keys[0]) is Decimal
        assert backward is False

    @pytest.mark.parametrize(
        "values",
        [
            ["not-a-date", 1],  # ValueError
            [20260102, 1],  # TypeError: a number for a date
            ["2026-01-02", True],  # a bool is no int key
            ["2026-01-02", "1"],
            ["2026-01-02", 1.5],
        ],
    )
    def test_keys_that_do_not_fit_the_columns_are_a_format_error(self, values: list[Any]) -> None:
        columns, _ = columns_of(Reading, "born")
        cursor = encode_cursor({"s": "r", "v": values}, SECRET)
        with pytest.raises(InvalidInputError) as caught:
            decode_keys(cursor, columns, "r", SECRET)
        assert (caught.value.field, caught.value.errors[0].type) == ("cursor", "format")

    @pytest.mark.parametrize(
        "payload",
        [
            {"s": "other", "v": [30, 1]},
            {"v": [30, 1]},
            {"s": SPEC, "v": "30,1"},
            {"s": SPEC, "v": [30]},
            {"s": SPEC, "v": [30, 1, 2]},
            {"s": SPEC},
        ],
    )
    def test_a_cursor_of_another_listing_is_a_sort_mismatch(self, payload: dict[str, Any]) -> None:
        columns, _ = columns_of(Reading, "age")
        with pytest.raises(InvalidInputError) as caught:
            decode_keys(encode_cursor(payload, SECRET), columns, SPEC, SECRET)
        assert (caught.value.field, caught.value.errors[0].type) == ("cursor", "sort_mismatch")
        assert "start from the first page" in caught.value.message

    def test_a_nullable_sort_column_is_refused(self) -> None:
        columns, _ = columns_of(Reading, "note")
        with pytest.raises(InvalidInputError) as caught:
            check_not_nullable(columns)
        assert caught.value.errors[0].type == "nullable_sort_field"
        assert "'note'" in caught.value.message
        check_not_nullable(columns_of(Reading, "age,-born")[0])
        check_not_nullable(columns_of(Reading, "lowered")[0])  # an expression: no NULL flag

    def test_the_direction_is_a_keyword_argument(self) -> None:
        """A bare True among the positional arguments would read as a sort key."""
        columns, complete = columns_of(Reading, "age")
        with pytest.raises(TypeError):
            encode_keys(object(), columns, SPEC, SECRET, True)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            after(columns, complete, [30, 4], True)  # type: ignore[call-arg]


DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def sql(condition: ColumnElement[bool]) -> str:
    return str(condition.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True}))


class TestWhere:
    """One direction: a row-value comparison (an index range scan); mixed: OR of ANDs."""

    def test_one_direction_is_a_row_value_comparison(self) -> None:
        columns, complete = columns_of(Reading, "age")
        where = sql(after(columns, complete, [30, 4], backward=False))
        assert where == "(keyset_readings.age, keyset_readings.id) > (30, 4)"
        back = sql(after(columns, complete, [30, 4], backward=True))
        assert back == "(keyset_readings.age, keyset_readings.id) < (30, 4)"
        columns, complete = columns_of(Reading, "-age,-id")
        assert sql(after(columns, complete, [30, 4], backward=False)).endswith(" < (30, 4)")
        assert sql(after(columns, complete, [30, 4], backward=True)).endswith(" > (30, 4)")

    def test_one_column_compares_alone(self) -> None:
        columns, complete = columns_of(Reading, "-id")
        assert sql(after(columns, complete, [4], backward=False)) == "(keyset_readings.id) < (4)"

    def test_mixed_directions_expand_column_by_column(self) -> None:
        columns, complete = columns_of(Reading, "age,-name")
        where = sql(after(columns, complete, [30, "b", 4], backward=False))
        assert where == (
            "keyset_readings.age > 30"
            " OR keyset_readings.age = 30 AND keyset_readings.name < 'b'"
            " OR keyset_readings.age = 30 AND keyset_readings.name = 'b' AND keyset_readings.id > 4"
        )
        assert sql(after(columns, complete, [30, "b", 4], backward=True)) == (
            "keyset_readings.age < 30"
            " OR keyset_readings.age = 30 AND keyset_readings.name > 'b'"
            " OR keyset_readings.age = 30 AND keyset_readings.name = 'b' AND keyset_readings.id < 4"
        )
