"""MessageHandling on its own: given a HandlingContext and a lane's interrupt, no subscriber."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.core import context
from aegis.core.errors import InvalidInputError
from aegis.core.metrics import MULTIPROCESS_DIR_VARIABLE
from aegis.msg import (
    BatchFailedError,
    BatchResult,
    DeliveryResult,
    Event,
    EventPublisher,
    EventRegistry,
    InMemoryTransport,
    PublishError,
    RetryPolicy,
    StoredMessage,
)
from aegis.msg._handling import EVENT_CHUNK, HandlingContext, MessageHandling, Route
from aegis.msg._lanes import Lane
from aegis.msg._metrics import MsgMetrics
from aegis.msg._offsets import PartitionOffsets
from aegis.msg._transport import OutgoingRecord
from aegis.msg._wire import EventCodec

pytestmark = pytest.mark.anyio

TOPIC = "handling-orders"


class Order(BaseModel):
    number: int


class OrderPlaced(Event[Order]):
    type = "test.handling.order.placed"
    topic = TOPIC


class BrokerDown(InMemoryTransport):
    """Refuses every record, as a broker that is gone does."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.refused = asyncio.Event()

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        self.attempts += 1
        self.refused.set()
        error = PublishError("broker down", retriable=True)
        return BatchResult.of([DeliveryResult(r.topic, -1, -1, error) for r in records])


def handling(transport: InMemoryTransport, routes: dict[tuple[str, str], Route]) -> MessageHandling:
    registry = EventRegistry()
    registry.register(OrderPlaced)
    context = HandlingContext("handling-group", RetryPolicy(attempts=1), routes, transport)
    metrics = MsgMetrics.for_registry(CollectorRegistry())
    return MessageHandling(context, EventCodec(registry, source="test"), metrics, None)


def received(event: OrderPlaced) -> StoredMessage:
    codec = EventCodec(EventRegistry(), source="test")
    (record,) = codec.records([event], lambda _: TOPIC)
    return StoredMessage(TOPIC, 0, 0, record.key, record.value, list(record.headers))


async def test_a_route_added_to_the_context_after_creation_handles_the_message() -> None:
    routes: dict[tuple[str, str], Route] = {}
    work = handling(InMemoryTransport(), routes)
    seen: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)

    routes[(TOPIC, OrderPlaced.type)] = Route(OrderPlaced, TOPIC, on_order)
    assert await work.handle(received(OrderPlaced(data=Order(number=7))), asyncio.Event())
    assert seen == [7]


async def test_a_failed_message_goes_to_the_dead_letter_topic_of_the_context() -> None:
    transport = InMemoryTransport()

    async def refuse(event: OrderPlaced) -> None:
        raise InvalidInputError("number out of range", field="number")

    work = handling(transport, {(TOPIC, OrderPlaced.type): Route(OrderPlaced, TOPIC, refuse)})
    event = OrderPlaced(data=Order(number=8))
    assert await work.handle(received(event), asyncio.Event())
    (dead,) = transport.messages(RetryPolicy().dead_letter_topic(TOPIC))
    assert dict(dead.headers())["ce_id"] == event.id.encode()


async def test_forwarding_to_a_broker_that_is_down_stops_when_the_interrupt_is_set() -> None:
    transport = BrokerDown()

    async def refuse(event: OrderPlaced) -> None:
        raise InvalidInputError("number out of range", field="number")

    work = handling(transport, {(TOPIC, OrderPlaced.type): Route(OrderPlaced, TOPIC, refuse)})
    interrupt = asyncio.Event()
    task = asyncio.create_task(work.handle(received(OrderPlaced(data=Order(number=9))), interrupt))
    await asyncio.wait_for(transport.refused.wait(), 5)
    interrupt.set()
    assert await asyncio.wait_for(task, 5) is False  # left for redelivery, not dead-lettered
    assert transport.attempts == 1


# --- A lane's messages, drained as a subscriber drains them -------------------------------------

GROUP = "handling-group"
MODES = ["plain", "limited", "traced"]
"""plain: no concurrency limit, no spans (the common case); limited: a concurrency limit
(``concurrency="key"``); traced: spans (an OpenTelemetry SDK installed)."""


class Shipment(BaseModel):
    number: int


class OrderShipped(Event[Shipment]):
    type = "test.handling.order.shipped"
    topic = TOPIC


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """A retry policy that records which in-process backoffs handling asked it for."""

    asked: list[int] = field(default_factory=list, compare=False, hash=False)

    def backoff_for(self, retry: int) -> float:
        self.asked.append(retry)
        return super().backoff_for(retry)


class Harness:
    """A MessageHandling on an in-memory transport, with a subscriber's retry sources."""

    def __init__(self, mode: str, policy: RetryPolicy | None = None) -> None:
        self.transport = InMemoryTransport()
        self.registry = EventRegistry()
        self.registry.register(OrderPlaced)
        self.registry.register(OrderShipped)
        self.metrics = CollectorRegistry()
        self.policy = policy or RetryPolicy(attempts=3, backoff=0, topic_delays=(0.01, 0.02))
        self.routes: dict[tuple[str, str], Route] = {}
        self.work = MessageHandling(
            HandlingContext(GROUP, self.policy, self.routes, self.transport),
            EventCodec(self.registry, source="test"),
            MsgMetrics.for_registry(self.metrics),
            asyncio.Semaphore(1) if mode == "limited" else None,
        )
        self.work.tracing = mode == "traced"
        self.work.retry_sources = {
            name: (TOPIC, tier) for tier, name in enumerate(self.policy.retry_topics(TOPIC))
        }
        self.released: list[int] = []

    def on(
        self,
        event_type: type[Event[Any]],
        handler: Callable[[Any], Awaitable[None]],
        *,
        batch: int = 0,
    ) -> None:
        self.routes[(TOPIC, event_type.type)] = Route(event_type, TOPIC, handler, batch)
        self.work.chunk = max(route.batch for route in self.routes.values()) or EVENT_CHUNK

    def lane(self, messages: Iterable[StoredMessage], topic: str = TOPIC) -> Lane:
        lane = Lane((topic, 0), PartitionOffsets(), by_key=False, release=self.released.append)
        lane.queue.extend(messages)
        return lane

    async def drain(self, messages: list[StoredMessage], topic: str = TOPIC) -> Lane:
        lane = self.lane(messages, topic)
        await asyncio.wait_for(self.work.drain(lane), 10)
        return lane

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.get_sample_value(f"aegis_msg_{name}", labels) or 0.0

    def topic(self, name: str) -> list[StoredMessage]:
        return self.transport.messages(name)


def stored(events: Iterable[Event[Any]], topic: str = TOPIC) -> list[StoredMessage]:
    """The events as a subscriber receives them, at offsets 0, 1, ... of partition 0."""
    codec = EventCodec(EventRegistry(), source="test")
    return [
        StoredMessage(topic, 0, offset, record.key, record.value, list(record.headers))
        for offset, record in enumerate(codec.records(list(events), lambda _: topic))
    ]


def raw(value: bytes, headers: list[tuple[str, bytes]], offset: int = 0) -> StoredMessage:
    return StoredMessage(TOPIC, 0, offset, None, value, headers)


def orders(*numbers: int) -> list[OrderPlaced]:
    return [OrderPlaced(data=Order(number=number)) for number in numbers]


def header(message: StoredMessage, name: str) -> bytes:
    values = [value for key, value in message.headers() if key == name]
    assert values, f"no {name} header"
    return values[-1]


def number_header(message: StoredMessage, name: str) -> int:
    return int.from_bytes(header(message, name), "big", signed=True)


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


@pytest.mark.parametrize("mode", MODES)
async def test_each_event_reaches_its_handler_in_order_and_the_lane_moves_past_it(
    mode: str,
) -> None:
    """Every event is handled once, in offset order; the committable position follows."""
    harness = Harness(mode)
    seen: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)

    harness.on(OrderPlaced, on_order)
    started = time.perf_counter()
    lane = await harness.drain(stored(orders(*range(40))))  # more than one chunk
    elapsed = time.perf_counter() - started
    assert seen == list(range(40))
    assert not lane.queue
    assert lane.offsets.position == 40
    assert sum(harness.released) == 40
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("consumed_total", **labels, outcome="ok") == 40
    assert harness.sample("handler_duration_seconds_count", **labels) == 40
    assert 0 <= harness.sample("handler_duration_seconds_sum", **labels) <= elapsed
    assert harness.sample("handler_failures_total", **labels) == 0


@pytest.mark.parametrize("mode", MODES)
async def test_events_published_by_a_handler_carry_its_event_as_cause_and_its_correlation(
    mode: str,
) -> None:
    """The handler runs with its event's id and correlation id; both are restored after."""
    harness = Harness(mode)
    publisher = EventPublisher(harness.transport, registry=harness.registry)
    seen: list[str | None] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(context.correlation_id.get())
        await publisher.publish(OrderShipped(data=Shipment(number=event.data.number)))

    harness.on(OrderPlaced, on_order)
    placed = [
        OrderPlaced(data=Order(number=number), correlationid=correlation)
        for number, correlation in enumerate(["c1", "c1", "c2", "c1"])
    ]
    token = context.correlation_id.set("outer")
    try:
        await harness.drain(stored(placed))
        assert context.correlation_id.get() == "outer"
    finally:
        context.correlation_id.reset(token)
    assert seen == ["c1", "c1", "c2", "c1"]
    shipped = harness.topic(TOPIC)  # only what the handler published
    assert [header(m, "ce_causationid").decode() for m in shipped] == [e.id for e in placed]
    assert [header(m, "ce_correlationid") for m in shipped] == [b"c1", b"c1", b"c2", b"c1"]
    assert OrderShipped(data=Shipment(number=0)).causationid is None


@pytest.mark.parametrize("mode", MODES)
async def test_a_failing_handler_is_retried_in_process_with_the_policys_backoffs(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Retry n waits the policy's backoff n-1; each failure is counted and logged."""
    policy = RecordingPolicy(attempts=4, backoff=0, topic_delays=(0.01,))
    harness = Harness(mode, policy)
    calls: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        calls.append(event.data.number)
        if event.data.number == 2 and calls.count(2) < 4:
            raise ConnectionError("ledger unavailable")

    harness.on(OrderPlaced, on_order)
    with caplog.at_level(logging.WARNING, "aegis.msg"):
        lane = await harness.drain(stored(orders(1, 2, 3)))
    assert calls == [1, 2, 2, 2, 2, 3]
    assert policy.asked == [0, 1, 2]
    assert lane.offsets.position == 3
    assert harness.topic(f"{TOPIC}-retry-10") == []
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("retries_total", **labels, stage="in_process") == 3
    assert harness.sample("handler_failures_total", **labels) == 3
    assert harness.sample("consumed_total", **labels, outcome="ok") == 3
    assert harness.sample("handler_duration_seconds_count", **labels) == 6
    failures = [r.getMessage() for r in caplog.records if "failed on event" in r.getMessage()]
    assert [f.split(": ")[0].rsplit(", ", 1)[1] for f in failures] == [
        "attempt 1",
        "attempt 2",
        "attempt 3",
    ]
    assert all(f.endswith("ConnectionError('ledger unavailable')") for f in failures)
    assert "on_order" in failures[0]


@pytest.mark.parametrize("mode", MODES)
async def test_an_event_that_keeps_failing_goes_to_the_first_retry_topic(mode: str) -> None:
    """After its attempts in process, due after the first retry topic's delay."""
    harness = Harness(mode, RetryPolicy(attempts=2, backoff=0, topic_delays=(0.01, 3600)))
    calls: list[int] = []
    placed = orders(1, 2, 3)

    async def on_order(event: OrderPlaced) -> None:
        calls.append(event.data.number)
        if event.data.number == 2:
            raise ValueError("cannot book order 2")

    harness.on(OrderPlaced, on_order)
    before = time.time()
    lane = await harness.drain(stored(placed))
    after = time.time()
    assert calls == [1, 2, 2, 3]
    assert lane.offsets.position == 3  # the failed event was handed on, so it is done here
    (first,) = harness.topic(f"{TOPIC}-retry-10")
    assert header(first, "ce_id") == placed[1].id.encode()
    assert number_header(first, "retry_topic-attempts") == 2
    due = number_header(first, "retry_topic-backoff-timestamp")
    assert int((before + 0.01) * 1000) <= due <= int((after + 0.01) * 1000)
    assert header(first, "kafka_dlt-original-consumer-group") == GROUP.encode()
    assert number_header(first, "kafka_dlt-original-offset") == 1
    assert header(first, "kafka_dlt-exception-message") == b"cannot book order 2"
    assert harness.topic(f"{TOPIC}.DLT") == []
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("retries_total", **labels, stage="topic") == 1
    assert harness.sample("consumed_total", **labels, outcome="retried") == 1
    assert harness.sample("consumed_total", **labels, outcome="ok") == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_retry_topics_event_is_tried_once_then_goes_on_to_the_next_or_the_dead_letters(
    mode: str,
) -> None:
    """Each retry topic calls the handler once; after the last one the event is dead."""
    harness = Harness(mode, RetryPolicy(attempts=2, backoff=0, topic_delays=(0.01, 0.5)))
    calls: list[int] = []
    (placed,) = orders(2)

    async def on_order(event: OrderPlaced) -> None:
        calls.append(event.data.number)
        raise ValueError("cannot book order 2")

    harness.on(OrderPlaced, on_order)
    await harness.drain(stored([placed]))
    (first,) = harness.topic(f"{TOPIC}-retry-10")
    calls.clear()
    before = time.time()
    retry_lane = await harness.drain([first], f"{TOPIC}-retry-10")
    after = time.time()
    assert calls == [2]
    assert retry_lane.offsets.position == 1
    assert harness.released == [1, 1]
    (second,) = harness.topic(f"{TOPIC}-retry-500")
    assert number_header(second, "retry_topic-attempts") == 3
    due = number_header(second, "retry_topic-backoff-timestamp")
    assert int((before + 0.5) * 1000) <= due <= int((after + 0.5) * 1000)
    assert header(second, "kafka_dlt-original-topic") == TOPIC.encode()
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("retries_total", **labels, stage="topic") == 2
    assert harness.topic(f"{TOPIC}.DLT") == []

    calls.clear()
    await harness.drain([second], f"{TOPIC}-retry-500")
    assert calls == [2]
    (dead,) = harness.topic(f"{TOPIC}.DLT")
    assert header(dead, "ce_id") == placed.id.encode()
    assert number_header(dead, "retry_topic-attempts") == 4
    assert header(dead, "kafka_dlt-original-topic") == TOPIC.encode()
    assert number_header(dead, "kafka_dlt-original-offset") == 0
    assert header(dead, "kafka_dlt-exception-fqcn") == b"ValueError"
    assert harness.sample("dead_lettered_total", **labels, reason="exhausted") == 1
    assert harness.sample("consumed_total", **labels, outcome="dead_lettered") == 1
    assert harness.sample("handler_failures_total", **labels) == 4
    assert harness.sample("retries_total", **labels, stage="in_process") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_not_retryable_error_goes_to_the_dead_letters_without_another_call(
    mode: str,
) -> None:
    """Raised first or after a retriable failure: the event is dead-lettered at once."""
    harness = Harness(mode)
    calls: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        calls.append(event.data.number)
        if event.data.number == 2 and calls.count(2) == 1:
            raise ConnectionError("ledger unavailable")
        if event.data.number in {1, 2}:
            raise InvalidInputError("number out of range", field="number")

    harness.on(OrderPlaced, on_order)
    lane = await harness.drain(stored(orders(1, 2, 3)))
    assert calls == [1, 2, 2, 3]
    assert lane.offsets.position == 3
    dead = harness.topic(f"{TOPIC}.DLT")
    assert [number_header(m, "retry_topic-attempts") for m in dead] == [1, 2]
    assert harness.topic(f"{TOPIC}-retry-10") == []
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("dead_lettered_total", **labels, reason="not_retryable") == 2
    assert harness.sample("handler_failures_total", **labels) == 3
    assert harness.sample("retries_total", **labels, stage="in_process") == 1


async def test_a_not_retryable_error_from_a_retry_topic_goes_to_the_dead_letters() -> None:
    harness = Harness("plain")
    calls: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        calls.append(event.data.number)
        raise InvalidInputError("number out of range", field="number")

    harness.on(OrderPlaced, on_order)
    (message,) = stored(orders(5), f"{TOPIC}-retry-10")
    await harness.drain([message], f"{TOPIC}-retry-10")
    assert calls == [5]
    (dead,) = harness.topic(f"{TOPIC}.DLT")
    assert number_header(dead, "retry_topic-attempts") == 1
    assert harness.topic(f"{TOPIC}-retry-20") == []


@pytest.mark.parametrize("retry_topic", [f"{TOPIC}-retry-10", f"{TOPIC}-retry-20"])
async def test_a_retry_topic_message_waits_for_its_due_time_and_a_stop_leaves_it(
    retry_topic: str,
) -> None:
    """Before its due time the handler is not called; a stop during the wait leaves it."""
    harness = Harness("plain")
    calls: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        calls.append(event.data.number)

    harness.on(OrderPlaced, on_order)
    (message,) = stored(orders(6), retry_topic)
    due = int((time.time() + 3600) * 1000).to_bytes(8, "big")
    message.header_list.append(("retry_topic-backoff-timestamp", due))
    lane = harness.lane([message], retry_topic)
    task = asyncio.create_task(harness.work.drain(lane))
    for _ in range(10):
        await asyncio.sleep(0)
    assert calls == []
    lane.interrupt.set()
    await asyncio.wait_for(task, 5)
    assert calls == []
    assert list(lane.queue) == [message]  # left for redelivery
    assert lane.offsets.position is None
    interrupt = asyncio.Event()
    interrupt.set()
    assert await harness.work.handle(message, interrupt) is False
    assert calls == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_stop_while_a_handler_runs_leaves_the_rest_of_the_lane(mode: str) -> None:
    """The running event finishes; the events after it stay queued, uncommitted."""
    harness = Harness(mode)
    seen: list[int] = []
    lane = harness.lane(stored(orders(*range(6))))

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)
        if event.data.number == 2:
            lane.interrupt.set()

    harness.on(OrderPlaced, on_order)
    await asyncio.wait_for(harness.work.drain(lane), 10)
    assert seen == [0, 1, 2]
    assert lane.offsets.position == 3
    assert [m.offset() for m in lane.queue] == [3, 4, 5]


@pytest.mark.parametrize("mode", MODES)
async def test_a_stop_during_the_in_process_backoff_leaves_the_failed_event(mode: str) -> None:
    """Neither retried nor forwarded: it and the events after it are redelivered."""
    harness = Harness(mode, RetryPolicy(attempts=3, backoff=60, topic_delays=(0.01,)))
    seen: list[int] = []
    lane = harness.lane(stored(orders(*range(4))))

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)
        if event.data.number == 1:
            lane.interrupt.set()
            raise ConnectionError("ledger unavailable")

    harness.on(OrderPlaced, on_order)
    await asyncio.wait_for(harness.work.drain(lane), 10)
    assert seen == [0, 1]
    assert lane.offsets.position == 1
    assert [m.offset() for m in lane.queue] == [1, 2, 3]
    assert harness.topic(f"{TOPIC}-retry-10") == []
    assert harness.topic(f"{TOPIC}.DLT") == []


@pytest.mark.parametrize("mode", MODES)
async def test_events_of_other_types_between_keep_the_lane_in_order(mode: str) -> None:
    """Runs of one type, a failure handed on, and events nobody handles, in offset order."""
    harness = Harness(mode)
    seen: list[str] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(f"placed {event.data.number}")
        if event.data.number == 2 and seen.count("placed 2") == 1:
            raise ConnectionError("ledger unavailable")

    async def on_shipped(event: OrderShipped) -> None:
        seen.append(f"shipped {event.data.number}")

    harness.on(OrderPlaced, on_order)
    harness.on(OrderShipped, on_shipped)
    events: list[Event[Any]] = [
        *orders(1, 2, 3),
        OrderShipped(data=Shipment(number=1)),
        *orders(4),
        OrderShipped(data=Shipment(number=2)),
        OrderShipped(data=Shipment(number=3)),
    ]
    lane = await harness.drain(stored(events))
    assert seen == [
        "placed 1",
        "placed 2",
        "placed 2",
        "placed 3",
        "shipped 1",
        "placed 4",
        "shipped 2",
        "shipped 3",
    ]
    assert lane.offsets.position == len(events)
    assert sum(harness.released) == len(events)


async def test_poison_and_unhandled_messages_are_dead_lettered_or_skipped_in_order() -> None:
    harness = Harness("plain")
    seen: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)

    harness.on(OrderPlaced, on_order)
    good, newer, unhandled = stored([*orders(1), *orders(2), OrderShipped(data=Shipment(number=3))])
    newer_headers = [
        (name, b"9" if name == "ce_schemaversion" else value) for name, value in newer.headers()
    ]
    messages = [
        raw(b"{not json", [("ce_type", OrderPlaced.type.encode()), ("ce_id", b"p")]),
        raw(newer.value(), newer_headers),
        raw(b"{}", [("ce_type", b"test.handling.unknown"), ("ce_id", b"u")]),
        raw(unhandled.value(), unhandled.headers()),
        raw(good.value(), good.headers()),
    ]
    messages = [
        StoredMessage(TOPIC, 0, offset, None, m.value(), m.headers())
        for offset, m in enumerate(messages)
    ]
    lane = await harness.drain(messages)
    assert seen == [1]
    assert lane.offsets.position == 5
    assert sum(harness.released) == 5  # room for five more messages to be fetched
    dead = harness.topic(f"{TOPIC}.DLT")
    assert [number_header(m, "kafka_dlt-original-offset") for m in dead] == [0, 1]
    assert [number_header(m, "retry_topic-attempts") for m in dead] == [1, 1]
    sample = harness.sample
    placed = {"topic": TOPIC, "type": OrderPlaced.type}
    assert sample("dead_lettered_total", **placed, reason="invalid") == 1
    assert sample("dead_lettered_total", **placed, reason="unsupported_version") == 1
    assert sample("consumed_total", topic=TOPIC, type="unknown", outcome="ignored") == 1
    shipped = {"topic": TOPIC, "type": OrderShipped.type}
    assert sample("consumed_total", **shipped, outcome="ignored") == 1
    assert sample("handler_failures_total", **placed) == 0


async def test_handle_dead_letters_a_message_that_cannot_be_decoded() -> None:
    harness = Harness("plain")
    harness.on(OrderPlaced, lambda event: asyncio.sleep(0))
    message = raw(b"{not json", [("ce_type", OrderPlaced.type.encode()), ("ce_id", b"p")])
    assert await harness.work.handle(message, asyncio.Event())
    (dead,) = harness.topic(f"{TOPIC}.DLT")
    assert header(dead, "kafka_dlt-exception-fqcn") == b"aegis.msg._errors.InvalidEventError"
    labels = {"topic": TOPIC, "type": OrderPlaced.type, "reason": "invalid"}
    assert harness.sample("dead_lettered_total", **labels) == 1


async def test_one_limit_bounds_the_handlers_running_in_all_lanes() -> None:
    harness = Harness("limited")
    running: list[int] = [0]
    most = 0

    async def on_order(event: OrderPlaced) -> None:
        nonlocal most
        running[0] += 1
        most = max(most, running[0])
        for _ in range(5):
            await asyncio.sleep(0)
        running[0] -= 1

    harness.on(OrderPlaced, on_order)
    lanes = [harness.lane(stored(orders(*range(5)))) for _ in range(3)]
    await asyncio.wait_for(asyncio.gather(*(harness.work.drain(lane) for lane in lanes)), 10)
    assert most == 1
    assert all(lane.offsets.position == 5 for lane in lanes)


@pytest.mark.parametrize(("max_size", "calls"), [(1, [1] * 7), (3, [3, 3, 1]), (32, [7])])
async def test_a_batch_handler_gets_at_most_max_size_events_a_call(
    max_size: int, calls: list[int]
) -> None:
    harness = Harness("plain")
    batches: list[list[int]] = []

    async def on_orders(events: list[OrderPlaced]) -> None:
        batches.append([event.data.number for event in events])

    harness.on(OrderPlaced, on_orders, batch=max_size)
    lane = await harness.drain(stored(orders(*range(7))))
    assert [len(batch) for batch in batches] == calls
    assert [number for batch in batches for number in batch] == list(range(7))
    assert lane.offsets.position == 7


@pytest.mark.parametrize(
    ("max_size", "calls"), [(1, [[1], [2], [3], [4], [5]]), (2, [[1, 2], [3, 4], [5]])]
)
async def test_each_batch_handler_keeps_its_own_max_size_when_another_takes_more(
    max_size: int, calls: list[list[int]]
) -> None:
    """The larger max_size sets how many messages are decoded together, not the other's."""
    harness = Harness("plain")
    seen: list[list[int]] = []

    async def on_orders(events: list[OrderPlaced]) -> None:
        seen.append([event.data.number for event in events])

    async def on_shipped(events: list[OrderShipped]) -> None:
        seen.append([-event.data.number for event in events])

    harness.on(OrderPlaced, on_orders, batch=max_size)
    harness.on(OrderShipped, on_shipped, batch=8)
    events: list[Event[Any]] = [
        *(OrderShipped(data=Shipment(number=n)) for n in (6, 7)),
        *orders(1, 2, 3, 4, 5),
    ]
    lane = await harness.drain(stored(events))
    assert seen == [[-6, -7], *calls]
    assert lane.offsets.position == 7


async def test_a_batch_handlers_run_ends_at_an_event_of_another_type() -> None:
    harness = Harness("plain")
    seen: list[list[int] | int] = []

    async def on_orders(events: list[OrderPlaced]) -> None:
        seen.append([event.data.number for event in events])

    async def on_shipped(event: OrderShipped) -> None:
        seen.append(event.data.number)

    harness.on(OrderPlaced, on_orders, batch=8)
    harness.on(OrderShipped, on_shipped)
    events: list[Event[Any]] = [*orders(1, 2), OrderShipped(data=Shipment(number=9)), *orders(3)]
    lane = await harness.drain(stored(events))
    assert seen == [[1, 2], 9, [3]]
    assert lane.offsets.position == 4


@pytest.mark.parametrize("mode", MODES)
async def test_a_batch_handlers_failed_event_is_retried_alone_then_forwarded(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """BatchFailedError(i): events before i are done, i goes alone, the rest come again."""
    harness = Harness(mode, RetryPolicy(attempts=2, backoff=0, topic_delays=(0.01, 3600)))
    batches: list[list[int]] = []

    async def on_orders(events: list[OrderPlaced]) -> None:
        batches.append([event.data.number for event in events])
        for index, event in enumerate(events):
            if event.data.number == 2:
                try:
                    raise ValueError("cannot book order 2")
                except ValueError as exc:
                    raise BatchFailedError(index) from exc

    harness.on(OrderPlaced, on_orders, batch=8)
    with caplog.at_level(logging.WARNING, "aegis.msg"):
        lane = await harness.drain(stored(orders(1, 2, 3)))
    assert batches == [[1, 2, 3], [2], [3]]
    failures = [r.getMessage() for r in caplog.records if "failed on event" in r.getMessage()]
    assert [f.split(": ")[0].rsplit(", ", 1)[1] for f in failures] == ["attempt 1", "attempt 2"]
    assert lane.offsets.position == 3
    (retried,) = harness.topic(f"{TOPIC}-retry-10")
    assert number_header(retried, "retry_topic-attempts") == 2
    assert header(retried, "kafka_dlt-exception-fqcn") == b"ValueError"
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("handler_failures_total", **labels) == 2
    assert harness.sample("retries_total", **labels, stage="in_process") == 1

    batches.clear()
    await harness.drain([retried], f"{TOPIC}-retry-10")
    assert batches == [[2]]  # alone, once
    (again,) = harness.topic(f"{TOPIC}-retry-3600000")
    assert number_header(again, "retry_topic-attempts") == 3
    assert header(again, "kafka_dlt-exception-fqcn") == b"ValueError"


async def test_a_batch_failing_without_an_index_is_handled_again_one_event_at_a_time() -> None:
    harness = Harness("plain", RetryPolicy(attempts=1, backoff=0, topic_delays=(0.01,)))
    batches: list[list[int]] = []

    async def on_orders(events: list[OrderPlaced]) -> None:
        batches.append([event.data.number for event in events])
        if any(event.data.number == 2 for event in events):
            raise ConnectionError("ledger unavailable")

    harness.on(OrderPlaced, on_orders, batch=8)
    lane = await harness.drain(stored(orders(1, 2, 3)))
    assert batches == [[1, 2, 3], [1], [2], [3]]
    assert lane.offsets.position == 3
    (retried,) = harness.topic(f"{TOPIC}-retry-10")
    assert number_header(retried, "retry_topic-attempts") == 1
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("handler_failures_total", **labels) == 2  # the batch, then 2 alone


async def test_each_handled_event_gets_a_consumer_span_under_its_producers_trace(
    spans: InMemorySpanExporter,
) -> None:
    harness = Harness("traced")

    async def on_order(event: OrderPlaced) -> None:
        pass

    harness.on(OrderPlaced, on_order)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    placed = [OrderPlaced(data=Order(number=n), traceparent=parent) for n in range(2)]
    await harness.drain(stored(placed))
    processed = [s for s in spans.get_finished_spans() if s.name == f"{TOPIC} process"]
    assert len(processed) == 2
    for span, event in zip(processed, placed, strict=True):
        assert span.kind is trace.SpanKind.CONSUMER
        assert span.context is not None
        assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
        assert span.parent is not None
        assert f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
        assert dict(span.attributes or {}) == {
            "messaging.system": "kafka",
            "messaging.destination.name": TOPIC,
            "messaging.operation.type": "process",
            "messaging.message.id": event.id,
            "cloudevents.event_type": OrderPlaced.type,
        }


async def test_chunks_and_runs_of_more_than_256_messages_are_handled_in_one_drain() -> None:
    """Long runs of one type (a batch handler's max_size sets the chunk) all finish."""
    harness = Harness("plain")
    seen: list[int] = []
    batches: list[int] = []

    async def on_shipped(event: OrderShipped) -> None:
        seen.append(event.data.number)

    async def on_orders(events: list[OrderPlaced]) -> None:
        batches.append(len(events))

    harness.on(OrderShipped, on_shipped)
    harness.on(OrderPlaced, on_orders, batch=400)
    shipped = [OrderShipped(data=Shipment(number=n)) for n in range(300)]
    lane = await harness.drain(stored([*shipped, *orders(*range(400))]))
    assert seen == list(range(300))
    assert batches == [100, 300]  # the rest of the first chunk of 400, then the next chunk
    assert not lane.queue
    assert lane.offsets.position == 700


async def test_handle_retries_a_main_topic_message_then_forwards_it_to_the_first_retry_topic() -> (
    None
):
    harness = Harness("plain", RetryPolicy(attempts=2, backoff=0, topic_delays=(0.01, 3600)))
    calls: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        calls.append(event.data.number)
        raise ValueError("cannot book it")

    harness.on(OrderPlaced, on_order)
    (message,) = stored(orders(4))
    assert await harness.work.handle(message, asyncio.Event())
    assert calls == [4, 4]
    (retried,) = harness.topic(f"{TOPIC}-retry-10")
    assert number_header(retried, "retry_topic-attempts") == 2


async def test_forwarding_to_a_retry_topic_of_a_broker_that_is_down_stops_at_the_interrupt() -> (
    None
):
    """Interrupted before the broker took it: not counted as retried, left for redelivery."""
    transport = BrokerDown()

    async def fail(event: OrderPlaced) -> None:
        raise ValueError("cannot book it")

    policy = RetryPolicy(attempts=1, topic_delays=(0.01,))
    routes = {(TOPIC, OrderPlaced.type): Route(OrderPlaced, TOPIC, fail)}
    metrics = CollectorRegistry()
    registry = EventRegistry()
    registry.register(OrderPlaced)
    work = MessageHandling(
        HandlingContext(GROUP, policy, routes, transport),
        EventCodec(registry, source="test"),
        MsgMetrics.for_registry(metrics),
        None,
    )
    interrupt = asyncio.Event()
    (message,) = stored(orders(9))
    task = asyncio.create_task(work.handle(message, interrupt))
    await asyncio.wait_for(transport.refused.wait(), 5)
    interrupt.set()
    assert await asyncio.wait_for(task, 5) is False
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert metrics.get_sample_value("aegis_msg_retries_total", {**labels, "stage": "topic"}) is None


def defined_again() -> type[Event[Order]]:
    """OrderPlaced defined again, as reloading its module does: same module, name and type."""

    class Reloaded(Event[Order]):
        type = OrderPlaced.type
        topic = TOPIC

    Reloaded.__qualname__ = OrderPlaced.__qualname__
    return Reloaded


@pytest.mark.parametrize("batch", [0, 8])
async def test_a_handler_registered_before_its_event_class_was_defined_again_gets_its_events(
    batch: int,
) -> None:
    """The registry decodes into the new class; the handler still gets each event, in order."""
    harness = Harness("plain")
    seen: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)

    async def on_orders(events: list[OrderPlaced]) -> None:
        seen.extend(event.data.number for event in events)

    harness.on(OrderPlaced, on_orders if batch else on_order, batch=batch)
    harness.registry.register(defined_again())
    lane = await harness.drain(stored(orders(1, 2, 3)))
    assert seen == [1, 2, 3]
    assert lane.offsets.position == 3


@pytest.mark.parametrize("mode", MODES)
async def test_each_failed_event_of_a_run_is_forwarded_as_its_own_message(mode: str) -> None:
    harness = Harness(mode, RetryPolicy(attempts=1, backoff=0, topic_delays=(0.01,)))
    placed = orders(1, 2, 3, 4, 5)

    async def on_order(event: OrderPlaced) -> None:
        if event.data.number % 2:
            raise ValueError(f"cannot book order {event.data.number}")

    harness.on(OrderPlaced, on_order)
    lane = await harness.drain(stored(placed))
    assert lane.offsets.position == 5
    retried = harness.topic(f"{TOPIC}-retry-10")
    assert [header(m, "ce_id") for m in retried] == [placed[i].id.encode() for i in (0, 2, 4)]
    assert [number_header(m, "kafka_dlt-original-offset") for m in retried] == [0, 2, 4]
    assert [header(m, "kafka_dlt-exception-message") for m in retried] == [
        b"cannot book order 1",
        b"cannot book order 3",
        b"cannot book order 5",
    ]


async def test_messages_of_a_retry_topic_are_each_handled_once_in_order() -> None:
    harness = Harness("plain")
    seen: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)

    harness.on(OrderPlaced, on_order)
    lane = await harness.drain(stored(orders(1, 2, 3), f"{TOPIC}-retry-10"), f"{TOPIC}-retry-10")
    assert seen == [1, 2, 3]
    assert lane.offsets.position == 3
    assert harness.released == [1, 1, 1]


async def test_durations_reach_prometheus_clients_histogram_in_multiprocess_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A run's durations go one by one to a histogram without observe_many()."""
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, str(tmp_path))
    harness = Harness("plain")
    monkeypatch.delenv(MULTIPROCESS_DIR_VARIABLE)
    assert not hasattr(MsgMetrics.for_registry(harness.metrics).handler_duration, "observe_many")
    seen: list[int] = []

    async def on_order(event: OrderPlaced) -> None:
        seen.append(event.data.number)

    harness.on(OrderPlaced, on_order)
    await harness.drain(stored(orders(*range(40))))
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert len(seen) == 40
    assert harness.sample("handler_duration_seconds_count", **labels) == 40
    assert harness.sample("consumed_total", **labels, outcome="ok") == 40


async def test_a_run_cancelled_in_a_handler_records_the_durations_of_the_events_before() -> None:
    """Durations of the handlers that returned are recorded; the cancelled one's is not."""
    harness = Harness("plain")
    entered = asyncio.Event()

    async def on_order(event: OrderPlaced) -> None:
        if event.data.number == 3:
            entered.set()
            await asyncio.sleep(60)

    harness.on(OrderPlaced, on_order)
    lane = harness.lane(stored(orders(*range(6))))
    task = asyncio.create_task(harness.work.drain(lane))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    labels = {"topic": TOPIC, "type": OrderPlaced.type}
    assert harness.sample("handler_duration_seconds_count", **labels) == 3
    assert harness.sample("consumed_total", **labels, outcome="ok") == 0  # left for redelivery
    assert len(lane.queue) == 6
