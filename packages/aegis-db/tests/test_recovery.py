"""PostgreSQL only: killed connections, statement timeouts, unreachable servers."""

# ruff: noqa: PT012 - a transaction block is the unit under test: its errors come from its exit

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from aegis.core.errors import DatabaseUnavailableError
from aegis.db import DatabaseManager, DatabaseSettings, StatementTimeoutError, is_transient

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db(postgres_database: str) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(
        DatabaseSettings(
            url=SecretStr(postgres_database), pool_size=1, max_overflow=0, application_name="t"
        )
    )
    yield manager
    await manager.dispose()


@pytest.fixture
async def admin(postgres_database: str) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(DatabaseSettings(url=SecretStr(postgres_database)))
    yield manager
    await manager.dispose()


async def _backend_pid(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(admin: DatabaseManager, pid: int) -> None:
    async with admin.session() as session:
        killed = await session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    assert killed is True


async def test_killed_connection_fails_the_transaction_and_the_next_one_succeeds(
    db: DatabaseManager, admin: DatabaseManager
) -> None:
    with pytest.raises(DatabaseUnavailableError) as caught:
        async with db.session() as session:
            pid = await _backend_pid(session)
            await _terminate(admin, pid)
            await session.execute(text("SELECT 1"))
    assert caught.value.status == 503
    async with db.session() as session:
        assert await _backend_pid(session) != pid


async def test_connection_killed_while_idle_in_the_pool_is_replaced_unnoticed(
    db: DatabaseManager, admin: DatabaseManager
) -> None:
    async with db.session() as session:
        pid = await _backend_pid(session)
    await _terminate(admin, pid)
    async with db.session() as session:
        assert await _backend_pid(session) != pid


async def test_run_transaction_retries_after_a_killed_connection(
    db: DatabaseManager, admin: DatabaseManager
) -> None:
    pids: list[int] = []

    async def work(session: AsyncSession) -> str:
        pids.append(await _backend_pid(session))
        if len(pids) == 1:
            await _terminate(admin, pids[0])
        return str(await session.scalar(text("SELECT current_setting('application_name')")))

    assert await db.run_transaction(work, base_delay=0.0) == "t"
    assert len(pids) == 2
    assert pids[0] != pids[1]


async def test_statement_timeout_is_its_own_error(postgres_database: str) -> None:
    db = DatabaseManager(
        DatabaseSettings(url=SecretStr(postgres_database), statement_timeout_ms=20)
    )
    try:
        with pytest.raises(StatementTimeoutError) as caught:
            async with db.session() as session:
                await session.execute(text("SELECT pg_sleep(5)"))
        assert caught.value.code == "DB_TIMEOUT"
    finally:
        await db.dispose()


async def test_unreachable_server_is_unavailable() -> None:
    url = "postgresql://postgres@127.0.0.1:1/none"
    db = DatabaseManager(DatabaseSettings(url=SecretStr(url), connect_timeout=2))
    try:
        assert not await db.health_check()
        with pytest.raises(DatabaseUnavailableError) as caught:
            async with db.session() as session:
                await session.execute(text("SELECT 1"))
        # A primary that is failing over looks like this: run_transaction tries again.
        assert is_transient(caught.value)
    finally:
        await db.dispose()


async def test_health_check_answers_true_for_a_live_database(
    db: DatabaseManager, tmp_path: Path
) -> None:
    assert await db.health_check()
    sqlite = DatabaseManager(DatabaseSettings(url=SecretStr(f"sqlite:///{tmp_path / 'h.db'}")))
    assert await sqlite.health_check()
    await sqlite.dispose()
