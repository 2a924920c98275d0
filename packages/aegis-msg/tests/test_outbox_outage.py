"""The outbox relay keeps running through a broker outage and delivers everything, in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from aegis.msg import Event, EventRegistry, KafkaSettings, KafkaTransport, Outbox, OutboxRelay
from aegis.testing import RestartableServer

pytestmark = pytest.mark.anyio


class StepData(BaseModel):
    account: str
    step: int


class AccountStep(Event[StepData]):
    type = "test.account.step"
    topic = "accounts"
    key_field = "account"


@pytest.fixture
def broker() -> Iterator[RestartableServer]:
    """A Kafka broker that can stop and start again at the same address."""
    server = RestartableServer("kafka")
    yield server
    server.stop()


@pytest.fixture
async def engine(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(
        postgres_database.replace("postgresql://", "postgresql+asyncpg://")
    )
    yield engine
    await engine.dispose()


def read(bootstrap: str, topic: str, count: int) -> list[int]:
    """The steps of the first ``count`` messages of ``topic``, partition by partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[int] = []
        for _ in range(150):
            for message in consumer.consume(count, 0.2):
                if message.error() is None:
                    found.append(json.loads(message.value() or b"")["step"])
            if len(found) >= count:
                return found
        raise AssertionError(f"only {found} of {count} messages arrived")
    finally:
        consumer.close()


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
            assert await asyncio.to_thread(read, broker.url, "accounts", 2) == [0, 1]

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
            assert await asyncio.to_thread(read, broker.url, "accounts", 3) == [2, 3, 4]
        async with engine.connect() as connection:
            assert (await connection.execute(pending)).scalar_one() == 0
