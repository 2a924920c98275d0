"""``publish_batch(..., errors_only=True)`` on a real broker: failures reported, nothing else."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.msg import Event as BaseEvent
from aegis.msg import (
    EventPublisher,
    EventRegistry,
    InMemoryTransport,
    KafkaSettings,
    KafkaTransport,
)
from aegis.testing import RestartableServer, create_topics

pytestmark = pytest.mark.anyio


class NoteData(BaseModel):
    key: str
    seq: int


class Noted(BaseEvent[NoteData]):
    type = "test.errors_only.noted"
    key_field = "key"


def notes(count: int) -> list[Noted]:
    return [Noted(data=NoteData(key=f"k{seq % 3}", seq=seq)) for seq in range(count)]


def read(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """The ce_id header of ``count`` messages of a topic (in order within each partition)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, 0) for partition in partitions])
        found: list[bytes] = []
        for _ in range(100):
            for message in consumer.consume(count, 0.2):
                if message.error() is None:
                    ce_id = dict(message.headers() or [])["ce_id"]
                    assert isinstance(ce_id, bytes)
                    found.append(ce_id)
            if len(found) >= count:
                return found
        raise AssertionError(f"{len(found)} of {count} messages on {topic}")
    finally:
        consumer.close()


async def test_delivered_events_are_ok_without_positions_and_arrive_in_order(
    kafka_bootstrap: str,
) -> None:
    topic = f"errors-only-{uuid.uuid4().hex[:10]}"
    create_topics(kafka_bootstrap, [topic], partitions=1)
    events = notes(2500)  # more than one block of inline polls
    async with KafkaTransport(KafkaSettings(bootstrap_servers=kafka_bootstrap)) as kafka:
        publisher = EventPublisher(
            kafka, source="t", registry=EventRegistry(), metrics_registry=CollectorRegistry()
        )
        results = await publisher.publish_batch(events, topic=topic, errors_only=True)
        full = await publisher.publish_batch(events[:2], topic=topic)  # the other client
    assert len(results) == len(events)
    assert all(r.ok and (r.partition, r.offset) == (-1, -1) for r in results)
    assert [r.event_id for r in results] == [e.id for e in events]
    assert [(r.partition, r.offset) for r in full] == [(0, 2500), (0, 2501)]
    ids = await asyncio.to_thread(read, kafka_bootstrap, topic, len(events) + 2)
    assert ids == [e.id.encode() for e in [*events, *events[:2]]]


async def test_undelivered_events_are_reported_with_their_records_and_sent_again(
    broker: RestartableServer,
) -> None:
    await asyncio.to_thread(broker.start)
    topic = f"errors-only-down-{uuid.uuid4().hex[:10]}"
    create_topics(broker.url, [topic], partitions=1)
    settings = KafkaSettings(
        bootstrap_servers=broker.url,
        delivery_timeout=1.5,
        producer={"reconnect.backoff.max.ms": 200},
    )
    events = notes(5)
    async with KafkaTransport(settings) as kafka:
        publisher = EventPublisher(kafka, source="t", registry=EventRegistry(), retries=0)
        await publisher.publish_batch(events[:1], topic=topic, errors_only=True)  # connected
        await asyncio.to_thread(broker.stop)
        results = await publisher.publish_batch(events, topic=topic, errors_only=True)
        assert [r.ok for r in results] == [False] * 5
        assert all(r.error is not None and r.error.retriable for r in results)
        records = [r.record for r in results]
        assert [record.event_id for record in records if record] == [e.id for e in events]
        assert all(
            record is not None and dict(record.headers)["ce_id"] == event.id.encode()
            for record, event in zip(records, events, strict=True)
        )
        await asyncio.to_thread(broker.start)  # same address, empty storage
        # The broker forgot the idempotent producer: a first send may fail (retriable) and
        # bring up a fresh client, as a publisher's own retries would.
        pending = [record for record in records if record is not None]
        for _ in range(3):
            resent = await kafka.send_batch(pending, errors_only=True)
            pending = [result.record for result in resent.failed if result.record is not None]
            if not pending:
                break
        assert not pending
    ids = await asyncio.to_thread(read, broker.url, topic, len(events))
    assert sorted(ids) == sorted(e.id.encode() for e in events)


async def test_a_transport_without_the_quiet_client_reports_everything() -> None:
    transport = InMemoryTransport()
    publisher = EventPublisher(transport, source="t", registry=EventRegistry())
    results = await publisher.publish_batch(notes(3), topic="memory", errors_only=True)
    assert all(r.ok and r.partition >= 0 and r.offset >= 0 for r in results)
