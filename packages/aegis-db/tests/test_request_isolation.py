"""A request never runs in another request's transaction, whatever context the server gives it.

With ``session_dependency`` at FastAPI's default scope, a request's transaction is still open
while its response is sent; uvicorn starts a pipelined request in a copy of the context at
that moment (CPython gh-140947, uvicorn #2167), so the next request found the previous one's
unit of work and failed with ``TransactionStateError`` (another task's session): a 500.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoint's Annotated dependency,
# a name local to make_app, from the live annotations.
import itertools
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Annotated, Any, cast

import pytest
from fastapi import Depends, FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from aegis.db import DatabaseManager, DatabaseSettings, session_dependency
from aegis.testing import UVICORN_LOOPS, UVICORN_PROTOCOLS, http_request, uvicorn_server


def make_app(db: DatabaseManager) -> FastAPI:
    app = FastAPI()
    session_type = Annotated[AsyncSession, Depends(session_dependency(db))]  # default scope

    @app.get("/sessions")
    async def sessions(session: session_type) -> dict[str, Any]:
        await session.execute(text("SELECT 1"))
        return {"joined": db.current_session() is session}

    return app


@pytest.fixture
def db(tmp_path: Path) -> DatabaseManager:
    return DatabaseManager(DatabaseSettings(url=SecretStr(f"sqlite:///{tmp_path / 'db.sqlite'}")))


@pytest.mark.parametrize(
    ("loop", "http"), list(itertools.product(UVICORN_LOOPS, UVICORN_PROTOCOLS)), ids="-".join
)
def test_pipelined_requests_each_open_their_own_transaction(
    db: DatabaseManager, loop: str, http: str
) -> None:
    with uvicorn_server(make_app(db), loop=loop, http=http) as server, server.connect() as conn:
        conn.send(http_request("GET", "/sessions") * 6)  # one write
        answers = [conn.read_response() for _ in range(6)]
    assert [(answer.status, answer.json()) for answer in answers] == [(200, {"joined": True})] * 6


@pytest.mark.anyio
async def test_a_transaction_of_the_same_task_is_still_joined(db: DatabaseManager) -> None:
    dependency = session_dependency(db)
    async with db.transaction() as outer:
        sessions = cast("AsyncGenerator[AsyncSession, None]", dependency())
        assert await anext(sessions) is outer
        with pytest.raises(StopAsyncIteration):  # the request's end: leaves the joined scope
            await anext(sessions)
    await db.dispose()
