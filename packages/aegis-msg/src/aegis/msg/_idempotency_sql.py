"""Processed event ids in a SQL database (the ``outbox`` extra), for services without Redis."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import BigInteger, Column, MetaData, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from aegis.msg._idempotency import DEFAULT_LEASE, DEFAULT_TTL, Claim

_PROCESSING = "processing"
_DONE = "done"


class SqlIdempotencyStore:
    """Processed event ids in a table: an insert claims, a stale claim may be taken over.

    Times are stored as epoch milliseconds, so SQLite and PostgreSQL behave alike.
    :meth:`purge` deletes ids older than ``ttl``.

    Args:
        engine: the database.
        table_name: name of the table.
        metadata: metadata to define the table in (your application's, for migrations).
        ttl: seconds a processed id is kept by :meth:`purge`.
        lease: seconds a claim holds before another consumer may take the event over.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        table_name: str = "aegis_msg_processed",
        metadata: MetaData | None = None,
        ttl: float = DEFAULT_TTL,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.engine = engine
        self.ttl_ms = int(ttl * 1000)
        self.lease_ms = int(lease * 1000)
        self.table = Table(
            table_name,
            metadata if metadata is not None else MetaData(),
            Column("key", String(255), primary_key=True),
            Column("status", String(16), nullable=False),
            Column("owner", String(32), nullable=False),
            Column("updated_at_ms", BigInteger, nullable=False),
        )
        self._tokens: dict[str, str] = {}

    async def create_table(self) -> None:
        """Create the table if it is missing."""
        async with self.engine.begin() as connection:
            await connection.run_sync(self.table.create, checkfirst=True)

    async def claim(self, key: str) -> Claim:
        """Claim ``key``: ``NEW`` when this caller got it, else ``DONE`` or ``BUSY``."""
        token = uuid.uuid4().hex
        table = self.table
        for _ in range(3):  # the holder may release between our insert and select
            now = _now_ms()
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(
                        insert(table).values(
                            key=key, status=_PROCESSING, owner=token, updated_at_ms=now
                        )
                    )
            except IntegrityError:
                pass
            else:
                self._tokens[key] = token
                return Claim.NEW
            async with self.engine.begin() as connection:
                row = (
                    await connection.execute(
                        select(table.c.status, table.c.updated_at_ms).where(table.c.key == key)
                    )
                ).first()
                if row is None:
                    continue
                if row.status == _DONE:
                    return Claim.DONE
                if row.updated_at_ms > now - self.lease_ms:
                    return Claim.BUSY
                taken = await connection.execute(
                    update(table)
                    .where(table.c.key == key, table.c.updated_at_ms == row.updated_at_ms)
                    .values(owner=token, updated_at_ms=now)
                )
                if taken.rowcount == 1:
                    self._tokens[key] = token
                    return Claim.NEW
                return Claim.BUSY
        return Claim.BUSY

    async def complete(self, key: str) -> None:
        """Record ``key`` as processed."""
        self._tokens.pop(key, None)
        async with self.engine.begin() as connection:
            await connection.execute(
                update(self.table)
                .where(self.table.c.key == key)
                .values(status=_DONE, updated_at_ms=_now_ms())
            )

    async def release(self, key: str) -> None:
        """Drop this caller's claim on ``key`` (only if it still holds it)."""
        token = self._tokens.pop(key, None)
        if token is None:
            return
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(self.table).where(
                    self.table.c.key == key,
                    self.table.c.owner == token,
                    self.table.c.status == _PROCESSING,
                )
            )

    async def purge(self) -> int:
        """Delete processed ids older than ``ttl``; return how many went."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                delete(self.table).where(
                    self.table.c.status == _DONE,
                    self.table.c.updated_at_ms < _now_ms() - self.ttl_ms,
                )
            )
        return int(result.rowcount)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
