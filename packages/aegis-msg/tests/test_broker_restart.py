"""A broker killed and restarted empty, twice, while outbox rows keep coming: the relay recovers
by itself (a fresh producer when the old one is fenced or stuck), every row reaches the topic in
per-key order, and the backlog check fails during the outage and passes once it drains."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.sql import Select

from aegis.msg import (
    Event,
    EventRegistry,
    KafkaSettings,
    KafkaTransport,
    Outbox,
    OutboxRelay,
    PublishError,
    make_transport,
)
from aegis.testing import RestartableServer

pytestmark = pytest.mark.anyio

ACCOUNTS = 4
TOPIC = "restarts"

Row = tuple[str, str, int]
"""``(event id, account, step)``."""


class StepData(BaseModel):
    account: str
    step: int


class AccountStep(Event[StepData]):
    type = "test.restart.step"
    topic = TOPIC
    key_field = "account"


async def until(condition: Callable[[], Awaitable[bool]], what: str, deadline: float) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not await condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline} s: {what}")
        await asyncio.sleep(0.05)


def recreated(metrics: CollectorRegistry) -> float:
    """``aegis_msg_producer_recreated_total``, all reasons together."""
    return sum(
        sample.value
        for metric in metrics.collect()
        for sample in metric.samples
        if sample.name == "aegis_msg_producer_recreated_total"
    )


def read_all(bootstrap: str) -> list[Row]:
    """Every message on the topic now: ``(event id, account, step)`` in partition order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader"})
    try:
        partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), 10)[1]
                for p in partitions}  # fmt: skip
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in partitions])
        found: list[Row] = []
        positions = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + 30
        while any(positions[p] < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"read {positions} of {ends}")
            for message in consumer.consume(1000, 0.2):
                if message.error() is not None:
                    continue
                positions[message.partition() or 0] = (message.offset() or 0) + 1
                event = json.loads(message.value() or b"")
                event_id = dict(message.headers() or [])["ce_id"]
                assert isinstance(event_id, bytes)
                found.append((event_id.decode(), event["account"], event["step"]))
        return found
    finally:
        consumer.close()


class Stream:
    """Writes outbox rows steadily, one account after another, until cancelled."""

    def __init__(self, engine: AsyncEngine, outbox: Outbox) -> None:
        self.sessions = async_sessionmaker(engine)
        self.engine = engine
        self.outbox = outbox
        self.written: list[Row] = []
        self.writing = asyncio.Event()
        self.writing.set()
        self.one_write = asyncio.Lock()
        self.pending: Select[int] = select(func.count()).where(outbox.table.c.sent_at.is_(None))

    async def run(self) -> None:
        while True:
            await self.writing.wait()
            async with self.one_write:
                n = len(self.written)
                account = f"acc-{n % ACCOUNTS}"
                event = AccountStep(data=StepData(account=account, step=n // ACCOUNTS))
                async with self.sessions() as session, session.begin():
                    await self.outbox.add(session, event)
                self.written.append((event.id, account, event.data.step))
            await asyncio.sleep(0.01)

    async def pause(self) -> None:
        """Stop writing, once the write in progress (if any) is committed.

        Without the wait, a row committed after :meth:`drained` said 0 could reach the broker
        after the test read it and before the test killed it, and be lost with its storage.
        """
        self.writing.clear()
        async with self.one_write:
            pass

    async def drained(self) -> bool:
        async with self.engine.connect() as connection:
            return (await connection.execute(self.pending)).scalar_one() == 0


async def ready(relay: OutboxRelay) -> bool:
    """Whether the relay's backlog check passes."""
    try:
        await relay.health_check()
    except PublishError:
        return False
    return True


async def not_ready(relay: OutboxRelay) -> bool:
    """Whether the relay's backlog check fails."""
    return not await ready(relay)


def assert_every_row_arrived_in_key_order(seen: list[Row], written: list[Row]) -> None:
    """At least once: every written id is seen; each key's first sightings go in step order."""
    assert {event_id for event_id, _, _ in seen} == {event_id for event_id, _, _ in written}
    for account in (f"acc-{n}" for n in range(ACCOUNTS)):
        first_seen: dict[str, int] = {}
        for event_id, key, step in seen:
            if key == account:
                first_seen.setdefault(event_id, step)
        steps = list(first_seen.values())
        assert steps == sorted(steps), f"{account} out of order: {steps}"


async def test_relay_recovers_from_a_broker_restarted_empty_twice_and_loses_nothing(
    broker: RestartableServer, engine: AsyncEngine
) -> None:
    outbox = Outbox(source="accounts", registry=EventRegistry())
    await outbox.create_table(engine)
    stream = Stream(engine, outbox)
    await asyncio.to_thread(broker.start)
    settings = KafkaSettings(
        bootstrap_servers=broker.url,
        delivery_timeout=5.0,
        producer={"reconnect.backoff.max.ms": 200},
    )
    seen: list[Row] = []
    metrics = CollectorRegistry()
    async with KafkaTransport(settings, metrics_registry=metrics) as kafka:
        relay = OutboxRelay(
            engine,
            kafka,
            outbox=outbox,
            interval=0.05,
            max_backoff=0.5,
            max_pending_age=1.0,
            metrics_registry=metrics,
        )
        writer = asyncio.create_task(stream.run())
        try:
            async with relay:
                for outage in range(2):
                    more = len(stream.written) + 20
                    await until(
                        lambda: asyncio.sleep(0.05, len(stream.written) >= more),  # noqa: B023
                        "rows before the outage",
                        10,
                    )
                    assert await ready(relay)
                    # What this broker holds is read before it is killed (it forgets it all).
                    await stream.pause()
                    await until(stream.drained, f"drain before outage {outage}", 60)
                    seen += await asyncio.to_thread(read_all, broker.url)
                    broker.stop()
                    stream.writing.set()
                    await until(
                        lambda: not_ready(relay), f"backlog check failing in outage {outage}", 30
                    )
                    if outage == 0:
                        # Past the delivery timeout: the queued rows time out in the client.
                        await until(lambda: asyncio.sleep(0, relay.status.last_error is not None),
                                    "a failed round in the first outage", 30)  # fmt: skip
                    # The second time, the broker is back within the delivery timeout: the rows
                    # in flight meet a broker that forgot the producer.
                    await asyncio.to_thread(broker.start)  # same address, empty storage
                    # No process restart: the same relay and transport deliver again, with a
                    # fresh producer client (the old one's id is unknown to the empty broker).
                    await until(lambda: ready(relay), f"backlog drained after outage {outage}", 60)
                    assert recreated(metrics) == kafka.producer.recreated >= outage + 1
                await stream.pause()
                await until(stream.drained, "final drain", 60)
                seen += await asyncio.to_thread(read_all, broker.url)
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
    assert_every_row_arrived_in_key_order(seen, stream.written)


def test_make_transport_counts_recoveries_in_the_given_registry() -> None:
    metrics = CollectorRegistry()
    transport = make_transport(KafkaSettings(), metrics_registry=metrics)
    assert isinstance(transport, KafkaTransport)
    assert "aegis_msg_producer_recreated" in {metric.name for metric in metrics.collect()}
