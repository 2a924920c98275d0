"""bootstrap() with a database: with read replicas, a client's requests read its own writes."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import httpx
import psycopg
import pytest
from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from aegis.core.errors import NotFoundError
from aegis.db import DatabaseSettings, ReadYourWritesMiddleware, session_dependency
from aegis.service import ServiceSettings, bootstrap
from aegis.testing import (
    PostgresReplicaTopology,
    create_database,
    database_url,
    drop_database,
    unique_name,
)


@pytest.mark.parametrize(("replicas", "installed"), [(1, True), (0, False)])
def test_read_your_writes_per_request_is_installed_with_read_replicas(
    postgres_database: str, replicas: int, installed: bool
) -> None:
    url = postgres_database.replace("postgresql://", "postgresql+asyncpg://", 1)
    database = DatabaseSettings(
        url=SecretStr(url), read_replica_urls=tuple(SecretStr(url) for _ in range(replicas))
    )
    app = Starlette()
    bootstrap(app, ServiceSettings(name="orders", log=None, database=database))

    classes: list[object] = [middleware.cls for middleware in app.user_middleware]
    assert (ReadYourWritesMiddleware in classes) is installed


@dataclass(frozen=True)
class Notes:
    """A database of the shared postgres-replica topology with a ``notes`` table."""

    topology: PostgresReplicaTopology
    primary_url: str
    replica_url: str

    @contextmanager
    def replay_paused(self) -> Iterator[None]:
        """The replica receives WAL but replays none of it until the block ends: it lags."""
        with psycopg.connect(self.topology.replica_url, autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            with psycopg.connect(self.topology.replica_url, autocommit=True) as replica:
                replica.execute("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def notes(postgres_replica: PostgresReplicaTopology) -> Iterator[Notes]:
    name = unique_name("aegis_service_notes")
    primary = create_database(postgres_replica.primary_url, name)
    with psycopg.connect(primary, autocommit=True) as connection:
        connection.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL)")
        connection.execute("INSERT INTO notes (body) VALUES ('seeded')")
    postgres_replica.wait_healthy(timeout=10)  # the replica has the table and the row
    yield Notes(postgres_replica, primary, database_url(postgres_replica.replica_url, name))
    drop_database(postgres_replica.primary_url, name)


def notes_app(notes: Notes, registry: CollectorRegistry) -> FastAPI:
    """``POST /notes`` writes on the primary; ``GET /notes/{id}`` reads on a replica.

    (No ``from __future__ import annotations`` in this module: FastAPI resolves the routes'
    annotations, which name the local session types.)
    """
    database = DatabaseSettings(
        url=SecretStr(notes.primary_url), read_replica_urls=(SecretStr(notes.replica_url),)
    )
    app = FastAPI()
    service = bootstrap(
        app,
        ServiceSettings(name="notes", log=None, database=database, health_interval_seconds=0),
        registry=registry,
    )
    db = service.db
    assert db is not None
    writing = Annotated[AsyncSession, Depends(session_dependency(db), scope="function")]
    reading = Annotated[
        AsyncSession, Depends(session_dependency(db, read_only=True), scope="function")
    ]

    @app.post("/notes", status_code=201)
    async def create(body: dict[str, str], session: writing) -> dict[str, int]:
        inserted = text("INSERT INTO notes (body) VALUES (:body) RETURNING id")
        return {"id": (await session.execute(inserted, body)).scalar_one()}

    @app.get("/notes/{note}")
    async def read(note: int, session: reading) -> dict[str, object]:
        body = await session.scalar(text("SELECT body FROM notes WHERE id = :id"), {"id": note})
        if body is None:
            raise NotFoundError(f"note {note} does not exist")
        return {
            "body": body,
            "on_replica": await session.scalar(text("SELECT pg_is_in_recovery()")),
        }

    return app


@pytest.mark.anyio
@pytest.mark.scaleout
async def test_a_client_reads_the_row_it_just_created_while_the_replica_lags(
    notes: Notes,
) -> None:
    """Its next request reads on the primary; another client's reads stay on the replica."""
    registry = CollectorRegistry()
    app = notes_app(notes, registry)
    transport = httpx.ASGITransport(app=app)
    with notes.replay_paused():
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://notes") as writer,
            httpx.AsyncClient(transport=transport, base_url="http://notes") as other,
        ):
            created = await writer.post("/notes", json={"body": "mine"})
            assert created.status_code == 201, created.text
            note = created.json()["id"]
            mine = await writer.get(f"/notes/{note}")  # a new request of the same client
            assert mine.status_code == 200, mine.text
            assert mine.json() == {"body": "mine", "on_replica": False}

            theirs = await other.get(f"/notes/{note}")  # the replica has not replayed it
            assert theirs.status_code == 404, theirs.text
            seeded = await other.get("/notes/1")
            assert seeded.json() == {"body": "seeded", "on_replica": True}
            assert "notes_read_after=" in created.headers["set-cookie"]  # what carried it

            def routed(route: str) -> float | None:
                labels = {"route": route}
                return registry.get_sample_value("aegis_db_read_only_sessions_total", labels)

            assert (routed("primary_own_write"), routed("replica")) == (1.0, 2.0)
