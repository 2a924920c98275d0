"""Publisher and subscriber details on the in-memory transport: errors, retries, spans, metrics."""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as KafkaTopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.msg import (
    BatchResult,
    DeliveryResult,
    Event,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    InMemoryTransport,
    OutgoingRecord,
    PublishError,
    RetryPolicy,
)
from aegis.msg._kafka import log_failed_commit

if TYPE_CHECKING:
    from conftest import Collector

pytestmark = pytest.mark.anyio


class NoteData(BaseModel):
    text: str


class NoteAdded(Event[NoteData]):
    type = "test.note.added"
    topic = "notes"


class Untopical(Event[NoteData]):
    type = "test.untopical"


class RefusingTransport(InMemoryTransport):
    """Refuses the first ``times`` sends of every record."""

    def __init__(self, times: int, *, retriable: bool) -> None:
        super().__init__()
        self.times = times
        self.retriable = retriable
        self.attempts = 0

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        self.attempts += 1
        if self.attempts > self.times:
            return await super().send_batch(records)
        error = PublishError("broker unreachable", retriable=self.retriable)
        return BatchResult.of(
            DeliveryResult(r.topic, -1, -1, error, r.event_id, r) for r in records
        )


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded by an SDK provider (the process's, if another test set one first)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def subscriber(transport: InMemoryTransport, **options: object) -> EventSubscriber:
    return EventSubscriber(
        transport,
        group_id="g",
        registry=EventRegistry(),
        metrics_registry=CollectorRegistry(),
        **options,  # type: ignore[arg-type]
    )


async def test_a_retriable_failure_is_sent_again_and_a_lasting_one_is_raised() -> None:
    metrics = CollectorRegistry()
    flaky = RefusingTransport(1, retriable=True)
    publisher = EventPublisher(flaky, retry_backoff=0.001, metrics_registry=metrics)
    result = await publisher.publish(NoteAdded(data=NoteData(text="hi")))
    assert result.ok
    assert flaky.attempts == 2

    broken = RefusingTransport(5, retriable=False)
    publisher = EventPublisher(broken, retry_backoff=0.001, metrics_registry=metrics)
    with pytest.raises(PublishError, match="broker unreachable"):
        await publisher.publish(NoteAdded(data=NoteData(text="lost")))
    assert broken.attempts == 1
    labels = {"topic": "notes", "type": "test.note.added"}
    assert metrics.get_sample_value("aegis_msg_published_total", {**labels, "outcome": "ok"}) == 1
    assert (
        metrics.get_sample_value("aegis_msg_published_total", {**labels, "outcome": "error"}) == 1
    )
    assert await publisher.publish_batch([]) == []
    assert publisher.published_types == {("notes", NoteAdded)}


async def test_an_event_needs_a_topic_from_somewhere() -> None:
    publisher = EventPublisher(InMemoryTransport())
    with pytest.raises(ConfigurationError, match=r"no topic for 'test\.untopical'"):
        await publisher.publish(Untopical(data=NoteData(text="x")))
    await publisher.publish(Untopical(data=NoteData(text="x")), topic="elsewhere")
    with pytest.raises(ConfigurationError, match="no topic for Untopical"):
        subscriber(InMemoryTransport()).on(Untopical)


async def test_subscriber_refuses_a_second_handler_and_late_or_missing_registration() -> None:
    consumer = subscriber(InMemoryTransport())
    with pytest.raises(ConfigurationError, match="register a handler"):
        await consumer.start()

    @consumer.on(NoteAdded)
    async def first(event: NoteAdded) -> None:
        del event

    with pytest.raises(ConfigurationError, match=r"already has a handler: .*first"):
        consumer.on(NoteAdded)(first)
    async with consumer:
        running = consumer.running
        await consumer.start()  # already running: no-op
        with pytest.raises(ConfigurationError, match="before the subscriber starts"):
            consumer.on(NoteAdded, topic="other")
    assert running
    assert not consumer.running
    await consumer.stop()  # already stopped: no-op


async def test_a_not_retryable_error_goes_to_the_dead_letters_after_one_call(
    collector: Collector,
) -> None:
    transport = InMemoryTransport()
    consumer = subscriber(transport, retry=RetryPolicy(attempts=5, topic_delays=(1.0,)))

    @consumer.on(NoteAdded)
    async def reject(event: NoteAdded) -> None:
        collector.add(event.id)
        raise InvalidInputError("text must not be empty", field="text")

    await EventPublisher(transport).publish(NoteAdded(data=NoteData(text="")))
    async with consumer:
        await collector.wait(1)
    (dead,) = transport.messages("notes.DLT")
    assert (
        dict(dead.headers())["kafka_dlt-exception-fqcn"] == b"aegis.core.errors.InvalidInputError"
    )
    assert transport.messages("notes-retry-1000") == []
    assert len(collector.items) == 1


async def test_spans_link_the_consumer_to_the_producer_through_traceparent(
    spans: InMemorySpanExporter, collector: Collector
) -> None:
    transport = InMemoryTransport()
    consumer = subscriber(transport, concurrency="key")

    @consumer.on(NoteAdded)
    async def on_note(event: NoteAdded) -> None:
        collector.add(trace.get_current_span().get_span_context())

    await EventPublisher(transport).publish(NoteAdded(data=NoteData(text="traced")))
    async with consumer:
        (handling,) = await collector.wait(1)
    produced = next(s for s in spans.get_finished_spans() if s.name == "notes publish")
    processed = next(s for s in spans.get_finished_spans() if s.name == "notes process")
    assert produced.kind is trace.SpanKind.PRODUCER
    assert processed.kind is trace.SpanKind.CONSUMER
    assert processed.parent is not None
    assert processed.parent.span_id == produced.context.span_id
    assert handling.trace_id == produced.context.trace_id
    assert processed.attributes is not None
    assert processed.attributes["cloudevents.event_type"] == "test.note.added"


async def test_lag_is_measured_and_lost_partitions_are_dropped(collector: Collector) -> None:
    transport = InMemoryTransport()
    metrics = CollectorRegistry()
    consumer = EventSubscriber(
        transport,
        group_id="lagging",
        registry=EventRegistry(),
        metrics_registry=metrics,
        commit_interval=3600,  # no commit before the loss: only stop() would commit
    )

    @consumer.on(NoteAdded)
    async def on_note(event: NoteAdded) -> None:
        collector.add(event.data.text)

    await EventPublisher(transport).publish_batch(
        [NoteAdded(data=NoteData(text=str(i))) for i in range(3)]
    )
    async with consumer:
        await collector.wait(3)
        consumer.lost([("notes", 0)])
    labels = {"group": "lagging", "topic": "notes", "partition": "0"}
    assert metrics.get_sample_value("aegis_msg_consumer_lag_messages", labels) == 0
    # A lost partition's progress is not committed: its events will be delivered again.
    assert transport.committed("lagging", "notes") == 0


async def test_a_failed_commit_between_fetches_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log_failed_commit(None, [])
    assert not caplog.records
    log_failed_commit(
        KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [KafkaTopicPartition("notes", 0, 5)]
    )
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert "REBALANCE_IN_PROGRESS" in record.getMessage()


async def test_a_generated_batch_is_sent_as_it_comes_without_keeping_the_events() -> None:
    transport = InMemoryTransport()
    publisher = EventPublisher(
        transport, registry=EventRegistry(), metrics_registry=CollectorRegistry()
    )
    made: list[weakref.ref[NoteAdded]] = []

    def notes() -> Iterator[NoteAdded]:
        for number in range(50):
            if len(made) > 2:  # events made before the last one are sent and dropped
                assert made[-2]() is None
            event = NoteAdded(data=NoteData(text=f"note {number}"))
            made.append(weakref.ref(event))
            yield event

    results = await publisher.publish_batch(notes())
    assert len(results) == 50
    assert all(result.ok for result in results)
    assert [json.loads(m.value())["text"] for m in transport.messages("notes")] == [
        f"note {number}" for number in range(50)
    ]


async def test_a_generated_batch_that_failed_retriably_is_sent_again_in_full() -> None:
    flaky = RefusingTransport(1, retriable=True)
    publisher = EventPublisher(flaky, retry_backoff=0.001, metrics_registry=CollectorRegistry())
    events = [NoteAdded(data=NoteData(text=f"note {number}")) for number in range(5)]
    # The generator is spent by the first send: the retry can only resend the records.
    results = await publisher.publish_batch(event for event in events)
    assert flaky.attempts == 2
    assert [result.ok for result in results] == [True] * 5
    stored = flaky.messages("notes")
    assert [dict(m.headers())["ce_id"] for m in stored] == [e.id.encode() for e in events]


class NoteRemoved(Event[NoteData]):
    type = "test.note.removed"
    topic = "notes"


class RefusingSome(InMemoryTransport):
    """Refuses, for good, the records of the chosen event ids."""

    def __init__(self, refused: set[str]) -> None:
        super().__init__()
        self.refused = refused

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        error = PublishError("refused", retriable=False)
        results = []
        for record in records:
            if record.event_id in self.refused:
                results.append(DeliveryResult(record.topic, -1, -1, error, record.event_id, record))
            else:
                results += await super().send_batch([record])
        return BatchResult.of(results)


async def test_failures_of_a_mixed_batch_are_counted_against_their_own_event_type() -> None:
    added = [NoteAdded(data=NoteData(text=f"a{number}")) for number in range(3)]
    removed = [NoteRemoved(data=NoteData(text=f"r{number}")) for number in range(2)]
    metrics = CollectorRegistry()
    publisher = EventPublisher(RefusingSome({removed[1].id}), metrics_registry=metrics)
    batch = [added[0], removed[0], added[1], removed[1], added[2]]
    results = await publisher.publish_batch(batch)
    assert [result.ok for result in results] == [True, True, True, False, True]

    def published(event_type: str, outcome: str) -> float | None:
        labels = {"topic": "notes", "type": event_type, "outcome": outcome}
        return metrics.get_sample_value("aegis_msg_published_total", labels)

    assert published("test.note.added", "ok") == 3
    assert published("test.note.added", "error") is None
    assert published("test.note.removed", "ok") == 1
    assert published("test.note.removed", "error") == 1
