"""Sessions and transactions on PostgreSQL and SQLite: savepoints, propagation, on_commit, retry."""

# ruff: noqa: PT012 - a transaction block is the unit under test: its errors come from its exit

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from pydantic import SecretStr
from sqlalchemy import String, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.core.errors import NotFoundError
from aegis.db import (
    ConcurrentUpdateError,
    DatabaseManager,
    DatabaseSettings,
    DuplicateError,
    Propagation,
    TransactionStateError,
    retry_on_transient,
)

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)
    balance: Mapped[int] = mapped_column(default=0)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(database_url)))
    async with manager.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    yield manager
    await manager.dispose()


async def _names(db: DatabaseManager) -> list[str]:
    async with db.session() as session:
        return list((await session.scalars(select(Account.name).order_by(Account.name))).all())


async def test_session_commits_on_success_and_rolls_back_on_error(db: DatabaseManager) -> None:
    async with db.session() as session:
        session.add(Account(name="kept"))
    with pytest.raises(NotFoundError):
        async with db.session() as session:
            session.add(Account(name="dropped"))
            await session.flush()
            raise NotFoundError("stop")
    assert await _names(db) == ["kept"]
    assert db.current_session() is None


async def test_commit_time_errors_are_translated(db: DatabaseManager) -> None:
    async with db.session() as session:
        session.add(Account(name="a"))
    with pytest.raises(DuplicateError) as caught:
        async with db.session() as session:
            session.add(Account(name="a"))
    assert caught.value.details["fields"] == ["name"]  # PostgreSQL: from the server's detail


async def test_nested_failure_rolls_back_only_the_savepoint(db: DatabaseManager) -> None:
    committed: list[str] = []
    async with db.transaction() as session:
        session.add(Account(name="outer"))
        db.on_commit(lambda: committed.append("outer"))
        with pytest.raises(DuplicateError):
            async with db.transaction() as inner:
                assert inner is session
                db.on_commit(lambda: committed.append("inner-failed"))
                inner.add(Account(name="outer"))
        async with db.transaction():
            session.add(Account(name="second"))
            db.on_commit(lambda: committed.append("inner-ok"))
        assert committed == []
    assert await _names(db) == ["outer", "second"]
    assert committed == ["outer", "inner-ok"]


async def test_failed_joined_scope_makes_the_outer_commit_fail_loudly(db: DatabaseManager) -> None:
    with pytest.raises(TransactionStateError, match="nothing was committed"):
        async with db.transaction() as session:
            session.add(Account(name="half"))
            with pytest.raises(ValueError, match="inner"):
                async with db.transaction(propagation=Propagation.REQUIRED) as joined:
                    assert joined is session
                    raise ValueError("inner")
    assert await _names(db) == []


@pytest.mark.parametrize("scope", ["session", "required", "nested"])
async def test_a_duplicate_inside_an_open_transaction_is_a_duplicate_error_in_every_scope(
    db: DatabaseManager, scope: str
) -> None:
    # A joined scope (session(), propagation="required") let sqlalchemy's IntegrityError out.
    async with db.session() as session:
        session.add(Account(name="taken"))

    def inner_scope() -> AbstractAsyncContextManager[AsyncSession]:
        if scope == "session":
            return db.session()
        return db.transaction(propagation=scope)

    joined = scope != "nested"
    with pytest.raises(TransactionStateError) if joined else contextlib.nullcontext():
        async with db.transaction():
            with pytest.raises(DuplicateError) as caught:
                async with inner_scope() as inner:
                    inner.add(Account(name="taken"))
                    await inner.flush()
            assert caught.value.details["fields"] == ["name"]
            assert "taken" not in str(caught.value)


async def test_run_transaction_joining_an_open_one_raises_a_duplicate_error_too(
    db: DatabaseManager,
) -> None:
    async def add_taken(session: AsyncSession) -> None:
        session.add(Account(name="taken"))
        await session.flush()

    await db.run_transaction(add_taken)
    with pytest.raises(TransactionStateError, match="nothing was committed"):
        async with db.transaction() as session:
            session.add(Account(name="other"))
            with pytest.raises(DuplicateError) as caught:  # raw IntegrityError before
                await db.run_transaction(add_taken)
            assert caught.value.details["fields"] == ["name"]
    assert await _names(db) == ["taken"]


async def test_session_inside_a_transaction_joins_it(db: DatabaseManager) -> None:
    async with db.transaction() as outer, db.session() as inner:
        assert inner is outer
        assert db.current_session() is outer


async def test_requires_new_commits_independently(db: DatabaseManager) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as outer:
            outer.add(Account(name="rolled-back"))
            async with db.transaction(propagation="requires_new") as independent:
                assert independent is not outer
                independent.add(Account(name="audit"))
            raise RuntimeError("outer fails")
    assert await _names(db) == ["audit"]


async def test_on_commit_runs_after_commit_only(
    db: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []

    async def async_callback() -> None:
        events.append("async")

    def failing() -> None:
        raise RuntimeError("callback broke")

    with pytest.raises(TransactionStateError):
        db.on_commit(lambda: None)
    with pytest.raises(RuntimeError):
        async with db.transaction():
            db.on_commit(lambda: events.append("never"))
            raise RuntimeError("rollback")
    with caplog.at_level(logging.ERROR, logger="aegis.db"):
        async with db.transaction():
            db.on_commit(failing)
            db.on_commit(async_callback)
            db.on_commit(lambda: events.append("sync"))
    assert events == ["async", "sync"]
    assert "callback broke" in caplog.text


async def test_a_transaction_cannot_be_shared_with_another_task(db: DatabaseManager) -> None:
    async with db.transaction():

        async def other_task() -> None:
            async with db.session():
                pass

        with pytest.raises(TransactionStateError, match="another task"):
            await asyncio.create_task(other_task())

        async def own_transaction() -> str:
            async with db.transaction(propagation="requires_new") as session:
                return str(await session.scalar(text("SELECT 'ok'")))

        assert await asyncio.create_task(own_transaction()) == "ok"


async def test_isolation_level_is_refused_inside_an_open_transaction(db: DatabaseManager) -> None:
    async with db.transaction():
        with pytest.raises(TransactionStateError, match="isolation_level"):
            async with db.transaction(isolation_level="SERIALIZABLE"):
                pass


async def test_concurrent_writers_hit_a_serialization_failure_that_the_retry_resolves(
    db: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    async with db.session() as session:
        session.add(Account(id=1, name="shared", balance=0))
    both_read = [anyio.Event(), anyio.Event()]
    attempts = [0, 0]

    def increment(index: int) -> Callable[[AsyncSession], Awaitable[None]]:
        async def work(session: AsyncSession) -> None:
            attempts[index] += 1
            account = await session.get(Account, 1, populate_existing=True)
            assert account is not None
            if attempts[index] == 1:
                # Both transactions read the same version before either writes.
                both_read[index].set()
                await both_read[1 - index].wait()
            account.balance += 1
            await session.flush()

        return work

    async def writer(index: int) -> None:
        await db.run_transaction(
            increment(index), isolation_level="SERIALIZABLE", retries=6, base_delay=0.001
        )

    async with anyio.create_task_group() as group:
        group.start_soon(writer, 0)
        group.start_soon(writer, 1)
    # One writer commits first time; the other is re-run (SQLite may need a second re-run
    # when its fresh snapshot predates the first writer's commit).
    assert min(attempts) == 1
    assert max(attempts) >= 2
    # PostgreSQL reports 40001; SQLite a busy database or a stale WAL snapshot (517).
    assert "SQLSTATE 40001" in caplog.text or "database is locked" in caplog.text
    async with db.session() as session:
        account = await session.get(Account, 1)
        assert account is not None
        assert account.balance == 2


async def test_retries_stop_after_the_limit_with_a_conflict_error(db: DatabaseManager) -> None:
    calls = 0

    @retry_on_transient(retries=2, base_delay=0.0, max_delay=0.0)
    async def always_conflicts() -> None:
        nonlocal calls
        calls += 1
        async with db.transaction() as session:
            await _raise_serialization_failure(session, db)

    with pytest.raises(ConcurrentUpdateError) as caught:
        await always_conflicts()
    assert calls == 3
    assert caught.value.status == 409


async def test_retry_never_reruns_part_of_an_open_transaction(db: DatabaseManager) -> None:
    calls = 0

    @retry_on_transient(retries=5, base_delay=0.0, max_delay=0.0)
    async def inner(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        await _raise_serialization_failure(session, db)

    with pytest.raises(ConcurrentUpdateError):
        async with db.transaction() as session:
            await inner(session)
    assert calls == 1

    async def joined(session: AsyncSession) -> int:
        return 7

    async with db.transaction():
        assert await db.run_transaction(joined) == 7


async def test_non_transient_errors_are_not_retried(db: DatabaseManager) -> None:
    calls = 0

    async def duplicate(session: AsyncSession) -> None:
        nonlocal calls
        calls += 1
        session.add_all([Account(name="x"), Account(name="x")])
        await session.flush()

    with pytest.raises(DuplicateError):
        await db.run_transaction(duplicate)
    assert calls == 1


async def test_immediate_sqlite_transactions_queue_instead_of_failing(database_url: str) -> None:
    """With ``BEGIN IMMEDIATE`` concurrent read-then-write transactions never fail on SQLite."""
    db = DatabaseManager(
        DatabaseSettings(url=SecretStr(database_url), sqlite_transaction_mode="IMMEDIATE")
    )
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    async with db.session() as session:
        session.add(Account(id=1, name="shared", balance=0))

    async def increment(session: AsyncSession) -> None:
        account = await session.get(Account, 1, populate_existing=True, with_for_update=True)
        assert account is not None
        await asyncio.sleep(0)  # let the other writers start their transactions meanwhile
        account.balance += 1
        await session.flush()

    try:
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(functools.partial(db.run_transaction, increment, retries=0))
        async with db.session() as session:
            account = await session.get(Account, 1)
            assert account is not None
            assert account.balance == 8
    finally:
        await db.dispose()


async def _raise_serialization_failure(session: AsyncSession, db: DatabaseManager) -> None:
    """Make the database itself report a serialization failure / busy database."""
    if db.dialect_name == "postgresql":
        await session.execute(
            text("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
        )
    else:
        # Fail at once instead of waiting out the busy timeout on every attempt.
        await session.execute(text("PRAGMA busy_timeout = 0"))
        async with db.transaction(propagation="requires_new") as blocker:
            blocker.add(Account(name="lock-holder"))
            await blocker.flush()
            session.add(Account(name="blocked"))
            await session.flush()


async def test_read_only_sessions_go_to_a_replica_outside_write_transactions(
    database_url: str,
) -> None:
    db = DatabaseManager(
        DatabaseSettings(
            url=SecretStr(database_url), read_replica_urls=(SecretStr(database_url),), pool_size=1
        )
    )
    try:
        async with db.session(read_only=True) as session:
            assert session.bind is db.replica_engines[0]
            assert await session.scalar(text("SELECT 1")) == 1
        async with db.transaction() as writer, db.session(read_only=True) as reader:
            assert reader is writer
            assert reader.bind is db.engine
        assert await db.health_check()
    finally:
        await db.dispose()
