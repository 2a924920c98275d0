"""BaseRepository on PostgreSQL and SQLite: CRUD, filters, sorting, pages, soft delete, locking."""

# ruff: noqa: PT012 - a transaction block is the unit under test: its errors come from its exit

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from aegis.core.errors import (
    ConfigurationError,
    DatabaseError,
    InvalidInputError,
    NotFoundError,
)
from aegis.core.models import PageParams
from aegis.core.utils.pagination import decode_cursor, encode_cursor
from aegis.db import (
    BaseRepository,
    ConcurrentUpdateError,
    DatabaseManager,
    DatabaseSettings,
    DuplicateError,
    Filter,
    ForeignKeyError,
    SoftDeleteMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    VersionMixin,
)

pytestmark = pytest.mark.anyio

SECRET = b"k" * 32


class Base(DeclarativeBase):
    pass


class Team(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, Base):
    __tablename__ = "teams"
    __table_args__ = (
        Index(
            "uq_teams_name_live",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    name: Mapped[str] = mapped_column(String(50))
    members: Mapped[list[Member]] = relationship(back_populates="team", order_by="Member.name")


class Member(UUIDPrimaryKeyMixin, TimestampMixin, SoftDeleteMixin, VersionMixin, Base):
    __tablename__ = "members"
    __table_args__ = (CheckConstraint("age >= 0", name="ck_members_age"),)

    name: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(100), unique=True)
    age: Mapped[int]
    nickname: Mapped[str | None] = mapped_column(String(50))
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id"))
    team: Mapped[Team | None] = relationship(back_populates="members")


class Counter(Base):
    __tablename__ = "counters"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(20), unique=True)
    quantity: Mapped[int] = mapped_column(default=0)


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    age: int
    version: int


class MemberPatch(BaseModel):
    name: str | None = None
    nickname: str | None = None


class MemberFilter(BaseModel):
    name__startswith: str | None = None
    age__ge: int | None = None


class MemberRepository(BaseRepository[Member]):
    sortable = frozenset({"name", "age", "created_at", "nickname"})


class TeamRepository(BaseRepository[Team]):
    filterable = frozenset({"name", "members.age"})


class CounterRepository(BaseRepository[Counter]):
    pass


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(database_url)))
    async with manager.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    yield manager
    await manager.dispose()


async def _seed(db: DatabaseManager) -> tuple[Team, list[Member]]:
    async with db.transaction() as session:
        team = await TeamRepository(session).create({"name": "core"})
        members = MemberRepository(session)
        created = [
            await members.create(
                {"name": name, "email": f"{name}@x.io", "age": age, "team_id": team.id}
            )
            for name, age in [("ann", 31), ("bob", 25), ("cid", 40), ("dee", 25), ("eve", 19)]
        ]
    return team, created


async def test_create_returns_database_set_values(db: DatabaseManager) -> None:
    async with db.transaction() as session:
        member = await MemberRepository(session).create(
            {"name": "ann", "email": "ann@x.io", "age": 30}
        )
    assert member.id.version == 7
    assert member.version == 1
    assert member.created_at.tzinfo is UTC
    assert member.created_at <= datetime.now(UTC)
    assert member.deleted_at is None


async def test_get_finds_the_row_and_raises_not_found_for_a_missing_id(db: DatabaseManager) -> None:
    _, members = await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session)
        assert (await repository.get(members[0].id)).name == "ann"
        assert await repository.get_or_none(uuid.uuid4()) is None
        with pytest.raises(NotFoundError) as caught:
            await repository.get(uuid.uuid4())
    assert caught.value.details["resource"] == "Member"


async def test_duplicate_value_is_a_conflict_naming_the_field_without_the_value(
    db: DatabaseManager,
) -> None:
    await _seed(db)
    with pytest.raises(DuplicateError) as caught:
        async with db.transaction() as session:
            await MemberRepository(session).create({"name": "x", "email": "ann@x.io", "age": 1})
    error = caught.value
    assert error.code == "DB_DUPLICATE"
    assert error.status == 409
    assert "ann@x.io" not in error.message
    assert "email" in error.message or "members_email_key" in error.message
    assert error.__cause__ is not None


async def test_missing_reference_is_a_foreign_key_error(db: DatabaseManager) -> None:
    with pytest.raises(ForeignKeyError) as caught:
        async with db.transaction() as session:
            await MemberRepository(session).create(
                {"name": "x", "email": "x@x.io", "age": 1, "team_id": uuid.uuid4()}
            )
    assert caught.value.code == "DB_FOREIGN_KEY"


async def test_not_null_and_check_violations_are_validation_errors(db: DatabaseManager) -> None:
    with pytest.raises(InvalidInputError) as not_null:
        async with db.transaction() as session:
            await MemberRepository(session).create({"name": "x", "email": "x@x.io"})
    assert not_null.value.errors[0].type == "not_null"
    assert not_null.value.field == "age"
    with pytest.raises(InvalidInputError) as check:
        async with db.transaction() as session:
            await MemberRepository(session).create({"name": "x", "email": "x@x.io", "age": -1})
    assert check.value.errors[0].type == "check"


async def test_a_failed_create_inside_a_savepoint_leaves_the_transaction_usable(
    db: DatabaseManager,
) -> None:
    await _seed(db)
    async with db.transaction() as session:
        repository = MemberRepository(session)
        with pytest.raises(DuplicateError):
            async with db.transaction():
                await repository.create({"name": "x", "email": "ann@x.io", "age": 1})
        await repository.create({"name": "fay", "email": "fay@x.io", "age": 22})
    async with db.session() as session:
        assert await MemberRepository(session).count() == 6


async def test_update_changes_only_the_given_fields_and_bumps_the_version(
    db: DatabaseManager,
) -> None:
    _, members = await _seed(db)
    ann = members[0]
    async with db.transaction() as session:
        repository = MemberRepository(session)
        await repository.update(ann.id, {"nickname": "a"})
        updated = await repository.update(ann.id, MemberPatch(nickname=None))
    assert updated.nickname is None
    assert updated.name == "ann"
    assert updated.version == 3
    assert updated.updated_at >= ann.updated_at


async def test_update_with_a_stale_version_is_a_conflict(db: DatabaseManager) -> None:
    _, members = await _seed(db)
    async with db.transaction() as session:
        repository = MemberRepository(session)
        await repository.update(members[0].id, {"age": 32}, expected_version=1)
        with pytest.raises(ConcurrentUpdateError) as caught:
            await repository.update(members[0].id, {"age": 33}, expected_version=1)
        with pytest.raises(NotFoundError):
            await repository.update(uuid.uuid4(), {"age": 33}, expected_version=1)
        with pytest.raises(NotFoundError):
            await repository.update(uuid.uuid4(), {"age": 33})
    assert caught.value.code == "DB_CONFLICT"


async def test_update_refuses_unknown_and_database_managed_fields(db: DatabaseManager) -> None:
    _, members = await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session)
        with pytest.raises(InvalidInputError) as unknown:
            await repository.update(members[0].id, {"salary": 1})
        with pytest.raises(InvalidInputError) as managed:
            await repository.update(members[0].id, {"version": 9})
        with pytest.raises(InvalidInputError) as key:
            await repository.update(members[0].id, {"id": uuid.uuid4()})
        with pytest.raises(ConfigurationError):
            await TeamRepository(session).update(members[0].team_id, {}, expected_version=1)
    assert unknown.value.errors[0].type == "unknown_field"
    assert managed.value.errors[0].type == "read_only_field"
    assert key.value.field == "id"


async def test_concurrent_orm_flushes_of_one_row_raise_a_conflict(db: DatabaseManager) -> None:
    _, members = await _seed(db)
    with pytest.raises(ConcurrentUpdateError):
        async with db.session() as first_session:
            first = await MemberRepository(first_session).get(members[0].id)
            async with db.transaction(propagation="requires_new") as second_session:
                second = await MemberRepository(second_session).get(members[0].id)
                second.age = 50
            first.age = 60
    async with db.session() as session:
        assert (await MemberRepository(session).get(members[0].id)).age == 50


async def test_upsert_inserts_then_updates_atomically(db: DatabaseManager) -> None:
    async with db.transaction() as session:
        repository = CounterRepository(session)
        first = await repository.upsert({"sku": "a-1", "quantity": 1}, conflict_on=["sku"])
        second = await repository.upsert({"sku": "a-1", "quantity": 5}, conflict_on=["sku"])
        assert first.id == second.id
        assert second.quantity == 5
        assert await repository.count() == 1


async def test_upsert_respects_soft_deleted_partial_unique_index(db: DatabaseManager) -> None:
    async with db.transaction() as session:
        teams = TeamRepository(session)
        old = await teams.create({"name": "ops"})
        await teams.delete(old.id)
        fresh = await teams.upsert({"name": "ops"}, conflict_on=["name"])
        again = await teams.upsert({"name": "ops"}, conflict_on=["name"])
        assert fresh.id != old.id
        assert again.id == fresh.id
        members = MemberRepository(session)
        member = await members.upsert(
            {"name": "gus", "email": "gus@x.io", "age": 1}, conflict_on=["email"]
        )
        member = await members.upsert(
            {"name": "gus", "email": "gus@x.io", "age": 2},
            conflict_on=["email"],
            update_fields=["age"],
        )
        assert (member.age, member.version) == (2, 2)


async def test_soft_deleted_rows_are_excluded_everywhere(db: DatabaseManager) -> None:
    team, members = await _seed(db)
    bob = members[1]
    async with db.transaction() as session:
        await MemberRepository(session).delete(bob.id)
    async with db.session() as session:
        repository = MemberRepository(session)
        with pytest.raises(NotFoundError):
            await repository.get(bob.id)
        assert (await repository.get(bob.id, include_deleted=True)).deleted_at is not None
        assert await repository.count() == 4
        assert await repository.count(include_deleted=True) == 5
        assert not await repository.exists(name="bob")
        assert await repository.exists(name="bob", include_deleted=True)
        assert "bob" not in [m.name for m in await repository.list()]
        assert len(await repository.list(include_deleted=True)) == 5
        loaded = await TeamRepository(session).get(team.id, options=[selectinload(Team.members)])
        assert [m.name for m in loaded.members] == ["ann", "cid", "dee", "eve"]
        joined = await session.scalars(select(Member.name).join(Member.team).order_by(Member.name))
        assert "bob" not in joined.all()
        assert await repository.count(team__name="core") == 4
        assert await TeamRepository(session).count(members__age__le=25) == 1
        with pytest.raises(NotFoundError):
            await repository.delete(bob.id)
        restored = await repository.restore(bob.id)
        assert restored.deleted_at is None
        assert restored.version == 3
        with pytest.raises(NotFoundError):
            await repository.restore(bob.id)


async def test_relationships_loaded_later_from_a_fetched_row_leave_out_soft_deleted_rows(
    db: DatabaseManager,
) -> None:
    """get() and list() without options still pass the soft-delete filter on to lazy loads."""
    team, members = await _seed(db)
    async with db.transaction() as session:
        await MemberRepository(session).delete(members[1].id)
    async with db.session() as session:
        fetched = await TeamRepository(session).get(team.id)
        lazy = await session.run_sync(lambda _: [m.name for m in fetched.members])
        assert lazy == ["ann", "cid", "dee", "eve"]
    async with db.session() as session:
        (listed,) = await TeamRepository(session).list()
        assert await session.run_sync(lambda _: len(listed.members)) == 4
    async with db.session() as session:
        hidden = await MemberRepository(session).get(members[1].id, include_deleted=True)
        assert await session.run_sync(lambda _: hidden.team and hidden.team.name) == "core"


async def test_pages_of_one_order_bind_each_calls_limit_and_offset(db: DatabaseManager) -> None:
    """Pages without filters reuse one statement per order; each call's own values apply."""
    await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session)

        async def names(**arguments: Any) -> list[str]:
            return [row.name for row in await repository.list(**arguments)]

        assert await names(sort="name", limit=2) == ["ann", "bob"]
        assert await names(sort="name", limit=2, offset=2) == ["cid", "dee"]
        assert await names(sort="name", limit=3, offset=1) == ["bob", "cid", "dee"]
        assert await names(sort="name", offset=3) == ["dee", "eve"]
        assert await names(sort="name", limit=0) == []
        assert await names(sort="-name", limit=2) == ["eve", "dee"]
        assert await names(sort="name") == ["ann", "bob", "cid", "dee", "eve"]
        assert await repository.count() == 5
        assert await repository.count(age=25) == 2


async def test_soft_deleted_parent_hides_from_many_to_one_filters(db: DatabaseManager) -> None:
    team, _ = await _seed(db)
    async with db.transaction() as session:
        await TeamRepository(session).delete(team.id)
        assert await MemberRepository(session).count(team__name="core") == 0
        with pytest.raises(ConfigurationError):
            await CounterRepository(session).restore(1)


async def test_hard_delete_removes_live_and_soft_deleted_rows(db: DatabaseManager) -> None:
    _, members = await _seed(db)
    async with db.transaction() as session:
        repository = MemberRepository(session)
        await repository.delete(members[0].id)
        await repository.delete(members[0].id, hard=True)
        await repository.delete(members[1].id, hard=True)
        assert await repository.count(include_deleted=True) == 3
        with pytest.raises(NotFoundError):
            await repository.delete(members[1].id, hard=True)
        counters = CounterRepository(session)
        counter = await counters.create({"sku": "z"})
        await counters.delete(counter.id)
        assert await counters.get_or_none(counter.id) is None


async def test_keyword_and_typed_filters(db: DatabaseManager) -> None:
    await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session)

        async def names(*filters: Filter, **where: Any) -> list[str]:
            rows = await repository.list(filters=filters, sort="name", **where)
            return [row.name for row in rows]

        assert await names(age=25) == ["bob", "dee"]
        assert await names(age__ne=25) == ["ann", "cid", "eve"]
        assert await names(age__in=[19, 40]) == ["cid", "eve"]
        assert await names(age__not_in=[19, 40, 25]) == ["ann"]
        assert await names(age__gt=25, age__lt=40) == ["ann"]
        assert await names(age__ge=31, age__le=40) == ["ann", "cid"]
        assert await names(name__like="_e%") == ["dee"]
        assert await names(name__ilike="A%") == ["ann"]
        assert await names(email__contains="e@") == ["dee", "eve"]
        assert await names(name__icontains="E") == ["dee", "eve"]
        assert await names(name__startswith="b") == ["bob"]
        assert await names(nickname__is_null=False) == []
        assert await names(Filter("age", "lt", 25)) == ["eve"]
        assert await names(Filter("team.name", "eq", "core"), age=40) == ["cid"]
        filtered = await repository.list(filters=MemberFilter(age__ge=30), sort="name")
        assert [row.name for row in filtered] == ["ann", "cid"]
        assert await repository.count(filters=MemberFilter(name__startswith="%")) == 0


@pytest.mark.parametrize(
    ("where", "rule"),
    [
        ({"salary": 1}, "unknown_field"),
        ({"team__budget": 1}, "unknown_field"),
        ({"boss__name": "x"}, "unknown_field"),
        ({"team__members__name": "x"}, "unknown_field"),
        ({"age__in": "25"}, "type"),
        ({"age__in": list(range(1001))}, "max_items"),
        ({"nickname__is_null": "yes"}, "type"),
        ({"name__ilike": 3}, "type"),
    ],
)
async def test_bad_filters_are_refused_with_the_field_named(
    db: DatabaseManager, where: dict[str, Any], rule: str
) -> None:
    async with db.session() as session:
        with pytest.raises(InvalidInputError) as caught:
            await MemberRepository(session).list(**where)
    assert caught.value.errors[0].type == rule


async def test_unknown_operator_and_disallowed_field_are_refused(db: DatabaseManager) -> None:
    async with db.session() as session:
        with pytest.raises(InvalidInputError) as operator:
            await MemberRepository(session).list(filters=[Filter("age", "between", 1)])
        with pytest.raises(InvalidInputError) as disallowed:
            await TeamRepository(session).list(created_at__gt=datetime.now(UTC))
    assert operator.value.errors[0].type == "unknown_operator"
    assert disallowed.value.errors[0].type == "field_not_allowed"


async def test_sorting_is_multi_column_and_stable(db: DatabaseManager) -> None:
    _, members = await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session)
        rows = await repository.list(sort="age,-name")
        assert [row.name for row in rows] == ["eve", "dee", "bob", "ann", "cid"]
        ties = await repository.list(sort=["age"], age=25)
        assert [row.id for row in ties] == sorted(m.id for m in members if m.age == 25)
        assert [row.name for row in await repository.list(sort="name", limit=2, offset=1)] == [
            "bob",
            "cid",
        ]
        with pytest.raises(InvalidInputError) as disallowed:
            await repository.list(sort="email")
        with pytest.raises(InvalidInputError) as unknown:
            await TeamRepository(session).list(sort="budget")
    assert disallowed.value.errors[0].type == "sort_field_not_allowed"
    assert unknown.value.errors[0].type == "unknown_field"


async def test_offset_pages_report_the_total(db: DatabaseManager) -> None:
    await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session)
        first = await repository.paginate(
            PageParams.model_validate({"page": 1, "size": 2, "sort": "name"}), MemberOut
        )
        last = await repository.paginate(
            PageParams.model_validate({"page": 3, "size": 2, "sort": "name"}), MemberOut
        )
        beyond = await repository.paginate(PageParams(page=9, size=2), MemberOut)
        small = await repository.paginate(PageParams(size=10), MemberOut, age=25)
    assert [item.name for item in first.items] == ["ann", "bob"]
    assert (first.total, first.pages, first.has_next) == (5, 3, True)
    assert [item.name for item in last.items] == ["eve"]
    assert (last.total, last.has_next) == (5, False)
    assert (beyond.items, beyond.total) == ([], 5)
    assert small.total == 2


async def test_keyset_pages_walk_forward_and_back_without_gaps(db: DatabaseManager) -> None:
    await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session, cursor_secret=SECRET)
        expected = [m.name for m in await repository.list(sort="age,-name")]
        seen: list[str] = []
        page = await repository.paginate_keyset(MemberOut, size=2, sort="age,-name")
        assert page.prev_cursor is None
        pages = [page]
        while page.next_cursor is not None:
            assert len(pages) < 4, "the cursor stopped advancing"  # a bound, not a hang
            page = await repository.paginate_keyset(
                MemberOut, size=2, sort="age,-name", cursor=page.next_cursor
            )
            pages.append(page)
        for each in pages:
            seen += [item.name for item in each.items]
        assert seen == expected
        assert len(pages) == 3
        back = await repository.paginate_keyset(
            MemberOut, size=2, sort="age,-name", cursor=pages[-1].prev_cursor
        )
        assert [item.name for item in back.items] == [i.name for i in pages[1].items]
        assert back.next_cursor is not None
        first_again = await repository.paginate_keyset(
            MemberOut, size=2, sort="age,-name", cursor=back.prev_cursor
        )
        assert first_again.items == pages[0].items
        assert first_again.prev_cursor is None


async def test_keyset_pages_by_timestamp_and_uuid(db: DatabaseManager) -> None:
    _, members = await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session, cursor_secret=SECRET.decode())
        page = await repository.paginate_keyset(MemberOut, size=3, sort="-created_at")
        rest = await repository.paginate_keyset(
            MemberOut, size=3, sort="-created_at", cursor=page.next_cursor
        )
        names = [item.name for item in page.items + rest.items]
    assert sorted(names) == sorted(m.name for m in members)
    assert rest.next_cursor is None


async def test_tampered_or_foreign_cursors_are_refused(db: DatabaseManager) -> None:
    await _seed(db)
    async with db.session() as session:
        repository = MemberRepository(session, cursor_secret=SECRET)
        page = await repository.paginate_keyset(MemberOut, size=2, sort="age")
        cursor = page.next_cursor
        assert cursor is not None
        payload = decode_cursor(cursor, SECRET)
        body, _, signature = cursor.partition(".")
        forged = encode_cursor({**payload, "v": [0, payload["v"][1]]}, b"x" * 32)
        changed_body = encode_cursor({**payload, "v": [0, payload["v"][1]]}, SECRET).split(".")[0]
        tampered = f"{changed_body}.{signature}"
        cases = {
            "signature": [forged, tampered],
            "format": ["not-a-cursor", body + "."],
            "sort_mismatch": [encode_cursor({**payload, "s": "members:name,id"}, SECRET)],
        }
        for rule, cursors in cases.items():
            for bad in cursors:
                with pytest.raises(InvalidInputError) as caught:
                    await repository.paginate_keyset(MemberOut, size=2, sort="age", cursor=bad)
                assert caught.value.field == "cursor"
                assert caught.value.errors[0].type == rule
        with pytest.raises(InvalidInputError) as other_sort:
            await repository.paginate_keyset(MemberOut, size=2, sort="name", cursor=cursor)
        assert other_sort.value.errors[0].type == "sort_mismatch"
        broken = encode_cursor({**payload, "v": ["old", "not-a-uuid"]}, SECRET)
        with pytest.raises(InvalidInputError) as garbled:
            await repository.paginate_keyset(MemberOut, size=2, sort="age", cursor=broken)
        assert garbled.value.errors[0].type == "format"


async def test_keyset_refuses_nullable_sorts_bad_sizes_and_a_missing_secret(
    db: DatabaseManager,
) -> None:
    async with db.session() as session:
        repository = MemberRepository(session, cursor_secret=SECRET)
        with pytest.raises(InvalidInputError) as nullable:
            await repository.paginate_keyset(MemberOut, sort="nickname")
        with pytest.raises(InvalidInputError) as size:
            await repository.paginate_keyset(MemberOut, size=101)
        with pytest.raises(ConfigurationError):
            await MemberRepository(session).paginate_keyset(MemberOut)
    assert nullable.value.errors[0].type == "nullable_sort_field"
    assert size.value.field == "size"


async def test_create_many_inserts_in_order_with_database_values(db: DatabaseManager) -> None:
    async with db.transaction() as session:
        repository = MemberRepository(session)
        rows = await repository.create_many(
            [{"name": f"m{i}", "email": f"m{i}@x.io", "age": i} for i in range(50)]
        )
        assert [row.age for row in rows] == list(range(50))
        assert all(row.version == 1 and row.created_at.tzinfo is UTC for row in rows)
        assert rows[0].id < rows[-1].id
        assert await repository.create_many([]) == []
        none = await CounterRepository(session).create_many(
            [{"sku": "a"}, {"sku": "b"}], returning=False
        )
        assert none == []
        assert await CounterRepository(session).count() == 2
        with pytest.raises(DuplicateError):
            async with db.transaction():
                await CounterRepository(session).create_many([{"sku": "a"}])


async def test_create_accepts_pydantic_models_and_instances(db: DatabaseManager) -> None:
    class TeamIn(BaseModel):
        name: str

    async with db.transaction() as session:
        teams = TeamRepository(session)
        from_model = await teams.create(TeamIn(name="a"))
        from_instance = await teams.create(Team(name="b"))
        assert {from_model.name, from_instance.name} == {"a", "b"}
        with pytest.raises(InvalidInputError):
            await teams.create({"name": "c", "created_at": datetime.now(UTC)})


async def test_repository_needs_a_model_and_an_aegis_session(db: DatabaseManager) -> None:
    async with async_sessionmaker(db.engine)() as plain:
        with pytest.raises(ConfigurationError, match="AegisSession"):
            MemberRepository(plain)
    async with db.session() as session:
        with pytest.raises(ConfigurationError, match="no model"):
            BaseRepository(session)


async def test_database_errors_inside_reads_are_translated(db: DatabaseManager) -> None:
    with pytest.raises(DatabaseError) as caught:
        async with db.session() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    assert caught.value.code == "DB_ERROR"
