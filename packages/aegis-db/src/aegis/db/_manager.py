"""DatabaseManager: engines, sessions, transactions with savepoints, on-commit hooks, retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from aegis.core.errors import ConfigurationError
from aegis.db._consistency import ReadYourWrites
from aegis.db._constraint_fields import remember_tables
from aegis.db._errors import (
    ConnectFailure,
    TransactionStateError,
    translating_errors,
    unstorable_parameter_error,
)
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


def _configure_sqlite(engine: AsyncEngine, url: URL, transaction_mode: str) -> None:
    """Let SQLAlchemy own BEGIN (so SAVEPOINTs nest), enforce foreign keys, use WAL on files."""
    begin = f"BEGIN {transaction_mode}"
    file_database = url.database not in {None, "", ":memory:"}

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # The sqlite3 driver's legacy mode skips BEGIN before SELECT and SAVEPOINT, which
        # breaks savepoints and repeatable reads (SQLAlchemy docs, "sqlite_transactions").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if file_database:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _connect_or_report(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
    """Open a driver connection; a server that never answered becomes a transient DBAPI error.

    asyncpg raises plain ``OSError`` when it cannot connect, which SQLAlchemy passes through
    unwrapped; as a DBAPI ``OperationalError`` it is recognisably the database's, without
    mistaking the application's own network errors for an unavailable database. That error,
    and a driver error without a SQLSTATE (no host of a multi-host URL is the primary yet),
    carry :class:`ConnectFailure` in their cause chain, so ``run_transaction`` tries again.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        failure = _connect_failure(exc)
        raise dialect.loaded_dbapi.OperationalError(str(failure)) from failure
    except dialect.loaded_dbapi.Error as exc:
        if getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None):
            raise  # the server answered: a wrong password, a missing database
        failure = _connect_failure(exc)
        raise dialect.loaded_dbapi.OperationalError(str(failure)) from failure


def _connect_failure(error: BaseException) -> ConnectFailure:
    failure = ConnectFailure(f"cannot connect to the database: {type(error).__name__}")
    failure.__cause__ = error
    return failure


# How to install each driver a dialect loads: aegis-db's extras where it declares one.
_DRIVER_INSTALLS = {
    "asyncpg": "pip install 'aegis-db[postgres]'",
    "aiosqlite": "pip install 'aegis-db[sqlite]'",
    "psycopg": "pip install 'psycopg[binary]'",
}


def _missing_driver(url: URL, error: ImportError) -> ConfigurationError:
    """The error for a database URL whose driver is not installed, naming what to install."""
    driver = (error.name or "").partition(".")[0] or url.get_driver_name()
    install = _DRIVER_INSTALLS.get(driver, f"pip install {driver}")
    return ConfigurationError(
        f"the database URL ({url.drivername}://) needs the {driver} driver, which is not "
        f"installed: {install}",
        details={"setting": "url", "driver": driver},
    )


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
        self.engine = self._create_engine(async_url(settings.url))
        self.replica_engines = [
            self._create_engine(async_url(url)) for url in settings.read_replica_urls
        ]
        self.replicas: ReplicaSet | None = (
            ReplicaSet(self.engine, self.replica_engines, settings, replica_metrics(registry))
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

    def _create_engine(self, url: URL) -> AsyncEngine:
        try:
            engine = create_async_engine(url, **self.settings.engine_options(url))
        except ImportError as exc:
            raise _missing_driver(url, exc) from exc
        event.listen(engine.sync_engine, "do_connect", _connect_or_report)
        event.listen(engine.sync_engine, "handle_error", unstorable_parameter_error)
        event.listen(engine.sync_engine, "handle_error", remember_tables)
        if url.get_backend_name() == "sqlite":
            _configure_sqlite(engine, url, self.settings.sqlite_transaction_mode)
        return engine

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
