"""Fixtures for aegis-msg's tests: both transports, topics, fresh registries, message readers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aegis.msg import (
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    InMemoryTransport,
    KafkaSettings,
    KafkaTransport,
    RetryPolicy,
    Transport,
    make_transport,
)
from aegis.msg._transport import ReceivedMessage
from aegis.testing import RestartableServer

TopicFactory = Callable[..., str]
ReadTopic = Callable[[str, int], Awaitable[list[ReceivedMessage]]]

FAST_GROUP_JOIN = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def registry() -> EventRegistry:
    """A registry of this test's own, so event types of different tests never clash."""
    return EventRegistry()


@pytest.fixture
def metrics() -> CollectorRegistry:
    """A Prometheus registry of this test's own, so counts start at zero."""
    return CollectorRegistry()


@pytest.fixture
def group_id() -> str:
    return f"aegis-msg-test-{uuid.uuid4().hex[:12]}"


def kafka_settings(bootstrap: str, **producer: Any) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        client_id="aegis-msg-tests",
        consumer=FAST_GROUP_JOIN,
        producer=producer,
    )


@pytest.fixture(params=["memory", "kafka"])
def transport_kind(request: pytest.FixtureRequest) -> str:
    """Each behavioural test runs on the in-memory transport and on a real broker."""
    return str(request.param)


@pytest.fixture
async def transport(
    transport_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[Transport]:
    # Through make_transport and the protocol's start/close, as a service built on settings does.
    settings = None
    if transport_kind == "kafka":
        settings = kafka_settings(request.getfixturevalue("kafka_bootstrap"))
    transport = make_transport(settings)
    assert isinstance(transport, InMemoryTransport if settings is None else KafkaTransport)
    await transport.start()
    try:
        yield transport
    finally:
        await transport.close()


@pytest.fixture
def topic_factory(
    transport_kind: str, transport: Transport, request: pytest.FixtureRequest
) -> TopicFactory:
    """``topic_factory("orders", partitions=3)``: a new topic on the transport under test."""
    if transport_kind == "kafka":
        factory: TopicFactory = request.getfixturevalue("kafka_topic_factory")
        return factory
    assert isinstance(transport, InMemoryTransport)

    def create(name: str = "topic", *, partitions: int = 1) -> str:
        topic = f"aegis-test-{name}-{uuid.uuid4().hex[:12]}"
        transport.create_topic(topic, partitions)
        return topic

    return create


@pytest.fixture
def read_topic(
    transport_kind: str, transport: Transport, request: pytest.FixtureRequest
) -> Iterator[ReadTopic]:
    """``await read_topic(topic, count)``: the first ``count`` messages of a topic, no group."""
    consumers: list[Consumer] = []

    async def read(topic: str, count: int) -> list[ReceivedMessage]:
        if isinstance(transport, InMemoryTransport):
            messages: list[ReceivedMessage] = list(transport.messages(topic))
            assert len(messages) == count, messages
            return messages
        return await asyncio.to_thread(read_kafka, topic, count)

    def read_kafka(topic: str, count: int) -> list[ReceivedMessage]:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader"})
        consumers.append(consumer)
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        found: list[ReceivedMessage] = []
        for _ in range(100):
            found += [m for m in consumer.consume(count, 0.2) if m.error() is None]
            if len(found) >= count:
                break
        assert len(found) == count, found
        return found

    yield read
    for consumer in consumers:
        consumer.close()


@dataclass
class MsgEnv:
    """Everything a behavioural test needs on the transport under test."""

    transport: Transport
    topic: TopicFactory
    read: ReadTopic
    group_id: str
    registry: EventRegistry
    metrics: CollectorRegistry

    def subscriber(self, **options: Any) -> EventSubscriber:
        """A subscriber in this test's group, registry and metrics, with fast retries."""
        options.setdefault("retry", RetryPolicy(attempts=3, backoff=0.01, topic_delays=(0.2,)))
        return EventSubscriber(
            self.transport,
            group_id=self.group_id,
            registry=self.registry,
            metrics_registry=self.metrics,
            **options,
        )

    def publisher(self, **options: Any) -> EventPublisher:
        """A publisher on this test's registry."""
        options.setdefault("registry", self.registry)
        return EventPublisher(self.transport, **options)


@pytest.fixture
def env(  # noqa: PLR0917 - a fixture that bundles the others
    transport: Transport,
    topic_factory: TopicFactory,
    read_topic: ReadTopic,
    group_id: str,
    registry: EventRegistry,
    metrics: CollectorRegistry,
) -> MsgEnv:
    return MsgEnv(transport, topic_factory, read_topic, group_id, registry, metrics)


class Collector:
    """Collects what handlers saw; ``await collector.wait(n)`` until n items arrived."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 60.0) -> list[Any]:
        return await self.wait_until(lambda items: len(items) >= count, timeout)

    async def wait_until(
        self, predicate: Callable[[list[Any]], bool], timeout: float = 60.0
    ) -> list[Any]:
        async with asyncio.timeout(timeout):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()
        return self.items


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def make_collector() -> Callable[[], Collector]:
    return Collector


@pytest.fixture
def broker() -> Iterator[RestartableServer]:
    """A broker of the test's own that it may stop and start again at the same address."""
    server = RestartableServer("kafka")
    yield server
    server.stop()


@pytest.fixture
async def engine(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    """An asyncpg engine on the test's own PostgreSQL database."""
    engine = create_async_engine(
        postgres_database.replace("postgresql://", "postgresql+asyncpg://")
    )
    yield engine
    await engine.dispose()
