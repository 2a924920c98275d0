"""The outbox relay's metrics: the backlog it last saw, what it relayed and what failed.

The backlog is counted by one statement that reads only the pending rows, found through the
pending index (``sent_at``, ``position``), at most once per poll interval (a relay draining a
large backlog does not count it after every batch) and after the round has committed: a count
that fails is logged and never undoes the rows a round marked sent.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

from sqlalchemy import Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from aegis.core.metrics import multiprocess_mode
from aegis.msg._errors import PublishError
from aegis.msg._metrics import MsgMetrics

logger = logging.getLogger("aegis.msg")


def backlog_query(table: Table) -> Select[int, datetime | None]:
    """How many rows are unsent, and when the oldest of them was written."""
    # Counting visits every pending row anyway; the oldest comes with it, in the same scan.
    return select(func.count(), func.min(table.c.created_at)).where(table.c.sent_at.is_(None))


class RelayMetrics:
    """One relay's series of the ``aegis_msg_outbox_*`` metrics, labelled with its table.

    The age of the oldest pending row is computed when Prometheus scrapes, from the creation
    time the relay last read, so it keeps growing while the relay cannot reach the database or
    hangs. In prometheus_client's multiprocess mode a gauge cannot be computed on scrape (the
    workers write values to files): there it is set after each count and after each round.
    """

    def __init__(self, metrics: MsgMetrics, table: Table, interval: float) -> None:
        name = table.fullname
        self._query = backlog_query(table)
        self._interval = interval
        self._counted_at = -math.inf
        self._oldest: float | None = None
        """POSIX time the oldest pending row was written; ``None`` when none is pending."""
        self._pending = metrics.outbox_pending.labels(name)
        self._age = metrics.outbox_oldest_age.labels(name)
        self._relayed = metrics.outbox_relayed.labels(name)
        self._failures = metrics.outbox_relay_failures
        self._table = name
        self._computed_on_scrape = not multiprocess_mode()
        if self._computed_on_scrape:
            self._age.set_function(self.oldest_age)

    def oldest_age(self) -> float:
        """Seconds the oldest pending row has waited, as of the last count; 0 when none waits."""
        return 0.0 if self._oldest is None else max(0.0, time.time() - self._oldest)

    async def count(self, engine: AsyncEngine) -> None:
        """Count the backlog, unless it was counted less than one interval ago."""
        now = time.monotonic()
        if now - self._counted_at < self._interval:
            return
        self._counted_at = now
        try:
            async with engine.connect() as connection:
                pending, oldest = (await connection.execute(self._query)).one()
        except Exception as exc:  # the gauges go stale (the age still grows); relaying goes on
            logger.warning(
                "outbox relay could not count its backlog: %s: %s", type(exc).__name__, exc
            )
            return
        if oldest is not None and oldest.tzinfo is None:  # SQLite keeps no time zone: UTC
            oldest = oldest.replace(tzinfo=UTC)
        self._oldest = None if oldest is None else oldest.timestamp()
        self._pending.set(pending)
        self.show_age()

    def show_age(self) -> None:
        """Write the age where it is not computed on scrape (multiprocess mode)."""
        if not self._computed_on_scrape:
            self._age.set(self.oldest_age())

    def relayed(self, count: int) -> None:
        """Count rows published and marked sent."""
        self._relayed.inc(count)

    def undelivered(self, error: PublishError) -> None:
        """Count one row the broker did not take, by its Kafka error name."""
        reason = str(error.details.get("kafka_error") or "undelivered")
        self._failures.labels(self._table, reason).inc()

    def round_failed(self, exc: BaseException) -> None:
        """Count a round that raised (the database unreachable, say), by exception type."""
        self._failures.labels(self._table, type(exc).__name__).inc()
