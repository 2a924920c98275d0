"""Read-only sessions on a real streaming replica: read-your-writes, lag, rotation, outages."""

# ruff: noqa: PT012 - a transaction block is the unit under test: its errors come from its exit

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import func, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from aegis.core.errors import DatabaseUnavailableError
from aegis.db import DatabaseManager, DatabaseSettings, ReadYourWritesMiddleware
from aegis.testing import (
    PostgresReplicaTopology,
    create_database,
    database_url,
    drop_database,
    unique_name,
)

pytestmark = [pytest.mark.anyio, pytest.mark.scaleout]

IN_RECOVERY = text("SELECT pg_is_in_recovery()")
COUNT_NOTE = text("SELECT count(*) FROM notes WHERE id = :id")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class ReplicaDatabase:
    """One database of the shared topology, by its primary and its replica URL."""

    topology: PostgresReplicaTopology
    primary_url: str
    replica_url: str

    @contextmanager
    def replay_paused(self) -> Iterator[None]:
        """Hold the replica's replay: it receives WAL but shows nothing new until the block ends."""
        with psycopg.connect(self.topology.replica_url, autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            self.resume()

    def resume(self) -> None:
        """Let the replica replay again (a no-op while it is not paused)."""
        with psycopg.connect(self.topology.replica_url, autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def replica_database(postgres_replica: PostgresReplicaTopology) -> Iterator[ReplicaDatabase]:
    name = unique_name("aegis_replica")
    primary = create_database(postgres_replica.primary_url, name)
    postgres_replica.wait_healthy(timeout=10)
    with psycopg.connect(primary, autocommit=True) as connection:
        connection.execute("CREATE TABLE notes (id text PRIMARY KEY)")
    postgres_replica.wait_healthy(timeout=10)
    yield ReplicaDatabase(
        postgres_replica, primary, database_url(postgres_replica.replica_url, name)
    )
    drop_database(postgres_replica.primary_url, name)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def db(
    replica_database: ReplicaDatabase, registry: CollectorRegistry
) -> AsyncIterator[DatabaseManager]:
    manager = DatabaseManager(
        DatabaseSettings(
            url=SecretStr(replica_database.primary_url),
            read_replica_urls=(SecretStr(replica_database.replica_url),),
            replica_wait_timeout=0.0,
            replica_check_interval=0.05,
        ),
        registry=registry,
    )
    yield manager
    await manager.dispose()


def routed(registry: CollectorRegistry, route: str) -> float:
    return registry.get_sample_value("aegis_db_read_only_sessions_total", {"route": route}) or 0.0


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for ``condition`` (polled), at most ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


async def add_note(db: DatabaseManager) -> str:
    note = unique_name("note")
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO notes VALUES (:id)"), {"id": note})
    return note


async def read_note(db: DatabaseManager, note: str) -> tuple[bool, bool]:
    """(whether the read-only session found ``note``, whether it read on the replica)."""
    async with db.session(read_only=True) as session:
        found = await session.scalar(
            text("SELECT count(*) FROM notes WHERE id = :id"), {"id": note}
        )
        return found == 1, bool(await session.scalar(IN_RECOVERY))


async def test_read_only_sessions_read_on_the_replica(
    db: DatabaseManager, registry: CollectorRegistry
) -> None:
    async with db.session(read_only=True) as session:
        assert await session.scalar(IN_RECOVERY) is True
    async with db.session() as session:
        assert await session.scalar(IN_RECOVERY) is False
    assert routed(registry, "replica") == 1


async def test_a_scope_reads_its_own_write_on_the_primary_while_the_replica_lags(
    db: DatabaseManager, replica_database: ReplicaDatabase, registry: CollectorRegistry
) -> None:
    with replica_database.replay_paused():
        with db.read_your_writes():
            note = await add_note(db)
            assert await read_note(db, note) == (True, False)  # own write, on the primary
        with db.read_your_writes():
            # Another scope is not held back by that write: it reads on the lagging replica.
            assert await read_note(db, note) == (False, True)
    assert routed(registry, "primary_own_write") == 1


async def test_a_scope_reads_on_the_replica_once_it_replayed_the_write(
    replica_database: ReplicaDatabase, registry: CollectorRegistry
) -> None:
    db = DatabaseManager(
        DatabaseSettings(
            url=SecretStr(replica_database.primary_url),
            read_replica_urls=(SecretStr(replica_database.replica_url),),
            replica_wait_timeout=30.0,
        ),
        registry=registry,
    )
    replicas = db.replicas
    assert replicas is not None
    results: list[tuple[bool, bool]] = []
    try:
        with db.read_your_writes(), replica_database.replay_paused():
            note = await add_note(db)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lambda: _append(results, read_note(db, note)))
                await until(lambda: replicas.replicas[0].replayed > 0)  # it checked: behind
                replica_database.resume()
        # The read waited for the replay instead of going to the primary.
        assert results == [(True, True)]
        assert routed(registry, "primary_own_write") == 0
    finally:
        await db.dispose()


async def _append(results: list[tuple[bool, bool]], read: Awaitable[tuple[bool, bool]]) -> None:
    results.append(await read)


async def test_outside_every_scope_the_manager_reads_its_own_writes(
    db: DatabaseManager, replica_database: ReplicaDatabase
) -> None:
    with replica_database.replay_paused():
        note = await add_note(db)
        assert await read_note(db, note) == (True, False)


async def test_a_session_that_only_read_does_not_send_its_scope_to_the_primary(
    db: DatabaseManager, replica_database: ReplicaDatabase, registry: CollectorRegistry
) -> None:
    with replica_database.replay_paused():
        with db.read_your_writes():
            await add_note(db)  # WAL the paused replica has not replayed
        with db.read_your_writes():
            async with db.session() as session:  # a write session that only reads
                await session.scalar(select(func.count()).select_from(table("notes")))
            assert (await read_note(db, "none"))[1] is True
    assert routed(registry, "primary_own_write") == 0


def note_app(db: DatabaseManager, written: list[str]) -> Callable[[Scope, Receive, Send], Any]:
    """``POST /write`` adds a note; every request answers "<note found> <read on the replica>"."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/write":
            written.append(await add_note(db))
        found, on_replica = await read_note(db, written[0])
        body = f"{found} {on_replica}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_a_clients_next_request_reads_its_write_while_other_clients_read_the_replica(
    db: DatabaseManager, replica_database: ReplicaDatabase
) -> None:
    written: list[str] = []
    transport = httpx.ASGITransport(app=ReadYourWritesMiddleware(note_app(db, written), db))
    with replica_database.replay_paused():
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as writer,
            httpx.AsyncClient(transport=transport, base_url="http://test") as other,
        ):
            wrote = await writer.post("/write")
            assert wrote.text == "True False"  # its write, on the primary
            cookie = wrote.headers["set-cookie"]
            assert cookie.startswith("aegis_read_after=")
            assert "HttpOnly" in cookie
            assert "SameSite=Lax" in cookie
            assert (await writer.get("/read")).text == "True False"  # its next request too
            assert "set-cookie" not in (await writer.get("/read")).headers  # nothing new
            assert (await other.get("/read")).text == "False True"  # others: the replica
            forged = {"cookie": "aegis_read_after=0/16B3748"}  # not a position: ignored
            assert (await other.get("/read", headers=forged)).text == "False True"
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as writer:
        writer.cookies.set("aegis_read_after", cookie.partition("=")[2].partition(";")[0])
        with anyio.fail_after(15):  # once the replica has replayed the write, it is read there
            while (await writer.get("/read")).text != "True True":
                await anyio.sleep(0.01)


async def test_without_the_cookie_each_request_is_its_own_scope(
    db: DatabaseManager, replica_database: ReplicaDatabase
) -> None:
    written: list[str] = []
    app = ReadYourWritesMiddleware(note_app(db, written), db, cookie=None)
    transport = httpx.ASGITransport(app=app)
    with replica_database.replay_paused():
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            wrote = await client.post("/write")
            assert wrote.text == "True False"  # its write, on the primary
            assert "set-cookie" not in wrote.headers
            assert (await client.get("/read")).text == "False True"  # the next request: replica


async def test_lag_is_exported_and_a_replica_too_far_behind_leaves_the_rotation(
    replica_database: ReplicaDatabase, registry: CollectorRegistry
) -> None:
    db = DatabaseManager(
        DatabaseSettings(
            url=SecretStr(replica_database.primary_url),
            read_replica_urls=(SecretStr(replica_database.replica_url),),
            replica_max_lag_seconds=0.2,
            replica_check_interval=0.05,
        ),
        registry=registry,
    )
    replicas = db.replicas
    assert replicas is not None
    label = {"replica": replicas.replicas[0].label}

    def metric(name: str) -> float:
        value = registry.get_sample_value(name, label)
        assert value is not None
        return value

    try:
        await db.health_check()
        assert metric("aegis_db_replica_lag_bytes") == 0
        assert metric("aegis_db_replica_in_rotation") == 1
        with replica_database.replay_paused():
            await add_note(db)
            async with db.session(read_only=True):  # starts the background check
                pass
            await until(lambda: not replicas.replicas[0].in_rotation)
            assert metric("aegis_db_replica_lag_bytes") > 0
            assert metric("aegis_db_replica_lag_seconds") > 0.2
            assert metric("aegis_db_replica_in_rotation") == 0
            assert (await read_note(db, "none"))[1] is False  # the primary serves reads
            assert routed(registry, "primary_no_replica") >= 1
        await until(lambda: replicas.replicas[0].in_rotation)
        assert metric("aegis_db_replica_lag_seconds") == 0
        assert (await read_note(db, "none"))[1] is True
    finally:
        await db.dispose()


async def test_a_replica_that_does_not_answer_is_skipped_and_logged(
    replica_database: ReplicaDatabase,
    registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = DatabaseManager(
        DatabaseSettings(
            url=SecretStr(replica_database.primary_url),
            read_replica_urls=(SecretStr("postgresql://postgres@127.0.0.1:1/gone"),),
            replica_check_interval=60.0,
        ),
        registry=registry,
    )
    try:
        assert (await read_note(db, "none"))[1] is False  # no retry needed: the primary read
        assert routed(registry, "primary_no_replica") == 1
        assert (
            registry.get_sample_value(
                "aegis_db_replica_in_rotation", {"replica": "127.0.0.1:1/gone"}
            )
            == 0
        )
        assert "read replica 127.0.0.1:1/gone left the rotation" in caplog.text
    finally:
        await db.dispose()


async def test_a_read_that_loses_its_replica_connection_takes_the_replica_out(
    replica_database: ReplicaDatabase, registry: CollectorRegistry
) -> None:
    db = replica_manager(replica_database, registry, replica_check_interval=60.0)
    replicas = db.replicas
    assert replicas is not None
    try:
        with pytest.raises(DatabaseUnavailableError):
            async with db.session(read_only=True) as session:
                pid = await session.scalar(text("SELECT pg_backend_pid()"))
                with psycopg.connect(replica_database.replica_url, autocommit=True) as replica:
                    replica.execute("SELECT pg_terminate_backend(%s)", (pid,))
                await session.scalar(IN_RECOVERY)
        assert not replicas.replicas[0].in_rotation  # at once, not at the next check
        assert (await read_note(db, "none"))[1] is False
        await db.health_check()  # a check finds it healthy: back in the rotation
        assert replicas.replicas[0].in_rotation
    finally:
        await db.dispose()


async def test_no_read_fails_while_the_replica_stops_and_starts_under_load(
    replica_database: ReplicaDatabase, registry: CollectorRegistry
) -> None:
    topology = replica_database.topology
    # Checks are rare here: reads must route around the stopped replica by themselves.
    db = replica_manager(replica_database, registry, replica_check_interval=1.0)
    replicas = db.replicas
    assert replicas is not None
    reads: list[bool] = []
    running = True

    async def read(session: AsyncSession) -> bool:
        await session.scalar(text("SELECT count(*) FROM notes"))
        return bool(await session.scalar(IN_RECOVERY))

    async def reader() -> None:
        while running:
            # One retry, at once: a read in flight when the replica stops fails once.
            reads.append(await db.run_transaction(read, read_only=True, retries=1, base_delay=0))

    async def writer() -> None:
        while running:
            await add_note(db)

    try:
        async with anyio.create_task_group() as load:
            for _ in range(4):
                load.start_soon(reader)
            load.start_soon(writer)
            await until(lambda: len(reads) > 50)
            await anyio.to_thread.run_sync(topology.stop_node, "replica")
            try:
                stopped = len(reads)
                await until(lambda: len(reads) > stopped + 4)  # reads since the stop ...
                assert not replicas.replicas[0].in_rotation  # ... found it down
                during = len(reads)
                await until(lambda: len(reads) > during + 50)
                assert not any(reads[during:])  # on the primary while the replica is down
                assert await db.health_check()  # the primary answers: the service stays ready
            finally:
                await anyio.to_thread.run_sync(topology.start_node, "replica")
            await anyio.to_thread.run_sync(topology.wait_healthy)
            await until(lambda: replicas.replicas[0].in_rotation)
            back = len(reads)
            await until(lambda: sum(reads[back:]) > 20)  # on the replica again
            running = False
    finally:
        await db.dispose()
    assert routed(registry, "primary_no_replica") > 0
    assert routed(registry, "replica") > 0


def replica_manager(
    replica_database: ReplicaDatabase, registry: CollectorRegistry, **settings: Any
) -> DatabaseManager:
    return DatabaseManager(
        DatabaseSettings(
            url=SecretStr(replica_database.primary_url),
            read_replica_urls=(SecretStr(replica_database.replica_url),),
            **settings,
        ),
        registry=registry,
    )
