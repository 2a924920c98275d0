"""FastAPI / Starlette glue: a session per request, read-your-writes per client, a lifespan."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aegis.core.errors import DatabaseUnavailableError
from aegis.db._consistency import WriteMark
from aegis.db._manager import DatabaseManager

# The ASGI interface spelled out (asgiref's names) so the middleware needs no web framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


READ_AFTER_COOKIE = "aegis_read_after"
"""The cookie that carries a client's last write to its next requests."""
_PRIMARY = "primary"
"""Cookie value: a write whose WAL position is unknown; read on the primary while it lives."""
_MAX_POSITION_DIGITS = 20  # a WAL position is a 64-bit number


class ReadYourWritesMiddleware:
    """Pure ASGI middleware: a client's requests see the client's own writes, on any replica.

    Each HTTP request and WebSocket is a read-your-writes scope: after the request commits a
    write, its read-only sessions read on a replica only once the replica has replayed that
    write (else on the primary). The scope also reaches the client's next requests: the
    response of a request that wrote sets the cookie ``cookie`` to the primary's WAL position
    after the write, and a request that sends it back reads only on a replica that has
    replayed that position. So a client that creates something and reads it back in its next
    request never sees it missing, while other clients' reads are not held back. The cookie
    lives ``replica_max_lag_seconds`` plus twice ``replica_check_interval`` (rounded up): by
    then every replica in rotation has replayed the write, or has left the rotation for
    lagging. Clients that keep no cookies (most service-to-service calls) get one scope per
    request. A made-up cookie only sends its own client's reads to the primary, after waiting
    up to ``replica_wait_timeout``; a malformed one is ignored.

    Args:
        app: the ASGI application.
        db: the manager whose writes are followed.
        cookie: the cookie's name; give each service its own where several share a domain.
            ``None``: no cookie, each request is a scope of its own.

    Example:
        >>> app = ReadYourWritesMiddleware(app, db)
    """

    def __init__(
        self, app: ASGIApp, db: DatabaseManager, *, cookie: str | None = READ_AFTER_COOKIE
    ) -> None:
        self.app = app
        self.db = db
        self.cookie = cookie
        settings = db.settings
        self._max_age = math.ceil(
            settings.replica_max_lag_seconds + 2 * settings.replica_check_interval
        )
        self._prefix = f"{cookie}=".encode() if cookie else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        mark = WriteMark()
        if self.cookie is not None:
            self._carry(scope, mark)
        with self.db._writes.scope(mark):
            if scope["type"] != "http" or self.cookie is None:
                await self.app(scope, receive, send)
                return
            before = (mark.lsn, mark.primary_until)

            async def send_with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start" and (
                    (mark.lsn, mark.primary_until) != before
                ):
                    headers = [*message.get("headers", ()), self._set_cookie(scope, mark)]
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_with_cookie)

    def _carry(self, scope: Scope, mark: WriteMark) -> None:
        """Put the write the request's cookie names into ``mark``."""
        for name, value in scope.get("headers", ()):
            if name != b"cookie":
                continue
            for pair in value.split(b";"):
                part = pair.strip()
                if not part.startswith(self._prefix):
                    continue
                carried = part[len(self._prefix) :]
                if carried == _PRIMARY.encode():
                    mark.record_unknown(self.db.settings.replica_max_lag_seconds)
                elif carried.isdigit() and len(carried) <= _MAX_POSITION_DIGITS:
                    mark.record(int(carried))

    def _set_cookie(self, scope: Scope, mark: WriteMark) -> tuple[bytes, bytes]:
        if mark.needs_primary():
            value = _PRIMARY
            age = math.ceil(mark.primary_until - time.monotonic())
        else:
            value, age = str(mark.lsn), self._max_age
        cookie = f"{self.cookie}={value}; Max-Age={age}; Path=/; HttpOnly; SameSite=Lax"
        if scope.get("scheme") == "https":
            cookie += "; Secure"
        return b"set-cookie", cookie.encode("latin-1")


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
