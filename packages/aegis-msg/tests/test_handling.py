"""MessageHandling on its own: given a HandlingContext and a lane's interrupt, no subscriber."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from aegis.core.errors import InvalidInputError
from aegis.msg import (
    BatchResult,
    DeliveryResult,
    Event,
    EventRegistry,
    InMemoryTransport,
    PublishError,
    RetryPolicy,
    StoredMessage,
)
from aegis.msg._handling import HandlingContext, MessageHandling, Route
from aegis.msg._metrics import MsgMetrics
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
