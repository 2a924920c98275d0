"""Outages and refusals: the outbox relay runs through an outage and delivers everything in
order; events the broker could not take come back with their records, ready to be sent again;
a record the client refuses fails alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from aegis.msg import (
    Event,
    EventPublisher,
    EventRegistry,
    KafkaSettings,
    KafkaTransport,
    Outbox,
    OutboxRelay,
    OutgoingRecord,
)
from aegis.msg._transport import ReceivedMessage
from aegis.msg._wire import EventCodec
from aegis.testing import RestartableServer

pytestmark = pytest.mark.anyio


class StepData(BaseModel):
    account: str
    step: int


class AccountStep(Event[StepData]):
    type = "test.account.step"
    topic = "accounts"
    key_field = "account"


def read(bootstrap: str, topic: str, count: int) -> list[ReceivedMessage]:
    """The first ``count`` messages of ``topic``, partition by partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[ReceivedMessage] = []
        for _ in range(150):
            found += [m for m in consumer.consume(count, 0.2) if m.error() is None]
            if len(found) >= count:
                return found
        raise AssertionError(f"only {len(found)} of {count} messages arrived")
    finally:
        consumer.close()


def steps(messages: list[ReceivedMessage]) -> list[int]:
    return [json.loads(message.value() or b"")["step"] for message in messages]


async def test_relay_running_through_a_broker_outage_delivers_every_event_in_order(
    broker: RestartableServer, engine: AsyncEngine
) -> None:
    outbox = Outbox(source="accounts", registry=EventRegistry())
    await outbox.create_table(engine)
    sessions = async_sessionmaker(engine)

    async def add(*steps: int) -> None:
        async with sessions() as session, session.begin():
            for step in steps:
                await outbox.add(session, AccountStep(data=StepData(account="acc-1", step=step)))

    await asyncio.to_thread(broker.start)
    settings = KafkaSettings(
        bootstrap_servers=broker.url,
        delivery_timeout=1.5,
        producer={"reconnect.backoff.max.ms": 200},
    )
    async with KafkaTransport(settings) as kafka:
        relay = OutboxRelay(
            engine,
            kafka,
            outbox=outbox,
            interval=0.05,
            max_backoff=0.2,
            metrics_registry=CollectorRegistry(),
        )
        async with relay:
            await add(0, 1)
            while relay.status.published < 2:
                await relay.next_attempt()
            assert steps(await asyncio.to_thread(read, broker.url, "accounts", 2)) == [0, 1]

            broker.stop()
            await add(2, 3, 4)
            status = await relay.next_attempt()
            while status.last_error is None:
                status = await relay.next_attempt()
            assert status.published == 2
            async with engine.connect() as connection:
                pending = select(func.count()).where(outbox.table.c.sent_at.is_(None))
                assert (await connection.execute(pending)).scalar_one() == 3

            await asyncio.to_thread(
                broker.start
            )  # same address; its in-memory storage starts empty
            while relay.status.published < 5:
                await relay.next_attempt()
            assert steps(await asyncio.to_thread(read, broker.url, "accounts", 3)) == [2, 3, 4]
        async with engine.connect() as connection:
            assert (await connection.execute(pending)).scalar_one() == 0


async def test_undelivered_events_carry_their_records_and_resending_them_delivers_the_events(
    broker: RestartableServer,
) -> None:
    await asyncio.to_thread(broker.start)
    settings = KafkaSettings(
        bootstrap_servers=broker.url,
        delivery_timeout=1.5,
        producer={"reconnect.backoff.max.ms": 200},
    )
    registry = EventRegistry()
    events = [AccountStep(data=StepData(account=f"acc-{i}", step=i)) for i in range(3)]
    async with KafkaTransport(settings) as kafka:
        publisher = EventPublisher(
            kafka,
            source="accounts",
            registry=registry,
            retries=0,
            metrics_registry=CollectorRegistry(),
        )
        assert (await publisher.publish(events[0])).ok
        broker.stop()
        results = await publisher.publish_batch(event for event in events[1:])
        assert [result.event_id for result in results] == [event.id for event in events[1:]]
        assert all(result.error is not None and result.error.retriable for result in results)
        records = [result.record for result in results]
        assert all(record is not None and record.event_id == result.event_id
                   for record, result in zip(records, results, strict=True))  # fmt: skip

        await asyncio.to_thread(broker.start)  # same address, empty storage
        # The broker forgot the idempotent producer: its first send fails (retriable) and
        # brings up a fresh client, as a publisher's own retries would.
        for _ in range(3):
            resent = await kafka.send_batch(record for record in records if record is not None)
            records = [result.record for result in resent.failed]
            if not records:
                break
        assert not records
    messages = await asyncio.to_thread(read, broker.url, "accounts", 2)
    codec = EventCodec(registry, source="reader")
    decoded = [codec.decode(message) for message in messages]
    assert {(e.id, e.source, e.data.step) for e in decoded if e is not None} == {
        (e.id, "accounts", e.data.step) for e in events[1:]
    }


async def test_a_record_the_client_refuses_fails_alone_and_the_producer_goes_on(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory("refused")
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, producer={"message.max.bytes": 2000}
    )
    small = OutgoingRecord(topic, b"small", b"k", [], "e1")
    huge = OutgoingRecord(topic, b"x" * 5000, b"k", [("h", b"v")], "e2")
    async with KafkaTransport(settings) as kafka:
        results = await kafka.send_batch([small, huge, small._replace(event_id="e3")])
        assert [result.ok for result in results] == [True, False, True]
        assert results[1].error is not None
        assert "MSG_SIZE_TOO_LARGE" in results[1].error.message
        assert results[1].record == huge
        assert results[0].offset + 1 == results[2].offset
        again = await kafka.send_batch([small] * 3)  # the refused message left nothing behind
        assert again.all_ok
        assert [result.offset for result in again] == [results[2].offset + n for n in (1, 2, 3)]
