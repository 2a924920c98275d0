"""Read replicas of one manager: which are in rotation, how far behind, which one a read uses.

A background task (started by the first read-only session) checks every replica each
``replica_check_interval``: a replica that does not answer, or lags more than
``replica_max_lag_seconds``, leaves the rotation and comes back when a check finds it healthy.
A read that fails to connect takes its replica out at once. On PostgreSQL a read that must see
its scope's write checks the replica's replay position first and waits up to
``replica_wait_timeout`` before it goes to the primary.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aegis.core.errors import DatabaseUnavailableError
from aegis.db._consistency import WriteMark
from aegis.db._errors import UNAVAILABLE_SQLSTATES, sqlstate_of
from aegis.db._metrics import ReplicaMetrics
from aegis.db._settings import DatabaseSettings

logger = logging.getLogger("aegis.db")

# A promoted replica (no longer in recovery) holds everything the primary had: its own
# insert position counts as replayed.
_REPLAYED = text(
    "SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_insert_lsn() END, '0/0')::bigint"
)
_PRIMARY_POSITION = text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery(), "
    "pg_wal_lsn_diff(coalesce(pg_last_wal_replay_lsn(), '0/0'), '0/0')::bigint"
)
_PING = text("SELECT 1")
# The primary's WAL insert position after a commit: at or beyond the commit record, even with
# synchronous_commit off (the write position may still be behind it then).
_COMMIT_POSITION = text("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint")
_FIRST_POLL_SECONDS = 0.002
_MAX_POLL_SECONDS = 0.05


def replica_label(url: URL) -> str:
    """``host:port/database`` of a replica URL (the socket directory for a unix socket)."""
    host = url.host or str(url.query.get("host", "localhost"))
    port = f":{url.port}" if url.port else ""
    return f"{host}{port}/{url.database or ''}"


@dataclass
class Replica:
    """One read replica: its engine, its place in the rotation and its last measured lag."""

    engine: AsyncEngine
    label: str
    in_rotation: bool = True
    reason: str = ""
    """Why it is out of rotation (empty while in)."""
    replayed: int = 0
    """The highest WAL position it was seen to have replayed (PostgreSQL)."""
    lag_seconds: float = 0.0
    lag_bytes: int = 0


class ReplicaSet:
    """The replicas of one :class:`~aegis.db.DatabaseManager` and the reads routed to them."""

    def __init__(
        self,
        primary: AsyncEngine,
        engines: Sequence[AsyncEngine],
        settings: DatabaseSettings,
        metrics: ReplicaMetrics,
        *,
        position_engine: AsyncEngine | None = None,
    ) -> None:
        self.primary = primary
        self._position_engine = position_engine or primary
        self.replicas = [
            Replica(engine=engine, label=replica_label(engine.url)) for engine in engines
        ]
        self.settings = settings
        self.postgres = primary.dialect.name == "postgresql"
        self._metrics = metrics
        self._turn = itertools.count()
        # (monotonic time, primary WAL position) at each check, for the lag in seconds.
        samples = math.ceil(settings.replica_max_lag_seconds / settings.replica_check_interval)
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=samples + 2)
        self._monitor: asyncio.Task[None] | None = None
        for replica in self.replicas:
            metrics.in_rotation.labels(replica.label).set(1)

    # -- routing -------------------------------------------------------------------------

    def in_turn(self) -> list[Replica]:
        """The replicas in rotation, starting with the next one's turn (round robin)."""
        ready = [replica for replica in self.replicas if replica.in_rotation]
        if not ready:
            return []
        start = next(self._turn) % len(ready)
        return ready[start:] + ready[:start]

    async def read_session(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        mark: WriteMark,
        isolation_level: str | None,
    ) -> AsyncSession:
        """A session for a read-only unit: on a replica that holds ``mark``, else the primary.

        Connects at once, so a replica that is down is taken out of rotation here and the
        read goes to the next one (or the primary) instead of failing.
        """
        self.ensure_monitor()
        needed = mark.lsn if self.postgres else 0
        deadline: float | None = None
        delay = _FIRST_POLL_SECONDS
        while True:
            candidates = [] if mark.needs_primary() else self.in_turn()
            if not candidates:
                route = "primary_own_write" if mark.needs_primary() else "primary_no_replica"
                return await self._on_primary(sessionmaker, route, isolation_level)
            for replica in candidates:
                session = await self._replica_session(sessionmaker, replica, needed)
                if session is None:
                    continue  # down: taken out, try the next one
                if isinstance(session, AsyncSession):
                    waited = deadline is not None
                    if isolation_level is not None or waited:
                        # The check ran in the session's transaction; a new one takes its
                        # snapshot after the replay (and with the requested isolation).
                        await session.rollback()
                        await session.connection(execution_options=_isolation(isolation_level))
                    self._metrics.read_sessions.labels("replica").inc()
                    return session
            if all(not replica.in_rotation for replica in candidates):
                continue  # every candidate went down: the loop ends on the primary
            now = time.monotonic()
            deadline = now + self.settings.replica_wait_timeout if deadline is None else deadline
            if now >= deadline:
                return await self._on_primary(sessionmaker, "primary_own_write", isolation_level)
            await asyncio.sleep(min(delay, deadline - now))
            delay = min(delay * 2, _MAX_POLL_SECONDS)

    async def _replica_session(
        self, sessionmaker: async_sessionmaker[AsyncSession], replica: Replica, needed: int
    ) -> AsyncSession | bool | None:
        """The open session on ``replica`` if it replayed ``needed``, False if not yet.

        None if the replica is down; it leaves the rotation then.
        """
        session = sessionmaker(bind=replica.engine)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                if needed and replica.replayed < needed:
                    replica.replayed = max(replica.replayed, int(await session.scalar(_REPLAYED)))
                else:
                    await session.connection()
        except Exception as exc:  # any failure to reach it takes it out
            await _close_quietly(session)
            self.take_out(replica, f"a read could not use it ({type(exc).__name__}: {exc})")
            return None
        if replica.replayed < needed:
            await session.close()
            return False
        return session

    async def _on_primary(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        route: str,
        isolation_level: str | None,
    ) -> AsyncSession:
        self._metrics.read_sessions.labels(route).inc()
        session = sessionmaker(bind=self.primary)
        if isolation_level is not None:
            await session.connection(execution_options=_isolation(isolation_level))
        return session

    def failed(self, session: AsyncSession, error: BaseException) -> None:
        """Take the replica ``session`` read on out of rotation if ``error`` says it is gone."""
        for replica in self.replicas:
            if session.bind is replica.engine and _lost_connection(error):
                self.take_out(replica, f"a read lost its connection ({type(error).__name__})")

    async def remember_commit(self, mark: WriteMark) -> None:
        """Record in ``mark`` where the primary's WAL stood after a commit (PostgreSQL)."""
        if not self.postgres:
            return
        error: Exception | None = None
        for _attempt in range(2):  # a pooled connection may have died since its last use
            try:
                async with (
                    asyncio.timeout(self.settings.connect_timeout),
                    self._position_engine.connect() as connection,
                ):
                    position = (await connection.execute(_COMMIT_POSITION)).scalar_one()
            except Exception as exc:  # logged below if the second try fails too
                error = exc
            else:
                mark.record(int(position))
                return
        # The commit stands; only the primary is sure to hold it until any replica within
        # the lag bound has replayed it.
        mark.record_unknown(self.settings.replica_max_lag_seconds)
        logger.warning(
            "could not read the primary's WAL position after a commit; this scope reads on "
            "the primary for %gs",
            self.settings.replica_max_lag_seconds,
            exc_info=error,
        )

    def take_out(self, replica: Replica, reason: str) -> None:
        """Leave ``replica`` out of the rotation until a check finds it healthy."""
        if replica.in_rotation:
            logger.warning(
                "read replica %s left the rotation: %s; reads go elsewhere", replica.label, reason
            )
        replica.in_rotation, replica.reason = False, reason
        self._metrics.in_rotation.labels(replica.label).set(0)

    def _put_back(self, replica: Replica) -> None:
        if not replica.in_rotation:
            logger.warning("read replica %s is back in the rotation", replica.label)
        replica.in_rotation, replica.reason = True, ""
        self._metrics.in_rotation.labels(replica.label).set(1)

    # -- checks --------------------------------------------------------------------------

    async def check(self) -> None:
        """Measure every replica once: answer and lag; take out or put back accordingly."""
        primary = await self._primary_position() if self.postgres else None
        now = time.monotonic()
        if primary is not None:
            self._samples.append((now, primary))
        for replica in self.replicas:
            try:
                await self._measure(replica, primary, now)
            except Exception as exc:  # down, whatever the way
                self.take_out(replica, f"it does not answer ({type(exc).__name__}: {exc})")
                continue
            if replica.lag_seconds > self.settings.replica_max_lag_seconds:
                self.take_out(
                    replica,
                    f"it lags {replica.lag_seconds:.1f}s behind the primary "
                    f"(replica_max_lag_seconds={self.settings.replica_max_lag_seconds:g})",
                )
            else:
                self._put_back(replica)

    async def _measure(self, replica: Replica, primary: int | None, now: float) -> None:
        async with (
            asyncio.timeout(self.settings.connect_timeout),
            replica.engine.connect() as connection,
        ):
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            if not self.postgres:
                await connection.execute(_PING)
                return
            in_recovery, replayed = (await connection.execute(_REPLICA_STATE)).one()
        replayed = int(replayed)
        replica.replayed = max(replica.replayed, replayed)
        if not in_recovery:  # promoted, or the primary itself: nothing to replay
            replica.lag_bytes, replica.lag_seconds = 0, 0.0
        else:
            replica.lag_bytes = max(0, primary - replayed) if primary is not None else 0
            replica.lag_seconds = self._seconds_behind(replayed, now)
        self._metrics.lag_bytes.labels(replica.label).set(replica.lag_bytes)
        self._metrics.lag_seconds.labels(replica.label).set(replica.lag_seconds)

    def _seconds_behind(self, replayed: int, now: float) -> float:
        """How long ago the primary was first seen at a position beyond ``replayed``."""
        for seen_at, position in self._samples:
            if position > replayed:
                return now - seen_at
        return 0.0

    async def _primary_position(self) -> int | None:
        try:
            async with (
                asyncio.timeout(self.settings.connect_timeout),
                self._position_engine.connect() as connection,
            ):
                return int((await connection.execute(_PRIMARY_POSITION)).scalar_one())
        except Exception:
            logger.debug("the replica check could not read the primary's position", exc_info=True)
            return None

    def ensure_monitor(self) -> None:
        """Start the background check in the running loop unless it runs there already."""
        loop = asyncio.get_running_loop()
        task = self._monitor
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._monitor = loop.create_task(self._watch(), name="aegis-db replica check")

    async def _watch(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                logger.exception("the read replica check failed")
            await asyncio.sleep(self.settings.replica_check_interval)

    async def close(self) -> None:
        """Stop the background check and close the connections it and commits used."""
        task, self._monitor = self._monitor, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # (A task of another loop, gone or elsewhere, dies with that loop.)
        if self._position_engine is not self.primary:
            await self._position_engine.dispose()


def _lost_connection(error: BaseException | None) -> bool:
    """Whether ``error`` (or a cause of it) is a lost or refused database connection."""
    while error is not None:
        if isinstance(error, DatabaseUnavailableError):
            return True
        if isinstance(error, sa_exc.DBAPIError) and (
            error.connection_invalidated or sqlstate_of(error) in UNAVAILABLE_SQLSTATES
        ):
            return True
        error = error.__cause__
    return False


def _isolation(isolation_level: str | None) -> dict[str, str] | None:
    return {"isolation_level": isolation_level} if isolation_level is not None else None


async def _close_quietly(session: AsyncSession) -> None:
    try:
        await session.close()
    except Exception:
        logger.debug("closing a session on a failed replica failed too", exc_info=True)
