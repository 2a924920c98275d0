"""A subscriber that lives through a broker killed and restarted empty, twice, while a publisher
keeps sending: it resumes on the topic the publisher re-creates, every event reaches its
idempotent handler once in effect and in per-user order, and its health check fails during the
outage and passes again after.

Events the old broker acknowledged but nobody read are gone with its storage, so before each kill
the publisher pauses until the subscriber has caught up, except for one event whose handler is
still running when the broker dies: it finishes during the outage (the first time) or after the
broker came back empty (the second time), and its commit must not move the new broker's group
past events the subscriber never saw."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from aegis.msg import (
    Event,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    KafkaSettings,
    KafkaTransport,
    PublishError,
    SqlIdempotencyStore,
    idempotent,
)
from aegis.testing import RestartableServer

pytestmark = pytest.mark.anyio

USERS = 4
TOPIC = "user-steps"
BURST = 40
"""Events sent between two milestones of the scenario."""

Row = tuple[str, str, int]
"""``(event id, user, sequence number of the user's event)``."""


class StepData(BaseModel):
    user: str
    seq: int


class UserStep(Event[StepData]):
    type = "test.subscriber.restart.step"
    topic = TOPIC
    key_field = "user"


class Journal:
    """What the subscriber did: every delivery, each event's effective handling, and a gate."""

    def __init__(self) -> None:
        self.deliveries = 0
        self.applied: list[Row] = []
        self.held_id: str | None = None
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()

    async def until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        """Wait until ``condition`` holds, re-checked whenever the subscriber did something."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not within {timeout} s: {what}") from None


class Stream:
    """Publishes each user's next step in turn until paused; an event is sent until acknowledged."""

    def __init__(self, publisher: EventPublisher, journal: Journal) -> None:
        self.publisher = publisher
        self.journal = journal
        self.acked: list[Row] = []
        self.sending = asyncio.Event()
        self.sending.set()
        self.idle = asyncio.Event()

    def next_event(self) -> UserStep:
        n = len(self.acked)
        return UserStep(data=StepData(user=f"user-{n % USERS}", seq=n // USERS))

    async def send(self, event: UserStep) -> None:
        while True:
            try:
                await self.publisher.publish(event)
            except PublishError:
                continue  # the outage: the same event again, so each user's steps stay in order
            break
        self.acked.append((event.id, event.data.user, event.data.seq))
        self.journal.changed()

    async def run(self) -> None:
        while True:
            if not self.sending.is_set():
                self.idle.set()
                await self.sending.wait()
                self.idle.clear()
            await self.send(self.next_event())
            await asyncio.sleep(0.005)  # a steady stream, not a flood

    async def pause(self) -> None:
        self.sending.clear()
        async with asyncio.timeout(60):
            await self.idle.wait()


async def passes(check: Callable[[], object]) -> bool:
    """Whether the subscriber's health check passes now."""
    try:
        result = check()
        if asyncio.iscoroutine(result):
            await result
    except Exception:  # noqa: BLE001 - any failure of the check counts as failing
        return False
    return True


async def health_until(check: Callable[[], object], *, passing: bool, what: str) -> None:
    """Poll the health check (as a readiness probe does) until it passes or fails."""
    end = time.monotonic() + 30
    while await passes(check) is not passing:
        if time.monotonic() > end:
            raise AssertionError(f"not within 30 s: {what}")
        await asyncio.sleep(0.05)


def create_topic(bootstrap: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, num_partitions=partitions)]).values():
        future.result(timeout=10)


def assert_each_event_applied_once_in_user_order(applied: list[Row], acked: list[Row]) -> None:
    """No acknowledged event missing, none applied twice, each user's steps applied in order."""
    assert {row[0] for row in applied} == {row[0] for row in acked}
    assert len(applied) == len({row[0] for row in applied})
    for user in (f"user-{n}" for n in range(USERS)):
        steps = [seq for _, who, seq in applied if who == user]
        assert steps == sorted(steps), f"{user} out of order: {steps}"


async def test_subscriber_resumes_after_the_broker_restarts_empty_twice_and_misses_nothing(
    broker: RestartableServer, engine: AsyncEngine
) -> None:
    await asyncio.to_thread(broker.start)
    await asyncio.to_thread(create_topic, broker.url, 4)
    store = SqlIdempotencyStore(engine)
    await store.create_table()
    journal = Journal()
    registry = EventRegistry()
    metrics = CollectorRegistry()
    settings = KafkaSettings(
        bootstrap_servers=broker.url,
        delivery_timeout=2.0,
        producer={"reconnect.backoff.max.ms": 200},
        consumer={
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "reconnect.backoff.max.ms": 200,
        },
    )

    @idempotent(store, name="apply")
    async def apply(event: UserStep) -> None:
        if event.id == journal.held_id:
            journal.holding.set()
            journal.changed()
            await journal.release.wait()
        journal.applied.append((event.id, event.data.user, event.data.seq))

    async with KafkaTransport(settings, metrics_registry=metrics) as kafka:
        subscriber = EventSubscriber(
            kafka,
            group_id="user-steps-readers",
            concurrency="key",
            registry=registry,
            metrics_registry=metrics,
        )

        @subscriber.on(UserStep)
        async def handle(event: UserStep) -> None:
            journal.deliveries += 1
            try:
                await apply(event)
            finally:
                journal.changed()

        publisher = EventPublisher(
            kafka, source="users", registry=registry, metrics_registry=metrics
        )
        stream = Stream(publisher, journal)
        writer = asyncio.create_task(stream.run())
        try:
            async with subscriber:
                for outage in range(2):
                    more = len(stream.acked) + BURST
                    await journal.until(lambda: len(stream.acked) >= more,  # noqa: B023
                                        f"events before outage {outage}", 30)  # fmt: skip
                    await stream.pause()
                    # One event's handler is still running when the broker dies.
                    held = stream.next_event()
                    journal.held_id, journal.holding, journal.release = (
                        held.id, asyncio.Event(), asyncio.Event()
                    )  # fmt: skip
                    await stream.send(held)
                    await journal.until(
                        lambda: (
                            journal.holding.is_set()
                            and len(journal.applied) == len(stream.acked) - 1
                        ),
                        f"caught up before outage {outage}",
                        30,
                    )
                    broker.stop()
                    stream.sending.set()
                    if outage == 0:
                        journal.release.set()  # it finishes while the broker is down
                    await asyncio.to_thread(broker.start)  # same address, empty storage
                    more = len(stream.acked) + BURST
                    await journal.until(lambda: len(stream.acked) >= more,  # noqa: B023
                                        f"events after outage {outage}", 30)  # fmt: skip
                    # The second time it finishes on the new broker, whose topic has new events.
                    journal.release.set()
                await stream.pause()
                await journal.until(
                    lambda: {row[0] for row in journal.applied} >= {row[0] for row in stream.acked},
                    f"every event applied ({len(stream.acked)} sent)",
                    30,
                )
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
    assert_each_event_applied_once_in_user_order(journal.applied, stream.acked)
