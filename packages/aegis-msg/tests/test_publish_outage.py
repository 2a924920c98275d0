"""Events the broker could not take come back with their records, ready to be sent again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.msg import Event, EventPublisher, EventRegistry, KafkaSettings, KafkaTransport
from aegis.msg._transport import ReceivedMessage
from aegis.msg._wire import EventCodec
from aegis.testing import RestartableServer

pytestmark = pytest.mark.anyio


class NoteData(BaseModel):
    author: str
    text: str


class NoteAdded(Event[NoteData]):
    type = "test.note.added"
    topic = "notes"
    key_field = "author"


@pytest.fixture
def broker() -> Iterator[RestartableServer]:
    """A Kafka broker that can stop and start again at the same address."""
    server = RestartableServer("kafka")
    yield server
    server.stop()


def read(bootstrap: str, topic: str, count: int) -> list[ReceivedMessage]:
    """The first ``count`` messages of ``topic``."""
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
    events = [NoteAdded(data=NoteData(author=f"a{i}", text=f"note {i}")) for i in range(3)]
    async with KafkaTransport(settings) as kafka:
        publisher = EventPublisher(
            kafka,
            source="notes",
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
    messages = await asyncio.to_thread(read, broker.url, "notes", 2)
    codec = EventCodec(registry, source="reader")
    decoded = [codec.decode(message) for message in messages]
    assert {(e.id, e.source, e.data.text) for e in decoded if e is not None} == {
        (e.id, "notes", e.data.text) for e in events[1:]
    }
