"""Filters and sort orders from client field names (_query.py), run on PostgreSQL.

Each filter is checked by the rows PostgreSQL returns for it, so a condition that is too wide
(every row) or too narrow (none) fails, and each refusal by its rule and field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from sqlalchemy import ForeignKey, String, inspect, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from aegis.core.errors import InvalidInputError
from aegis.core.models import SortDirection, SortField
from aegis.db import DatabaseManager, DatabaseSettings, Filter
from aegis.db._query import (
    build_order,
    build_where,
    filters_from_kwargs,
    filters_from_object,
    order_clauses,
    parse_sort,
)

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "query_shelves"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(20))
    books: Mapped[list[Book]] = relationship(back_populates="shelf")


class Book(Base):
    __tablename__ = "query_books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    pages: Mapped[int]
    note: Mapped[str | None] = mapped_column(String(50))
    shelf_id: Mapped[int | None] = mapped_column(ForeignKey("query_shelves.id"))
    shelf: Mapped[Shelf | None] = relationship(back_populates="books")


BOOKS: Mapper[Any] = inspect(Book)
SHELVES: Mapper[Any] = inspect(Shelf)
ROWS = [  # id, title, pages, note, shelf
    (1, "Alpha", 100, None, 1),
    (2, "beta", 200, "50% off", 1),
    (3, "Gamma", 300, "5_0", 2),
    (4, "delta", 300, None, None),
]


@pytest.fixture
async def db(postgres_database: str) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(postgres_database)))
    async with manager.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    async with manager.transaction() as session:
        session.add_all([Shelf(id=1, label="left"), Shelf(id=2, label="right")])
        await session.flush()
        session.add_all(Book(id=i, title=t, pages=p, note=n, shelf_id=s) for i, t, p, n, s in ROWS)
    yield manager
    await manager.dispose()


async def book_ids(
    db: DatabaseManager, filters: Iterable[Filter], allowed: frozenset[str] | None = None
) -> list[int]:
    where = build_where(BOOKS, list(filters), allowed)
    async with db.session() as session:
        return list(await session.scalars(select(Book.id).where(where).order_by(Book.id)))


def refusal(filters: list[Filter], mapper: Mapper[Any] = BOOKS, **options: Any) -> tuple[str, str]:
    with pytest.raises(InvalidInputError) as raised:
        build_where(mapper, filters, options.get("allowed"))
    error = raised.value.errors[0]
    return error.type, error.field


class TestReadingFilters:
    """Keyword and typed filters become Filter values."""

    def test_keywords_split_on_the_last_double_underscore_operator(self) -> None:
        assert filters_from_kwargs(
            {"pages": 1, "pages__ge": 2, "shelf__label__ilike": "l%", "pages__between": 3}
        ) == [
            Filter("pages", "eq", 1),
            Filter("pages", "ge", 2),
            Filter("shelf.label", "ilike", "l%"),
            Filter("pages.between", "eq", 3),  # not an operator: part of the path
        ]

    def test_a_field_named_like_an_operator_is_a_field(self) -> None:
        assert filters_from_kwargs({"in": 1, "is_null": True}) == [
            Filter("in", "eq", 1),
            Filter("is_null", "eq", True),
        ]

    def test_typed_objects_give_their_set_fields_only(self) -> None:
        class BookFilter(BaseModel):
            title__startswith: str | None = None
            pages__ge: int | None = None

        assert filters_from_object(None) == []
        assert filters_from_object(BookFilter(pages__ge=5)) == [Filter("pages", "ge", 5)]
        one = Filter("title")
        assert filters_from_object(iter([one])) == [one]


class TestFiltersOnPostgres:
    """The rows PostgreSQL returns for each operator."""

    async def test_no_filter_matches_every_row_and_several_are_and_ed(
        self, db: DatabaseManager
    ) -> None:
        assert await book_ids(db, []) == [1, 2, 3, 4]
        assert await book_ids(db, [Filter("pages", "eq", 300)]) == [3, 4]
        assert await book_ids(db, [Filter("pages", "eq", 300), Filter("title", "eq", "delta")]) == [
            4
        ]
        three = [Filter("pages", "ge", 100), Filter("pages", "le", 300), Filter("id", "ne", 2)]
        assert await book_ids(db, three) == [1, 3, 4]

    @pytest.mark.parametrize(
        ("op", "value", "expected"),
        [
            ("eq", 200, [2]),
            ("ne", 200, [1, 3, 4]),
            ("lt", 200, [1]),
            ("le", 200, [1, 2]),
            ("gt", 200, [3, 4]),
            ("ge", 200, [2, 3, 4]),
            ("in", [100, 300], [1, 3, 4]),
            ("in", (p for p in [200]), [2]),  # any iterable, read once
            ("not_in", [100, 300], [2]),
            ("in", [], []),
        ],
    )
    async def test_comparisons(
        self, db: DatabaseManager, op: str, value: Any, expected: list[int]
    ) -> None:
        assert await book_ids(db, [Filter("pages", op, value)]) == expected

    @pytest.mark.parametrize(
        ("op", "value", "expected"),
        [
            ("like", "%ta", [2, 4]),
            ("like", "a%", []),  # like is case-sensitive
            ("ilike", "a%", [1]),
            ("contains", "ET", []),
            ("icontains", "ET", [2]),
            ("startswith", "G", [3]),
            ("startswith", "g", []),
        ],
    )
    async def test_text_operators(
        self, db: DatabaseManager, op: str, value: str, expected: list[int]
    ) -> None:
        assert await book_ids(db, [Filter("title", op, value)]) == expected

    async def test_contains_and_startswith_take_wildcards_literally(
        self, db: DatabaseManager
    ) -> None:
        """A client searching for "50%" must not get every row with "50" in it."""
        assert await book_ids(db, [Filter("note", "contains", "0%")]) == [2]
        assert await book_ids(db, [Filter("note", "icontains", "5_")]) == [3]
        assert await book_ids(db, [Filter("note", "startswith", "5_")]) == [3]
        assert await book_ids(db, [Filter("note", "startswith", "5%")]) == []
        assert await book_ids(db, [Filter("note", "like", "5%")]) == [2, 3]  # like: a pattern

    async def test_is_null_true_and_false(self, db: DatabaseManager) -> None:
        assert await book_ids(db, [Filter("note", "is_null", True)]) == [1, 4]
        assert await book_ids(db, [Filter("note", "is_null", False)]) == [2, 3]

    async def test_one_relationship_hop_in_both_directions(self, db: DatabaseManager) -> None:
        assert await book_ids(db, [Filter("shelf.label", "eq", "right")]) == [3]
        where = build_where(SHELVES, [Filter("books.pages", "ge", 300)], None)
        async with db.session() as session:
            assert list(await session.scalars(select(Shelf.id).where(where))) == [2]

    async def test_allowed_fields_are_the_only_ones_filtered_on(self, db: DatabaseManager) -> None:
        allowed = frozenset({"pages", "shelf.label"})
        assert await book_ids(db, [Filter("pages", "lt", 300)], allowed) == [1, 2]
        assert await book_ids(db, [Filter("shelf.label", "eq", "left")], allowed) == [1, 2]
        assert refusal([Filter("title", "eq", "x")], allowed=allowed) == (
            "field_not_allowed",
            "title",
        )


class TestRefusedFilters:
    """Bad filters raise InvalidInputError naming the field and the rule, before any SQL."""

    @pytest.mark.parametrize(
        ("item", "rule"),
        [
            (Filter("price"), "unknown_field"),
            (Filter("shelf"), "unknown_field"),  # a relationship, not a column
            (Filter("shelf.width"), "unknown_field"),
            (Filter("author.name"), "unknown_field"),
            (Filter("shelf.books.title"), "unknown_field"),
            (Filter("pages", "in", "100"), "type"),
            (Filter("pages", "in", b"100"), "type"),
            (Filter("pages", "in", 100), "type"),
            (Filter("pages", "not_in", "1"), "type"),
            (Filter("pages", "in", list(range(1001))), "max_items"),
            (Filter("pages", "not_in", list(range(1001))), "max_items"),
            (Filter("note", "is_null", "yes"), "type"),
            (Filter("note", "is_null", 1), "type"),
            (Filter("title", "like", 5), "type"),
            (Filter("title", "startswith", None), "type"),
            (Filter("pages", "between", 1), "unknown_operator"),
        ],
    )
    def test_refusals(self, item: Filter, rule: str) -> None:
        assert refusal([item]) == (rule, item.field)

    async def test_up_to_1000_values_in_a_list(self, db: DatabaseManager) -> None:
        assert await book_ids(db, [Filter("pages", "in", list(range(1000)))]) == [1, 2, 3, 4]
        assert await book_ids(db, [Filter("pages", "not_in", list(range(1000)))]) == []

    def test_messages_name_the_field_and_what_would_be_right(self) -> None:
        with pytest.raises(InvalidInputError, match="unknown field 'price'; known fields: id, "):
            build_where(BOOKS, [Filter("price")], None)
        with pytest.raises(InvalidInputError, match="'pages__in' takes at most 1000 values"):
            build_where(BOOKS, [Filter("pages", "in", [0] * 1001)], None)
        with pytest.raises(InvalidInputError, match="cannot filter by 'id'; allowed: a, b"):
            build_where(BOOKS, [Filter("id")], frozenset({"b", "a"}))


class TestSorting:
    """Sort strings, the primary key tie-breaker, allowed fields and reversed pages."""

    def test_sort_text_and_lists(self) -> None:
        desc = SortDirection.DESC
        assert parse_sort(None) == []
        assert parse_sort("") == []
        assert parse_sort(" -pages , +title ,, id") == [
            SortField("pages", desc),
            SortField("title"),
            SortField("id"),
        ]
        assert parse_sort(["- pages", SortField("id", desc), "title"]) == [
            SortField("pages", desc),
            SortField("id", desc),
            SortField("title"),
        ]

    def test_the_primary_key_is_appended_unless_already_named(self) -> None:
        columns, complete = build_order(BOOKS, [SortField("pages")], None)
        assert complete == [SortField("pages"), SortField("id")]
        assert columns == [Book.pages, Book.id]
        columns, complete = build_order(BOOKS, [SortField("id", SortDirection.DESC)], None)
        assert complete == [SortField("id", SortDirection.DESC)]
        assert columns == [Book.id]

    def test_only_allowed_fields_and_the_primary_key_sort(self) -> None:
        allowed = frozenset({"pages"})
        columns, _ = build_order(BOOKS, [SortField("pages"), SortField("id")], allowed)
        assert columns == [Book.pages, Book.id]
        with pytest.raises(InvalidInputError, match="sortable fields: pages") as raised:
            build_order(BOOKS, [SortField("title")], allowed)
        assert raised.value.errors[0].type == "sort_field_not_allowed"
        for name in ("price", "shelf"):
            with pytest.raises(InvalidInputError, match=f"'{name}': not a column") as raised:
                build_order(BOOKS, [SortField(name)], None)
            assert raised.value.errors[0].type == "unknown_field"

    async def test_order_by_and_its_reverse_on_postgres(self, db: DatabaseManager) -> None:
        columns, complete = build_order(BOOKS, parse_sort("-pages"), None)

        async def ordered(*, reverse: bool) -> list[int]:
            clauses = order_clauses(columns, complete, reverse=reverse)
            async with db.session() as session:
                return list(await session.scalars(select(Book.id).order_by(*clauses)))

        assert await ordered(reverse=False) == [3, 4, 2, 1]
        assert await ordered(reverse=True) == [1, 2, 4, 3]

    def test_reverse_is_keyword_only(self) -> None:
        """A bare True in a call would not say what it means: callers write reverse=True."""
        columns, complete = build_order(BOOKS, [], None)
        with pytest.raises(TypeError):
            order_clauses(columns, complete, True)  # type: ignore[call-arg]
