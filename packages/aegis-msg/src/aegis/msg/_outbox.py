"""Transactional outbox on SQLAlchemy: write events with the business change, relay them later.

``Outbox.add`` inserts the encoded event in the caller's transaction, so the event exists exactly
when the change does. ``OutboxRelay`` publishes pending rows in insertion order and marks the
delivered ones sent; after a failure it holds back the later rows of the same aggregate (they
are sent again after the failed one), so an entity's events are never lost or left out of order.
The columns suit Debezium's outbox event router too (``id``, ``aggregatetype``, ``aggregateid``,
``type``, ``payload``, plus ``headers``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from opentelemetry import trace
from prometheus_client import CollectorRegistry
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from aegis.core import context
from aegis.core.errors import ConfigurationError
from aegis.msg._errors import PublishError
from aegis.msg._event import Event
from aegis.msg._metrics import MsgMetrics
from aegis.msg._outbox_metrics import RelayMetrics
from aegis.msg._registry import EventRegistry, default_registry
from aegis.msg._tracing import traceparent_of
from aegis.msg._transport import OutgoingRecord, Transport
from aegis.msg._wire import EventCodec

logger = logging.getLogger("aegis.msg")


class Outbox:
    """The outbox table and how events are written to it.

    Args:
        table_name: name of the table.
        metadata: SQLAlchemy metadata to define the table in (your application's, so your
            migrations create it); a private one by default.
        source: CloudEvents ``source`` for events that set none (default: ``service_name``).
        registry: event types (added classes are registered in it).

    Example:
        >>> outbox = Outbox(metadata=Base.metadata)
        >>> async with session.begin():
        ...     session.add(user)
        ...     await outbox.add(session, UserCreated(data=...))
    """

    def __init__(
        self,
        *,
        table_name: str = "aegis_outbox",
        metadata: MetaData | None = None,
        source: str | None = None,
        registry: EventRegistry | None = None,
    ) -> None:
        self.codec = EventCodec(
            registry or default_registry(), source=source or context.service_name.get() or "aegis"
        )
        self.table = Table(
            table_name,
            metadata if metadata is not None else MetaData(),
            Column(
                "position",
                BigInteger().with_variant(Integer, "sqlite"),
                primary_key=True,
                autoincrement=True,
            ),
            Column("id", String(64), nullable=False, unique=True),
            Column("aggregatetype", String(255), nullable=False),
            Column("aggregateid", String(255), nullable=True),
            Column("type", String(255), nullable=False),
            Column("payload", Text, nullable=False),
            Column("headers", Text, nullable=False),
            Column("topic", String(255), nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("sent_at", DateTime(timezone=True), nullable=True),
            Index(f"ix_{table_name}_pending", "sent_at", "position"),
        )

    async def create_table(self, engine: AsyncEngine) -> None:
        """Create the table if it is missing (applications with migrations create it there)."""
        async with engine.begin() as connection:
            await connection.run_sync(self.table.create, checkfirst=True)

    async def add(
        self,
        session: AsyncSession,
        event: Event[Any],
        *,
        topic: str | None = None,
        aggregatetype: str | None = None,
    ) -> None:
        """Write ``event`` to the outbox in ``session``'s transaction.

        Context (correlation, cause, trace) is captured now, as :meth:`EventPublisher.publish`
        would. ``aggregateid`` is the event's message key; ``aggregatetype`` defaults to the
        topic.

        Raises:
            ConfigurationError: no topic is given and the event class names none.
        """
        chosen = topic or event.topic
        if chosen is None:
            raise ConfigurationError(
                f"no topic for {event.type!r}: set `topic` on {type(event).__name__} or pass topic="
            )
        (record,) = self.codec.records(
            [event], lambda _: chosen, traceparent=traceparent_of(trace.get_current_span())
        )
        await session.execute(
            self.table.insert().values(
                id=event.id,
                aggregatetype=aggregatetype or chosen,
                aggregateid=None if record.key is None else record.key.decode(),
                type=event.type,
                payload=record.value.decode(),
                headers=json.dumps({name: value.decode() for name, value in record.headers}),
                topic=chosen,
                created_at=datetime.now(UTC),
            )
        )


def pending_batch(table: Table, size: int) -> Select[Any]:
    """The first ``size`` unsent rows in insertion order, locked, skipping rows locked elsewhere."""
    # Ordered by the whole pending index (sent_at is NULL in every row read, so the order is
    # position's): ordered by position alone, PostgreSQL walks the primary key and filters out
    # every sent row the table keeps, because it cannot tell that IS NULL fixes sent_at.
    return (
        select(table)
        .where(table.c.sent_at.is_(None))
        .order_by(table.c.sent_at, table.c.position)
        .limit(size)
        .with_for_update(skip_locked=True)
    )


@dataclass(frozen=True)
class RelayStatus:
    """What an :class:`OutboxRelay` has done: rows published, failed attempts, the last error."""

    published: int
    failed_attempts: int
    last_error: str | None


class OutboxRelay:
    """Publishes pending outbox rows in order; survives restarts and broker outages.

    Rows are read with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), so several relays can run
    side by side. A row is marked sent only after the broker acknowledged it; a failed batch is
    retried with exponential backoff up to ``max_backoff`` (a Kafka transport replaces a fenced
    or stuck producer client meanwhile, so the relay recovers from a broker restarted empty
    without a process restart). :meth:`health_check` fails while the oldest unsent row is
    older than ``max_pending_age``: add it to the service's readiness checks. The backlog is
    exported as ``aegis_msg_outbox_pending_events`` and
    ``aegis_msg_outbox_oldest_pending_age_seconds`` (counted at most once per ``interval``),
    with ``aegis_msg_outbox_relayed_total`` and ``aegis_msg_outbox_relay_failures_total``.

    Args:
        engine: the database holding the outbox.
        transport: where to publish.
        outbox: the table definition.
        batch_size: rows per round.
        interval: seconds between rounds when the outbox is empty.
        max_backoff: longest wait between rounds after failures.
        max_pending_age: seconds the oldest unsent row may wait before :meth:`health_check`
            fails.
        metrics_registry: Prometheus registry for ``aegis_msg_published_total`` and the
            ``aegis_msg_outbox_*`` metrics.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        *,
        outbox: Outbox,
        batch_size: int = 100,
        interval: float = 0.5,
        max_backoff: float = 30.0,
        max_pending_age: float = 60.0,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        if max_pending_age <= 0:
            raise ConfigurationError(f"max_pending_age must be > 0, got {max_pending_age}")
        self.engine = engine
        self.transport = transport
        self.outbox = outbox
        self.batch_size = batch_size
        self.interval = interval
        self.max_backoff = max_backoff
        self.max_pending_age = max_pending_age
        self._metrics = MsgMetrics.for_registry(metrics_registry)
        self._relay_metrics = RelayMetrics(self._metrics, outbox.table, interval)
        self._status = RelayStatus(0, 0, None)
        self._rounds_started = 0
        self._rounds_finished = 0
        """The highest number of a finished round (rounds are numbered as they start)."""
        self._attempted = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def status(self) -> RelayStatus:
        """The counts so far and the last error (``None`` once a round succeeds)."""
        return self._status

    async def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest unsent row was written; ``None`` when every row is sent."""
        table = self.outbox.table
        query = select(func.min(table.c.created_at)).where(table.c.sent_at.is_(None))
        async with self.engine.connect() as connection:
            oldest: datetime | None = (await connection.execute(query)).scalar_one()
        if oldest is None:
            return None
        if oldest.tzinfo is None:  # SQLite keeps no time zone; the rows were written in UTC
            oldest = oldest.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    async def health_check(self) -> dict[str, object]:
        """A readiness check: pass while no unsent row is older than ``max_pending_age``.

        It fails while events cannot get out (a broker down, a relay stuck) and passes again
        once the backlog drains. The details carry the age and the relay's last error.

        Raises:
            PublishError: the oldest unsent row is older than ``max_pending_age`` seconds.
        """
        age = await self.oldest_pending_age()
        details: dict[str, object] = {
            "oldest_pending_seconds": None if age is None else round(age, 3),
            "max_pending_age": self.max_pending_age,
            "last_error": self._status.last_error,
        }
        if age is not None and age > self.max_pending_age:
            raise PublishError(
                f"the oldest unsent outbox event waits for {age:.1f} s "
                f"(more than {self.max_pending_age:g} s): {self._status.last_error or 'no error'}",
                retriable=True,
                details=details,
            )
        return details

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; return how many were delivered and marked sent.

        A round that raises (the database unreachable, say) is recorded in :attr:`status` and
        counted in the failure metric before the exception propagates.
        """
        self._rounds_started += 1
        round_number = self._rounds_started
        try:
            sent, error = await self._relay_batch()
        except Exception as exc:
            self._relay_metrics.round_failed(exc)
            await self._record(round_number, 0, f"{type(exc).__name__}: {exc}")
            raise
        await self._record(round_number, sent, error)
        return sent

    async def _relay_batch(self) -> tuple[int, str | None]:
        """Publish and mark one batch; return how many were sent and the first delivery error."""
        table = self.outbox.table
        async with self.engine.begin() as connection:
            rows = (await connection.execute(pending_batch(table, self.batch_size))).all()
            records = [
                OutgoingRecord(
                    row.topic,
                    row.payload.encode(),
                    None if row.aggregateid is None else row.aggregateid.encode(),
                    [(name, value.encode()) for name, value in json.loads(row.headers).items()],
                    row.id,
                )
                for row in rows
            ]
            results = await self.transport.send_batch(records) if records else []
            blocked: set[str | None] = set()
            sent: list[int] = []
            for row, result in zip(rows, results, strict=True):
                if result.error is not None:
                    blocked.add(row.aggregateid)
                    self._metrics.published.labels(row.topic, row.type, "error").inc()
                    self._relay_metrics.undelivered(result.error)
                elif row.aggregateid not in blocked:
                    sent.append(row.position)
                    self._metrics.published.labels(row.topic, row.type, "ok").inc()
            if sent:
                await connection.execute(
                    update(table)
                    .where(table.c.position.in_(sent))
                    .values(sent_at=datetime.now(UTC))
                )
        self._relay_metrics.relayed(len(sent))
        await self._relay_metrics.count(self.engine)
        errors = [result.error for result in results if result.error is not None]
        return len(sent), errors[0].message if errors else None

    async def _record(self, round_number: int, published: int, error: str | None) -> None:
        status = self._status
        self._status = RelayStatus(
            status.published + published,
            status.failed_attempts + (error is not None),
            error,
        )
        if error is not None:
            logger.error("outbox relay: %s", error)
        async with self._attempted:
            self._rounds_finished = max(self._rounds_finished, round_number)
            self._attempted.notify_all()

    async def next_attempt(self) -> RelayStatus:
        """Wait until a round that starts after this call has finished; return the status then.

        A round already under way when this is called may have read the pending rows before a
        row added just now was committed, so it does not count: the returned status includes
        every row committed before the call (or the error that kept the round from them).
        """
        target = self._rounds_started + 1
        async with self._attempted:
            await self._attempted.wait_for(lambda: self._rounds_finished >= target)
        return self._status

    async def run(self) -> None:
        """Relay until cancelled: at once while rows remain, else every ``interval`` seconds."""
        backoff = self.interval
        while True:
            try:
                published = await self.relay_once()
            except Exception:
                # The database may be down too: keep trying, never stop relaying.
                logger.exception("outbox relay round failed")
                published = 0
            self._relay_metrics.show_age()
            if self._status.last_error is not None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.interval
            if published < self.batch_size:
                await asyncio.sleep(self.interval)

    async def start(self) -> None:
        """Run :meth:`run` in a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop the background task (a round in progress is rolled back and redone later)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
