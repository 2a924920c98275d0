"""FastAPI / Starlette glue: a session per request, a read-your-writes scope, a lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aegis.core.errors import DatabaseUnavailableError
from aegis.db._manager import DatabaseManager

# The ASGI interface spelled out (asgiref's names) so the middleware needs no web framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ReadYourWritesMiddleware:
    """Pure ASGI middleware: each HTTP request and WebSocket is one read-your-writes scope.

    After the request commits a write, its read-only sessions read on a replica only once the
    replica has replayed that write (else on the primary), so a client never sees its own
    change disappear; other requests are not held back by it. The scope is opened at the
    start of every request and reset when it ends, whatever context the server reuses.

    Example:
        >>> app = ReadYourWritesMiddleware(app, db)
    """

    def __init__(self, app: ASGIApp, db: DatabaseManager) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        with self.db.read_your_writes():
            await self.app(scope, receive, send)


def session_dependency(
    db: DatabaseManager, *, read_only: bool = False
) -> Callable[[], AsyncIterator[AsyncSession]]:
    """Return a FastAPI dependency that yields one session per request.

    ``read_only=True`` gives a session on a read replica (see
    :meth:`DatabaseManager.session`), for endpoints that only read.

    The request's work commits when the endpoint returns and rolls back when it raises.
    Each request opens its own transaction, even when the server starts it in a context that
    still holds an earlier request's (uvicorn and pipelined requests).
    Declare it with ``scope="function"`` so the commit happens *before* the response is
    sent, and a failing commit becomes an error response instead of a lost write::

        get_session = session_dependency(db)
        Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


        @app.post("/users")
        async def create_user(body: UserIn, session: Session) -> UserOut: ...
    """

    async def get_session() -> AsyncIterator[AsyncSession]:
        # Never another request's transaction: with the default scope it is still open while
        # its response is sent, when uvicorn starts a pipelined request in a copy of the context.
        with db._without_foreign_transaction():
            async with db.session(read_only=read_only) as session:
                yield session

    return get_session


def database_lifespan(
    db: DatabaseManager, *, check_on_startup: bool = True
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """Return a lifespan for ``FastAPI(lifespan=...)`` / ``Starlette(lifespan=...)``.

    On start-up it checks that the database answers (``check_on_startup``), so a service
    with a wrong URL fails at once instead of at its first request; on shutdown it closes
    every pooled connection.

    Raises:
        DatabaseUnavailableError: at start-up, when the database does not answer.
    """

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if check_on_startup and not await db.health_check():
            await db.dispose()
            raise DatabaseUnavailableError("the database does not answer at start-up")
        try:
            yield
        finally:
            await db.dispose()

    return lifespan
