"""The transactional outbox on PostgreSQL and SQLite, relayed to the in-memory transport."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.exc import IntegrityError
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
    _outbox,
    default_registry,
)
from aegis.msg._outbox import RelayStatus

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
    """Holds each batch (or only the first) until released, so a test can act while a round
    is under way; notes whether the held round was cancelled."""

    def __init__(self, *, only_first: bool = False) -> None:
        super().__init__()
        self.sending = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False
        self.only_first = only_first

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        if not (self.only_first and self.sending.is_set()):
            self.sending.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
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


class Defaulted(Event[OrderData]):
    type = "test.outbox.defaulted"
    topic = "orders"


class OutageTransport(InMemoryTransport):
    """Refuses every record of the chosen calls of send_batch (numbered from 1)."""

    def __init__(self, failing_calls: set[int]) -> None:
        super().__init__()
        self.failing_calls = failing_calls
        self.calls = 0

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        self.calls += 1
        if self.calls not in self.failing_calls:
            return await super().send_batch(records)
        records = list(records)
        return BatchResult.of(
            DeliveryResult(
                r.topic,
                -1,
                -1,
                PublishError(f"broker down ({n} of {len(records)})", retriable=True),
            )
            for n, r in enumerate(records, 1)
        )


class FailingTransport(InMemoryTransport):
    """Raises from the chosen calls of send_batch (numbered from 1), as a broken client may."""

    def __init__(self, failing_calls: set[int]) -> None:
        super().__init__()
        self.failing_calls = failing_calls
        self.calls = 0

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        self.calls += 1
        if self.calls in self.failing_calls:
            raise RuntimeError("client closed")
        return await super().send_batch(records)


class ForgetfulTransport(InMemoryTransport):
    """Answers for one record fewer than it was given: a broken transport."""

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        return BatchResult.of(list(await super().send_batch(records))[:-1])


class RecordedSleeps:
    """The relay's ``asyncio``, with every wait it asks for recorded (with the rows published
    by then) and none of them taken."""

    def __init__(self, wanted: int) -> None:
        self.waits: list[tuple[float, int]] = []
        self.enough = asyncio.Event()
        self.wanted = wanted
        self.relay: OutboxRelay | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        assert self.relay is not None
        self.waits.append((delay, self.relay.status.published))
        if len(self.waits) >= self.wanted:
            self.enough.set()
        await asyncio.sleep(0)


async def pending(engine: AsyncEngine, outbox: Outbox) -> int:
    async with engine.connect() as connection:
        query = select(func.count()).where(outbox.table.c.sent_at.is_(None))
        return int((await connection.execute(query)).scalar_one())


async def add_orders(engine: AsyncEngine, outbox: Outbox, *order_ids: str) -> None:
    async with async_sessionmaker(engine)() as session, session.begin():
        for order_id in order_ids:
            await outbox.add(session, order(order_id, 0))


async def add_twice(engine: AsyncEngine, outbox: Outbox, event: OrderChanged) -> None:
    async with async_sessionmaker(engine)() as session, session.begin():
        await outbox.add(session, event)
        await outbox.add(session, event)


def test_options_are_keyword_only() -> None:
    """Only the essentials are positional, so options can be added without breaking callers."""
    engine = create_async_engine("sqlite+aiosqlite://")  # never connected
    with pytest.raises(TypeError):
        Outbox("orders_outbox")  # type: ignore[call-arg]
    outbox = Outbox()
    with pytest.raises(TypeError):
        outbox.add(AsyncSession(engine), order("a", 0), "orders")  # type: ignore[call-arg, unused-coroutine]
    with pytest.raises(TypeError):
        OutboxRelay(engine, InMemoryTransport(), outbox)  # type: ignore[call-arg]


def test_the_table_is_the_one_debeziums_outbox_router_reads() -> None:
    """The columns, types and constraints a migration generated from the metadata creates."""
    table = Outbox(table_name="shop_outbox").table
    dialect = create_async_engine("postgresql+asyncpg://").dialect  # never connected
    assert [(c.name, c.type.compile(dialect=dialect), c.nullable) for c in table.columns] == [
        ("position", "BIGINT", False),
        ("id", "VARCHAR(64)", False),
        ("aggregatetype", "VARCHAR(255)", False),
        ("aggregateid", "VARCHAR(255)", True),
        ("type", "VARCHAR(255)", False),
        ("payload", "TEXT", False),
        ("headers", "TEXT", False),
        ("topic", "VARCHAR(255)", False),
        ("created_at", "TIMESTAMP WITH TIME ZONE", False),
        ("sent_at", "TIMESTAMP WITH TIME ZONE", True),
    ]
    assert [column.name for column in table.columns if column.unique] == ["id"]
    assert [column.name for column in table.primary_key] == ["position"]
    (index,) = table.indexes
    assert (index.name, [column.name for column in index.columns]) == (
        "ix_shop_outbox_pending",
        ["sent_at", "position"],
    )


async def test_a_new_relay_has_the_documented_defaults_and_nothing_done_yet(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    await add_orders(engine, outbox, "a")
    relay = OutboxRelay(engine, InMemoryTransport(), outbox=outbox)
    assert (relay.batch_size, relay.interval, relay.max_backoff, relay.max_pending_age) == (
        100,
        0.5,
        30.0,
        60.0,
    )
    assert relay.status == RelayStatus(0, 0, None)
    waiting = asyncio.create_task(relay.next_attempt())
    await asyncio.sleep(0)  # it runs up to its wait
    assert not waiting.done()  # no round has run yet
    assert await relay.relay_once() == 1
    assert await asyncio.wait_for(waiting, 10) == RelayStatus(1, 0, None)


async def test_an_event_is_written_once(engine: AsyncEngine, outbox: Outbox) -> None:
    with pytest.raises(IntegrityError):
        await add_twice(engine, outbox, order("a", 0))
    assert await pending(engine, outbox) == 0


async def test_the_source_and_registry_default_to_the_service_and_the_process_registry(
    engine: AsyncEngine,
) -> None:
    metadata = MetaData()
    with request_context(service_name="billing"):
        named = Outbox(table_name="named_outbox", metadata=metadata)
    registry = EventRegistry()
    anonymous = Outbox(table_name="anonymous_outbox", metadata=metadata, registry=registry)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            await named.add(session, Defaulted(data=OrderData(order_id="a", step=0)))
            await anonymous.add(session, order("b", 0))
        async with engine.connect() as connection:
            named_row = (await connection.execute(select(named.table))).one()
            anonymous_row = (await connection.execute(select(anonymous.table))).one()
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
    assert json.loads(named_row.headers)["ce_source"] == "billing"
    assert json.loads(anonymous_row.headers)["ce_source"] == "aegis"
    assert "test.outbox.defaulted" in default_registry()
    assert "test.order.changed" in registry
    assert "test.order.changed" not in default_registry()


async def test_failed_rounds_are_counted_and_logged_and_a_success_clears_only_the_error(
    engine: AsyncEngine, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    await add_orders(engine, outbox, "a", "b")
    relay = OutboxRelay(
        engine,
        OutageTransport(failing_calls={1, 2}),
        outbox=outbox,
        metrics_registry=CollectorRegistry(),
    )
    with caplog.at_level(logging.ERROR, logger="aegis.msg"):
        assert await relay.relay_once() == 0
        # The first undelivered row's error stands for the round.
        assert relay.status == RelayStatus(0, 1, "broker down (1 of 2)")
        assert [r.getMessage() for r in caplog.records] == ["outbox relay: broker down (1 of 2)"]
        assert await relay.relay_once() == 0
        assert relay.status.failed_attempts == 2
        caplog.clear()
        assert await relay.relay_once() == 2
        assert caplog.records == []
    assert relay.status == RelayStatus(2, 2, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        relay.status.published = 0  # type: ignore[misc]


async def test_a_transport_that_answers_for_fewer_records_fails_the_round(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    await add_orders(engine, outbox, "a", "b")
    relay = OutboxRelay(
        engine, ForgetfulTransport(), outbox=outbox, metrics_registry=CollectorRegistry()
    )
    with pytest.raises(ValueError, match="zip"):
        await relay.relay_once()
    assert (relay.status.published, relay.status.failed_attempts) == (0, 1)
    assert (relay.status.last_error or "").startswith("ValueError")
    assert await pending(engine, outbox) == 2  # nothing is marked sent on a guess


async def test_the_relay_backs_off_doubling_after_failures_and_goes_on_at_once_after_a_full_batch(
    engine: AsyncEngine, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_orders(engine, outbox, "a", "b", "c", "d", "e")
    sleeps = RecordedSleeps(wanted=7)
    monkeypatch.setattr(_outbox, "asyncio", sleeps)
    relay = OutboxRelay(
        engine,
        OutageTransport(failing_calls={1, 2, 3, 4, 7}),
        outbox=outbox,
        batch_size=2,
        interval=1.0,
        max_backoff=5.0,
        metrics_registry=CollectorRegistry(),
    )
    sleeps.relay = relay
    async with relay:
        await asyncio.wait_for(sleeps.enough.wait(), 10)
    # Four failed rounds: 1, 2, 4, then the cap. Two full batches go out without a wait; the
    # next failure starts again from the interval; then a short batch and an empty outbox.
    assert sleeps.waits[:7] == [
        (1.0, 0),
        (2.0, 0),
        (4.0, 0),
        (5.0, 0),
        (1.0, 4),
        (1.0, 5),
        (1.0, 5),
    ]


async def test_a_full_batch_of_any_size_goes_again_at_once(
    engine: AsyncEngine, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_orders(engine, outbox, *(f"o-{n}" for n in range(301)))
    sleeps = RecordedSleeps(wanted=1)
    monkeypatch.setattr(_outbox, "asyncio", sleeps)
    relay = OutboxRelay(
        engine,
        InMemoryTransport(),
        outbox=outbox,
        batch_size=300,
        metrics_registry=CollectorRegistry(),
    )
    sleeps.relay = relay
    async with relay:
        await asyncio.wait_for(sleeps.enough.wait(), 10)
    assert sleeps.waits[0] == (0.5, 301)  # the first wait follows the short second batch


async def test_the_relay_keeps_running_after_a_round_raises(
    engine: AsyncEngine,
    outbox: Outbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add_orders(engine, outbox, "a")
    sleeps = RecordedSleeps(wanted=2)
    monkeypatch.setattr(_outbox, "asyncio", sleeps)
    relay = OutboxRelay(
        engine,
        FailingTransport(failing_calls={1}),
        outbox=outbox,
        interval=1.0,
        metrics_registry=CollectorRegistry(),
    )
    sleeps.relay = relay
    with caplog.at_level(logging.ERROR, logger="aegis.msg"):
        async with relay:
            await asyncio.wait_for(sleeps.enough.wait(), 10)
    assert sleeps.waits[:2] == [(1.0, 0), (1.0, 1)]  # the backoff, then the interval
    assert "outbox relay round failed" in [r.getMessage() for r in caplog.records]


async def test_next_attempt_returns_once_a_later_round_finishes_before_an_earlier_one(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    await add_orders(engine, outbox, "a")
    transport = HeldTransport(only_first=True)
    relay = OutboxRelay(engine, transport, outbox=outbox, metrics_registry=CollectorRegistry())
    waiting = asyncio.create_task(relay.next_attempt())
    await asyncio.sleep(0)  # it is waiting now, before either round starts
    first = asyncio.create_task(relay.relay_once())
    try:
        await asyncio.wait_for(transport.sending.wait(), 10)
        await asyncio.wait_for(relay.relay_once(), 10)  # the second round, not held
        status = await asyncio.wait_for(waiting, 10)  # the first is still held
        assert status.last_error is None
    finally:
        transport.release.set()
        await asyncio.wait_for(first, 10)


async def test_stop_cancels_the_round_under_way_and_its_rows_are_sent_later(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    await add_orders(engine, outbox, "a")
    transport = HeldTransport()
    relay = OutboxRelay(engine, transport, outbox=outbox, metrics_registry=CollectorRegistry())
    await relay.start()
    await asyncio.wait_for(transport.sending.wait(), 10)
    await asyncio.wait_for(relay.stop(), 10)
    assert transport.cancelled
    assert await pending(engine, outbox) == 1
    transport.release.set()
    assert await asyncio.wait_for(relay.relay_once(), 10) == 1


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
async def test_a_second_relay_skips_the_rows_another_relay_is_sending(
    engine: AsyncEngine, outbox: Outbox
) -> None:
    await add_orders(engine, outbox, "a")
    transport = HeldTransport()
    first = OutboxRelay(engine, transport, outbox=outbox, metrics_registry=CollectorRegistry())
    second = OutboxRelay(
        engine, InMemoryTransport(), outbox=outbox, metrics_registry=CollectorRegistry()
    )
    held = asyncio.create_task(first.relay_once())
    try:
        await asyncio.wait_for(transport.sending.wait(), 10)
        assert await asyncio.wait_for(second.relay_once(), 10) == 0  # not blocked on the lock
    finally:
        transport.release.set()
        assert await asyncio.wait_for(held, 10) == 1
