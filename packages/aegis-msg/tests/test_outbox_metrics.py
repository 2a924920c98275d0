"""The relay's metrics: the backlog it counts (pending rows, the oldest one's age), the rows it
relayed and what failed, on PostgreSQL with a broker that stops and comes back, and on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from aegis.core.metrics import MULTIPROCESS_DIR_VARIABLE
from aegis.msg import (
    Event,
    EventRegistry,
    InMemoryTransport,
    KafkaSettings,
    KafkaTransport,
    Outbox,
    OutboxRelay,
)
from aegis.msg._outbox import pending_batch
from aegis.msg._outbox_metrics import backlog_query
from aegis.testing import RestartableServer

pytestmark = pytest.mark.anyio


class StepData(BaseModel):
    account: str
    step: int


class AccountStep(Event[StepData]):
    type = "test.metrics.step"
    topic = "accounts"
    key_field = "account"


class Metrics:
    """The ``aegis_msg_outbox_*`` samples of one table in a registry."""

    def __init__(self, registry: CollectorRegistry, table: str = "aegis_outbox") -> None:
        self.registry = registry
        self.table = table

    def value(self, name: str) -> float | None:
        return self.registry.get_sample_value(name, {"table": self.table})

    @property
    def pending(self) -> float | None:
        return self.value("aegis_msg_outbox_pending_events")

    @property
    def age(self) -> float | None:
        return self.value("aegis_msg_outbox_oldest_pending_age_seconds")

    @property
    def relayed(self) -> float | None:
        return self.value("aegis_msg_outbox_relayed_total")

    def failures(self) -> dict[str, float]:
        """Failures by reason."""
        found = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == "aegis_msg_outbox_relay_failures_total":
                    assert sample.labels["table"] == self.table
                    found[sample.labels["reason"]] = sample.value
        return found


async def add(engine: AsyncEngine, outbox: Outbox, *steps: int) -> None:
    async with async_sessionmaker(engine)() as session, session.begin():
        for step in steps:
            await outbox.add(session, AccountStep(data=StepData(account="acc-1", step=step)))


async def test_backlog_gauges_rise_while_the_broker_is_down_and_fall_to_zero_once_drained(
    broker: RestartableServer, engine: AsyncEngine, metrics: CollectorRegistry
) -> None:
    outbox = Outbox(table_name="outage_outbox", source="accounts", registry=EventRegistry())
    await outbox.create_table(engine)
    seen = Metrics(metrics, "outage_outbox")
    settings = KafkaSettings(
        bootstrap_servers=broker.url,  # not started yet: every delivery fails
        delivery_timeout=1.5,
        producer={"reconnect.backoff.max.ms": 200},
    )
    async with KafkaTransport(settings) as kafka:
        relay = OutboxRelay(
            engine, kafka, outbox=outbox, interval=0.05, max_backoff=0.2, metrics_registry=metrics
        )
        # The series exist before the first round, so a dashboard shows 0, not "no data".
        assert (seen.pending, seen.age, seen.relayed, seen.failures()) == (0, 0, 0, {})
        async with relay:
            await add(engine, outbox, 0, 1, 2)
            status = await relay.next_attempt()
            for _ in range(20):
                if status.last_error is not None:
                    break
                status = await relay.next_attempt()
            assert status.last_error is not None, "no round failed while the broker was down"
            await relay.next_attempt()  # a round after a backoff of at least one interval
            assert seen.pending == 3
            first_age = seen.age
            assert first_age is not None
            assert first_age > 0
            await relay.next_attempt()
            assert seen.age is not None
            assert seen.age > first_age  # it keeps growing while nothing gets out
            assert seen.relayed == 0
            failures = seen.failures()
            assert sum(failures.values()) >= 3, failures  # every undelivered row of the rounds
            assert all(reason.isupper() for reason in failures), failures  # librdkafka names

            await asyncio.to_thread(broker.start)
            for _ in range(100):
                if relay.status.published == 3:
                    break
                await relay.next_attempt()
            assert relay.status.published == 3
            await relay.next_attempt()  # the next poll, one interval later, counts again
            assert (seen.pending, seen.age, seen.relayed) == (0, 0, 3)


async def test_the_backlog_is_counted_at_most_once_per_interval_never_per_row(
    tmp_path: Path,
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    statements: list[str] = []
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_: statements.append(statement),
    )
    outbox = Outbox(source="accounts", registry=EventRegistry())
    await outbox.create_table(engine)
    await add(engine, outbox, *range(25))
    metrics = CollectorRegistry()
    seen = Metrics(metrics)
    relay = OutboxRelay(
        engine,
        InMemoryTransport(),
        outbox=outbox,
        batch_size=10,
        interval=3600,
        metrics_registry=metrics,
    )
    statements.clear()
    try:
        assert [await relay.relay_once() for _ in range(3)] == [10, 10, 5]
    finally:
        await engine.dispose()
    counts = [s for s in statements if "count(" in s]
    assert len(counts) == 1  # the first round counted; the next two were within the interval
    assert len(statements) == 3 + 3 + 1  # per round a select and an update, whatever the rows
    assert seen.pending == 15  # as counted after the first round
    assert seen.relayed == 25


async def test_a_round_that_fails_is_counted_by_its_exception_type(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    metrics = CollectorRegistry()
    relay = OutboxRelay(  # its table was never created
        engine, InMemoryTransport(), outbox=Outbox(), interval=3600, metrics_registry=metrics
    )
    try:
        async with relay:
            status = await relay.next_attempt()
    finally:
        await engine.dispose()
    assert status.last_error is not None
    assert status.last_error.startswith("OperationalError")
    assert Metrics(metrics).failures() == {"OperationalError": 1}


@pytest.fixture
async def sent_and_pending(engine: AsyncEngine) -> AsyncIterator[Outbox]:
    """An outbox of 2,000 sent rows and 50 pending ones, with statistics (its own table: the
    database is the module's)."""
    outbox = Outbox(table_name="explained_outbox", registry=EventRegistry())
    await outbox.create_table(engine)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO explained_outbox (id, aggregatetype, type, payload, headers, topic, "
                "created_at, sent_at) SELECT n::text, 'a', 't', '{}', '{}', 'accounts', "
                "now(), CASE WHEN n <= 2000 THEN now() END FROM generate_series(1, 2050) n"
            )
        )
        await connection.execute(text("ANALYZE explained_outbox"))
    yield outbox
    async with engine.begin() as connection:
        await connection.run_sync(outbox.table.drop)


async def test_the_backlog_count_reads_the_pending_index_not_the_table(
    engine: AsyncEngine, sent_and_pending: Outbox
) -> None:
    query = backlog_query(sent_and_pending.table)
    sql = str(query.compile(engine.sync_engine))
    async with engine.connect() as connection:
        # The planner may read a table this small whole; what matters is that the index can
        # answer the statement, which it must once the sent rows of days pile up.
        await connection.execute(text("SET enable_seqscan = off"))
        plan = "\n".join((await connection.execute(text(f"EXPLAIN {sql}"))).scalars())
        assert (await connection.execute(query)).one()[0] == 50
    assert "Seq Scan" not in plan, plan
    assert "ix_explained_outbox_pending" in plan, plan


async def test_each_round_reads_its_batch_from_the_pending_index_in_order_without_sorting(
    engine: AsyncEngine, sent_and_pending: Outbox
) -> None:
    query = pending_batch(sent_and_pending.table, 10)
    sql = str(query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as connection:
        await connection.execute(text("SET enable_seqscan = off"))
        plan = "\n".join((await connection.execute(text(f"EXPLAIN {sql}"))).scalars())
        positions = [row.position for row in (await connection.execute(query)).all()]
    # Not the primary key with every sent row filtered out, not a sort of the pending rows.
    assert "Index Scan using ix_explained_outbox_pending" in plan, plan
    assert "Sort" not in plan, plan
    assert positions == list(range(2001, 2011))


async def test_in_multiprocess_mode_the_age_is_written_when_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers write values to files there; a value computed on scrape would never reach them.
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, str(tmp_path))
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    outbox = Outbox(source="accounts", registry=EventRegistry())
    await outbox.create_table(engine)
    await add(engine, outbox, 0, 1)
    metrics = CollectorRegistry()
    seen = Metrics(metrics)
    relay = OutboxRelay(
        engine, InMemoryTransport(), outbox=outbox, batch_size=1, metrics_registry=metrics
    )
    try:
        assert await relay.relay_once() == 1
    finally:
        await engine.dispose()
    assert seen.pending == 1
    age = seen.age
    assert age is not None
    assert age > 0
    assert seen.age == age  # written once, not recomputed on each scrape
