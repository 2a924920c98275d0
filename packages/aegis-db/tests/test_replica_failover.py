"""Primary failover on a real topology: the replica is promoted and no acknowledged write is lost.

The topology is this module's own (the primary is killed), with synchronous replication: an
acknowledged commit is on the replica before the client hears of it, so promotion keeps it.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

import anyio
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from aegis.db import DatabaseManager, DatabaseSettings
from aegis.testing import PostgresReplicaTopology

pytestmark = [pytest.mark.anyio, pytest.mark.scaleout]

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def topology() -> Iterator[PostgresReplicaTopology]:
    with PostgresReplicaTopology(synchronous=True) as started:
        with psycopg.connect(started.primary_url, autocommit=True) as connection:
            connection.execute("CREATE TABLE acked (n int PRIMARY KEY)")
        yield started


@pytest.fixture
async def db(topology: PostgresReplicaTopology) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(
        DatabaseSettings(
            url=SecretStr(topology.failover_url),
            read_replica_urls=(SecretStr(topology.replica_url),),
            connect_timeout=2.0,
        )
    )
    yield manager
    await manager.dispose()


async def test_after_the_primary_dies_the_promoted_replica_takes_writes_and_lost_none(
    topology: PostgresReplicaTopology, db: DatabaseManager
) -> None:
    acked: list[int] = []
    acked_at: list[float] = []
    attempts: list[int] = []
    running = True

    async def writer(start: int) -> None:
        number = start
        while running:
            number += 2

            async def insert(session: AsyncSession, number: int = number) -> None:
                attempts.append(number)
                # Idempotent, as a retried write must be: a commit whose answer the kill lost
                # may have reached the replica, and its retry then finds the row there.
                await session.execute(
                    text("INSERT INTO acked VALUES (:n) ON CONFLICT DO NOTHING"), {"n": number}
                )

            # Patience for a promotion: 40 attempts, at most 0.25 s apart.
            await db.run_transaction(insert, retries=40, base_delay=0.01, max_delay=0.25)
            acked.append(number)
            acked_at.append(time.monotonic())

    in_flight = anyio.Event()
    held: list[int] = []  # attempts of a transaction still open when the primary dies

    async def insert_and_hold(session: AsyncSession) -> None:
        held.append(len(held) + 1)
        await session.execute(text("INSERT INTO acked VALUES (-1) ON CONFLICT DO NOTHING"))
        if len(held) == 1:  # the first attempt waits on the server until the kill ends it
            in_flight.set()
            await session.execute(text("SELECT pg_sleep(60)"))

    async def holder() -> None:
        await db.run_transaction(insert_and_hold, retries=40, base_delay=0.01, max_delay=0.25)
        acked.append(-1)

    async with anyio.create_task_group() as load:
        load.start_soon(writer, 0)
        load.start_soon(writer, 1)
        load.start_soon(holder)
        await until(lambda: len(acked) > 100 and in_flight.is_set())
        killed_at = time.monotonic()
        await anyio.to_thread.run_sync(topology.kill, "primary")
        before = len(acked)
        promotion = await anyio.to_thread.run_sync(topology.promote)
        await until(lambda: len(acked) > before + 100 and -1 in acked)
        running = False
    # The write outage as clients saw it: the longest time without an acknowledged commit.
    gap = max(
        later - earlier for earlier, later in itertools.pairwise(acked_at) if later > killed_at
    )
    logger.warning("failover: promotion took %.3fs, no commit for %.3fs", promotion, gap)
    assert topology.current_primary() == "replica"
    # A transaction in flight when the primary died failed with a transient error and ran
    # again, on the new primary.
    assert len(held) >= 2
    assert len(attempts) >= len(acked) - 1
    with psycopg.connect(topology.replica_url) as promoted:
        stored = {row[0] for row in promoted.execute("SELECT n FROM acked")}
    assert set(acked) <= stored  # every acknowledged commit survived the failover
    async with db.session(read_only=True) as session:  # the promoted node serves reads too
        assert await session.scalar(text("SELECT count(*) FROM acked")) == len(stored)


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for ``condition`` (polled), at most ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)
