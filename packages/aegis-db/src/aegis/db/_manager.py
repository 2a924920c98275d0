"""DatabaseManager: engines, sessions, transactions with savepoints, on-commit hooks, retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TypeVar

from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aegis.db._consistency import ReadYourWrites
from aegis.db._engines import create_engine
from aegis.db._errors import TransactionStateError, translating_errors
from aegis.db._metrics import replica_metrics
from aegis.db._replicas import ReplicaSet
from aegis.db._retry import RetryPolicy, call_with_retry
from aegis.db._session import (
    WROTE,
    AegisSession,
    OnCommitCallback,
    Propagation,
    UnitOfWork,
    in_transaction,
    run_callbacks,
)
from aegis.db._settings import DatabaseSettings, async_url

T = TypeVar("T")

logger = logging.getLogger("aegis.db")


class DatabaseManager:
    """Owns the engines and hands out sessions and transactions.

    One per service, created at start-up and disposed at shutdown. Every session it opens
    is an ``AsyncSession`` over :class:`AegisSession` with ``expire_on_commit=False``.

    With ``read_replica_urls``, read-only sessions read on a replica in rotation, after the
    replica has replayed the writes of their scope (:meth:`read_your_writes`); replicas that
    are down or lag too far leave the rotation, and the lag is exported as
    ``aegis_db_replica_lag_seconds`` / ``_bytes`` on ``registry`` (the default one if None).

    Example:
        >>> db = DatabaseManager(DatabaseSettings(url="postgresql://app@db/main"))
        >>> async with db.transaction() as session:
        ...     session.add(User(email="kim@example.com"))
        >>> await db.dispose()
    """

    def __init__(
        self, settings: DatabaseSettings, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.engine = create_engine(async_url(settings.url), settings)
        self.replica_engines = [
            create_engine(async_url(url), settings) for url in settings.read_replica_urls
        ]
        self.replicas: ReplicaSet | None = (
            ReplicaSet(
                self.engine,
                self.replica_engines,
                settings,
                replica_metrics(registry),
                # Where the primary's WAL stands, asked after each commit that wrote: on
                # connections of their own, with no ping and no BEGIN, one round trip.
                position_engine=create_engine(
                    self.engine.url,
                    settings,
                    pool_pre_ping=False,
                    isolation_level="AUTOCOMMIT",
                    pool_size=2,
                )
                if self.engine.dialect.name == "postgresql"
                else None,
            )
            if self.replica_engines
            else None
        )
        """The replicas' rotation and lag (``None`` without ``read_replica_urls``)."""
        self._sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=AegisSession
        )
        self._current: ContextVar[UnitOfWork | None] = ContextVar(
            f"aegis_db_unit_{id(self)}", default=None
        )
        self._writes = ReadYourWrites(f"aegis_db_writes_{id(self)}")

    @property
    def dialect_name(self) -> str:
        """The primary's SQL dialect: ``postgresql`` or ``sqlite``."""
        return self.engine.dialect.name

    def current_session(self) -> AsyncSession | None:
        """The session of the transaction open in this task, or ``None``."""
        unit = self._current.get()
        return unit.session if unit is not None else None

    @contextmanager
    def _without_foreign_transaction(self) -> Iterator[None]:
        """Leave out of the block a transaction that another task opened (a request's start).

        A server may start a request in a context that still holds an earlier request's open
        unit of work (uvicorn and pipelined requests, see aegis.core.context): the request
        opens its own instead of failing on a session that belongs to another task. A unit of
        this task (a middleware's transaction around the app) is kept, to be joined.
        """
        unit = self._current.get()
        if unit is None or unit.owner is None or unit.owner is asyncio.current_task():
            yield
            return
        token, flag = self._current.set(None), in_transaction.set(False)
        try:
            yield
        finally:
            in_transaction.reset(flag)
            self._current.reset(token)

    @asynccontextmanager
    async def session(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """Open a unit of work: commit when the block succeeds, roll back when it raises.

        Inside an open transaction of this task it joins that transaction (reads inside a
        write transaction see its writes on the primary). ``read_only=True`` outside one goes
        to a read replica when any are configured.

        Raises:
            aegis.core.errors.AegisError: database errors from the block or the commit,
                translated (``DuplicateError``, ``DatabaseUnavailableError`` ...).
        """
        async with self.transaction(propagation=Propagation.REQUIRED, read_only=read_only) as s:
            yield s

    @asynccontextmanager
    async def transaction(
        self,
        *,
        propagation: Propagation | str = Propagation.NESTED,
        isolation_level: str | None = None,
        read_only: bool = False,
    ) -> AsyncIterator[AsyncSession]:
        """Open a transaction, or a SAVEPOINT inside the one already open in this task.

        Args:
            propagation: inside an open transaction: ``nested`` (SAVEPOINT, default),
                ``required`` (join it) or ``requires_new`` (independent transaction).
            isolation_level: for a new transaction, e.g. ``"SERIALIZABLE"``.
            read_only: route a new transaction to a read replica, if configured.

        Raises:
            TransactionStateError: a joined inner scope failed and the block went on to
                commit; the open transaction belongs to another task; or ``isolation_level``
                was given for a scope that cannot change it.
        """
        propagation = Propagation(propagation)
        unit = self._current.get()
        if unit is None or propagation is Propagation.REQUIRES_NEW:
            async with self._new_unit(read_only=read_only, isolation_level=isolation_level) as s:
                yield s
            return
        unit.check_owner()
        if isolation_level is not None:
            raise TransactionStateError(
                "isolation_level applies to a new transaction only; one is already open here"
            )
        if propagation is Propagation.REQUIRED:
            try:
                # Translated here too: a joined scope raises what a scope of its own would.
                with translating_errors():
                    yield unit.session
            except BaseException:
                unit.rollback_only = True
                raise
            return
        unit.callbacks.append([])
        try:
            with translating_errors():
                async with unit.session.begin_nested():
                    yield unit.session
        except BaseException:
            unit.callbacks.pop()
            raise
        inner = unit.callbacks.pop()
        unit.callbacks[-1].extend(inner)

    def read_your_writes(self) -> AbstractContextManager[None]:
        """Open a read-your-writes scope: its reads see its own commits, on a replica or not.

        After a transaction of the scope commits a write, the scope's read-only sessions use a
        replica only once it has replayed that commit (the primary's WAL position after the
        commit, compared with ``pg_last_wal_replay_lsn()``), waiting up to
        ``replica_wait_timeout`` and then reading on the primary. Tasks and threads started
        inside share the scope. ``ReadYourWritesMiddleware`` opens one per HTTP request or
        WebSocket; open one per job in a worker. Outside every scope the whole manager is one
        scope: reads wait for the newest write any task committed. PostgreSQL only (on
        SQLite, replicas are used in turn).

        Example:
            >>> with db.read_your_writes():
            ...     async with db.transaction() as session:
            ...         session.add(order)
            ...     async with db.session(read_only=True) as session:
            ...         await session.get(Order, order.id)  # found, on a replica or the primary
        """
        return self._writes.scope()

    @asynccontextmanager
    async def _new_unit(
        self, *, read_only: bool, isolation_level: str | None
    ) -> AsyncIterator[AsyncSession]:
        replicas = self.replicas if read_only else None
        with translating_errors():
            if replicas is not None:
                session = await replicas.read_session(
                    self._sessionmaker, self._writes.current(), isolation_level
                )
            else:
                session = self._sessionmaker(bind=self.engine)
        unit = UnitOfWork(session=session, owner=asyncio.current_task())
        token = self._current.set(unit)
        flag = in_transaction.set(True)
        try:
            with translating_errors():
                if isolation_level is not None and replicas is None:
                    await session.connection(execution_options={"isolation_level": isolation_level})
                try:
                    yield session
                except BaseException as exc:
                    if replicas is not None:
                        replicas.failed(session, exc)
                    await self._rollback_quietly(session)
                    raise
                if unit.rollback_only:
                    await self._rollback_quietly(session)
                    raise TransactionStateError(
                        "an inner scope that joined this transaction failed, so nothing was "
                        "committed; let the error propagate, or use a nested (SAVEPOINT) scope "
                        "to recover from it"
                    )
                await session.commit()
        finally:
            in_transaction.reset(flag)
            self._current.reset(token)
            await session.close()
        if not read_only and self.replicas is not None and session.info.get(WROTE):
            await self.replicas.remember_commit(self._writes.current())
        await run_callbacks(unit.callbacks[0])

    @staticmethod
    async def _rollback_quietly(session: AsyncSession) -> None:
        try:
            await session.rollback()
        except Exception:
            # The original error matters more; a lost connection often fails its rollback too.
            logger.warning("rollback after a failed transaction also failed", exc_info=True)

    def on_commit(self, callback: OnCommitCallback) -> None:
        """Run ``callback`` (plain or async) after the outermost transaction commits.

        Dropped when the transaction, or the SAVEPOINT it was registered in, rolls back.
        A failing callback is logged; the others still run (the data is committed already).

        Raises:
            TransactionStateError: no transaction is open in this task.
        """
        unit = self._current.get()
        if unit is None:
            raise TransactionStateError("on_commit() needs an open transaction in this task")
        unit.check_owner()
        unit.callbacks[-1].append(callback)

    async def run_transaction(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        retries: int = 3,
        isolation_level: str | None = None,
        base_delay: float = 0.02,
        max_delay: float = 1.0,
        read_only: bool = False,
    ) -> T:
        """Run ``work(session)`` in a new transaction, re-running it all on transient errors.

        Serialization failures, deadlocks, lost connections, a database that cannot be
        reached (a primary failing over) and SQLite's busy database start a fresh transaction
        after a jittered exponential backoff, at most ``retries`` times; then the last error
        is raised (``ConcurrentUpdateError``, ``DatabaseUnavailableError``). Inside an open
        transaction ``work`` joins it, as ``propagation="required"`` does, and is not retried
        here: only the outermost transaction can be re-run.

        ``read_only=True`` reads on a replica, as ``session(read_only=True)`` does; a replica
        that fails mid-read leaves the rotation, so the next attempt reads elsewhere.
        """
        if self._current.get() is not None:
            # Joined like propagation="required": the same translated errors, and a failure
            # dooms the open transaction instead of surfacing later as a raw SQLAlchemy error.
            async with self.transaction(propagation=Propagation.REQUIRED) as session:
                return await work(session)

        async def attempt() -> T:
            async with self.transaction(
                isolation_level=isolation_level, read_only=read_only
            ) as session:
                return await work(session)

        policy = RetryPolicy(retries=retries, base_delay=base_delay, max_delay=max_delay)
        return await call_with_retry(attempt, policy, name=getattr(work, "__qualname__", "work"))

    async def health_check(self, *, timeout: float = 5.0) -> bool:
        """Whether the primary answers ``SELECT 1`` within ``timeout`` seconds.

        Replicas are checked too (lag, rotation) but do not decide the answer: while one is
        down or behind, reads go to the others or the primary, and the service stays up.

        .. versionchanged:: 0.1
           A replica that does not answer no longer makes the check fail.
        """
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            logger.warning("database health check failed", exc_info=True)
            return False
        if self.replicas is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self.replicas.check()
            except TimeoutError:
                logger.warning("the read replica check did not finish within %gs", timeout)
        return True

    async def dispose(self) -> None:
        """Stop the replica check and close every pooled connection of every engine."""
        if self.replicas is not None:
            await self.replicas.close()
        for engine in [self.engine, *self.replica_engines]:
            await engine.dispose()
