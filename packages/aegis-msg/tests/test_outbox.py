"""The transactional outbox on PostgreSQL and SQLite, relayed to the in-memory transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from aegis.core.context import request_context
from aegis.core.errors import ConfigurationError
from aegis.msg import (
    BatchResult,
    DeliveryResult,
    Event,
    EventRegistry,
    InMemoryTransport,
    Outbox,
    OutboxRelay,
    OutgoingRecord,
    PublishError,
)

pytestmark = pytest.mark.anyio


class OrderData(BaseModel):
    order_id: str
    step: int


class OrderChanged(Event[OrderData]):
    type = "test.order.changed"
    topic = "orders"
    key_field = "order_id"


class Untargeted(Event[OrderData]):
    type = "test.untargeted"


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("postgres_database").replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )
    engine = create_async_engine(url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def outbox(engine: AsyncEngine) -> AsyncIterator[Outbox]:
    metadata = MetaData()
    outbox = Outbox(metadata=metadata, source="order-service", registry=EventRegistry())
    Table("orders", metadata, Column("id", String(36), primary_key=True), Column("n", Integer))
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
    await outbox.create_table(engine)
    await outbox.create_table(engine)  # idempotent
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield outbox
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)


def order(order_id: str, step: int) -> OrderChanged:
    return OrderChanged(data=OrderData(order_id=order_id, step=step))


async def test_events_are_written_with_the_business_change_and_vanish_with_its_rollback(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    sessions = async_sessionmaker(engine)
    orders = outbox.table.metadata.tables["orders"]
    kept, dropped = order("o-1", 1), order("o-2", 1)
    with request_context(correlation_id="corr-7"):
        async with sessions() as session, session.begin():
            await session.execute(orders.insert().values(id="o-1", n=1))
            await outbox.add(session, kept)
    async with sessions() as session, session.begin():
        await session.execute(orders.insert().values(id="o-2", n=1))
        await outbox.add(session, dropped, aggregatetype="order")
        await session.rollback()
    async with engine.connect() as connection:
        rows = (await connection.execute(select(outbox.table))).all()
    assert len(rows) == 1
    (row,) = rows
    assert (row.id, row.aggregatetype, row.aggregateid, row.type, row.topic) == (
        kept.id,
        "orders",
        "o-1",
        "test.order.changed",
        "orders",
    )
    assert json.loads(row.payload) == {"order_id": "o-1", "step": 1}
    headers = json.loads(row.headers)
    assert headers["ce_source"] == "order-service"
    assert headers["ce_correlationid"] == "corr-7"
    assert row.sent_at is None


async def test_relay_publishes_pending_rows_in_order_and_marks_them_sent(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    sessions = async_sessionmaker(engine)
    async with sessions() as session, session.begin():
        for step in range(4):
            for order_id in ("a", "b", "c"):
                await outbox.add(session, order(order_id, step))
    transport = InMemoryTransport(partitions=2)
    relay = OutboxRelay(
        engine, transport, outbox=outbox, batch_size=5, metrics_registry=CollectorRegistry()
    )
    assert [await relay.relay_once() for _ in range(4)] == [5, 5, 2, 0]
    assert relay.status.published == 12
    assert relay.status.last_error is None
    published = transport.messages("orders")
    for order_id in ("a", "b", "c"):
        steps = [
            json.loads(m.value() or b"")["step"] for m in published if m.key() == order_id.encode()
        ]
        assert steps == [0, 1, 2, 3]
    assert dict(published[0].headers())["ce_type"] == b"test.order.changed"
    async with engine.connect() as connection:
        pending = select(func.count()).where(outbox.table.c.sent_at.is_(None))
        assert (await connection.execute(pending)).scalar_one() == 0


class FlakyTransport(InMemoryTransport):
    """Refuses chosen events once, as a broker outage would."""

    def __init__(self, fail_once: set[str]) -> None:
        super().__init__()
        self.fail_once = fail_once

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        records = list(records)
        failing = [r for r in records if r.event_id in self.fail_once]
        results = await super().send_batch([r for r in records if r not in failing])
        by_id = {result.event_id: result for result in results}
        self.fail_once -= {r.event_id for r in failing}
        error = PublishError("broker down", retriable=True)
        return BatchResult.of(
            by_id.get(r.event_id) or DeliveryResult(r.topic, -1, -1, error) for r in records
        )


async def test_a_failed_event_holds_back_the_later_events_of_its_aggregate(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    events = [order("a", 0), order("a", 1), order("a", 2), order("b", 0)]
    async with async_sessionmaker(engine)() as session, session.begin():
        for event in events:
            await outbox.add(session, event)
    transport = FlakyTransport(fail_once={events[1].id})
    relay = OutboxRelay(engine, transport, outbox=outbox, metrics_registry=CollectorRegistry())
    assert await relay.relay_once() == 2  # a0 and b0; a2 went out but is not marked sent
    failed = relay.status
    assert failed.last_error is not None
    assert "broker down" in failed.last_error
    assert await relay.relay_once() == 2
    recovered = relay.status
    assert recovered.last_error is None
    sent = [
        json.loads(m.value() or b"")["step"]
        for m in transport.messages("orders")
        if m.key() == b"a"
    ]
    assert sent == [0, 2, 1, 2]  # the last delivery of each event is in order: 0, 1, 2


async def test_an_event_without_a_topic_is_refused(engine: AsyncEngine, outbox: Outbox) -> None:
    async with AsyncSession(engine) as session:
        with pytest.raises(ConfigurationError, match=r"no topic for .test\.untargeted."):
            await outbox.add(session, Untargeted(data=OrderData(order_id="x", step=0)))


class HeldTransport(InMemoryTransport):
    """Holds each batch until released, so a test can act while a round is under way."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = asyncio.Event()
        self.release = asyncio.Event()

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        self.sending.set()
        await self.release.wait()
        return await super().send_batch(records)


async def test_next_attempt_waits_for_a_round_that_sees_what_was_committed_before_it(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    # A round already under way read its rows before the second event was committed: the
    # status it ends with would not include that event, so next_attempt() waits for the next.
    sessions = async_sessionmaker(engine)
    async with sessions() as session, session.begin():
        await outbox.add(session, order("a", 0))
    transport = HeldTransport()
    relay = OutboxRelay(
        engine, transport, outbox=outbox, interval=0.01, metrics_registry=CollectorRegistry()
    )
    async with relay:
        await asyncio.wait_for(transport.sending.wait(), 10)
        async with sessions() as session, session.begin():
            await outbox.add(session, order("b", 0))
        waiting = asyncio.create_task(relay.next_attempt())
        transport.release.set()
        status = await asyncio.wait_for(waiting, 10)
    assert status.published == 2
    assert [m.key() for m in transport.messages("orders")] == [b"a", b"b"]
