"""FastAPI integration: request-scoped sessions, commit before the response, lifespan.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at
runtime, and the session alias is local to ``make_app``.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, SecretStr
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aegis.core.errors import DatabaseUnavailableError
from aegis.core.web import install_error_handlers
from aegis.db import (
    BaseRepository,
    DatabaseManager,
    DatabaseSettings,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    database_lifespan,
    session_dependency,
)

pytestmark = pytest.mark.anyio


class Base(DeclarativeBase):
    pass


class Note(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    __tablename__ = "notes"

    title: Mapped[str] = mapped_column(String(40), unique=True)


class NoteIn(BaseModel):
    title: str


class NoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str


class NoteRepository(BaseRepository[Note]):
    pass


def make_app(db: DatabaseManager) -> FastAPI:
    app = FastAPI(lifespan=database_lifespan(db))
    install_error_handlers(app)
    session = Annotated[AsyncSession, Depends(session_dependency(db), scope="function")]

    @app.post("/notes", status_code=201)
    async def create_note(body: NoteIn, session: session) -> NoteOut:
        return NoteOut.model_validate(await NoteRepository(session).create(body))

    @app.post("/notes/unflushed", status_code=201)
    async def create_unflushed(body: NoteIn, session: session) -> dict[str, str]:
        session.add(Note(title=body.title))  # written by the commit after the endpoint
        return {"status": "accepted"}

    @app.post("/notes/then-fail")
    async def create_then_fail(body: NoteIn, session: session) -> None:
        await NoteRepository(session).create(body)
        raise RuntimeError("endpoint failed after writing")

    @app.get("/notes/{note_id}")
    async def get_note(note_id: uuid.UUID, session: session) -> NoteOut:
        return NoteOut.model_validate(await NoteRepository(session).get(note_id))

    return app


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    db = DatabaseManager(DatabaseSettings(url=SecretStr(database_url)))
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    app = make_app(db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        yield http


async def test_request_session_commits_and_reads_back(client: httpx.AsyncClient) -> None:
    created = await client.post("/notes", json={"title": "hello"})
    assert created.status_code == 201
    fetched = await client.get(f"/notes/{created.json()['id']}")
    assert fetched.json()["title"] == "hello"


async def test_errors_become_problem_responses(client: httpx.AsyncClient) -> None:
    await client.post("/notes", json={"title": "dup"})
    duplicate = await client.post("/notes", json={"title": "dup"})
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert duplicate.json()["code"] == "DB_DUPLICATE"
    missing = await client.get(f"/notes/{uuid.uuid4()}")
    assert missing.status_code == 404


async def test_a_failing_commit_is_reported_before_the_response(client: httpx.AsyncClient) -> None:
    assert (await client.post("/notes/unflushed", json={"title": "late"})).status_code == 201
    again = await client.post("/notes/unflushed", json={"title": "late"})
    assert again.status_code == 409
    assert again.json()["code"] == "DB_DUPLICATE"


async def test_endpoint_failure_rolls_the_request_back(client: httpx.AsyncClient) -> None:
    failed = await client.post("/notes/then-fail", json={"title": "ghost"})
    assert failed.status_code == 500
    retry = await client.post("/notes", json={"title": "ghost"})
    assert retry.status_code == 201


async def test_lifespan_fails_fast_when_the_database_is_down() -> None:
    db = DatabaseManager(DatabaseSettings(url=SecretStr("postgresql://postgres@127.0.0.1:1/none")))
    lifespan = database_lifespan(db)
    with pytest.raises(DatabaseUnavailableError):
        async with lifespan(object()):
            pass
