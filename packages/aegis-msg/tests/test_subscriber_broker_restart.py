"""A subscriber that lives through a broker killed and restarted empty, twice, while a publisher
keeps sending: it resumes on the topic the publisher re-creates, every event reaches its
idempotent handler once in effect and in per-user order, its retry topic works again after, its
readiness check fails during the outage and passes again after, and it says so in WARNING lines
and metrics.

Events the old broker acknowledged but nobody read are gone with its storage, so before each kill
the publisher pauses until the subscriber has caught up, except for one event whose handler is
still running when the broker dies. The first time, the publisher sends into the outage (its
producer re-creates the topic as soon as the broker is back) and the held handler finishes while
the broker is down. The second time, the publishing service is away during the outage and comes
back only after the subscriber rejoined its group on the empty broker, so the subscriber must
notice the topic appearing; the held handler finishes only after the subscriber fetched the
held user's next steps from the new broker: they must wait for it (per-user order, one handler
per user at a time), and its commit must not move the new group past events it never saw."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from aegis.core.errors import ExternalServiceError
from aegis.msg import (
    Event,
    EventPublisher,
    EventRegistry,
    EventSubscriber,
    InMemoryTransport,
    KafkaSettings,
    KafkaTransport,
    MsgMetrics,
    PublishError,
    RetryPolicy,
    SqlIdempotencyStore,
    idempotent,
)
from aegis.testing import RestartableServer, create_topics

pytestmark = pytest.mark.anyio

USERS = 4
TOPIC = "user-steps"
GROUP = "user-steps-readers"
RETRY = RetryPolicy(attempts=1, topic_delays=(0.2,))
OWN_TOPICS = {f"{TOPIC}-retry-200", f"{TOPIC}.DLT"}
"""The retry and dead-letter topics the subscriber creates."""
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
        self.fail_once: set[str] = set()
        self.running: set[str] = set()
        self.overlaps: list[str] = []
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()

    def hold(self, event_id: str) -> None:
        """Keep the handler of ``event_id`` running until :attr:`release` is set."""
        self.held_id, self.holding, self.release = event_id, asyncio.Event(), asyncio.Event()

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
    """The publishing service: each user's next step in turn, each sent until acknowledged.

    It has a Kafka connection of its own, which it may close and open again.
    """

    def __init__(self, settings: KafkaSettings, registry: EventRegistry, journal: Journal):
        self.settings = settings
        self.registry = registry
        self.journal = journal
        self.acked: list[Row] = []
        self.partition_of: dict[str, int] = {}
        self.sending = asyncio.Event()
        self.idle = asyncio.Event()
        self.transport: KafkaTransport | None = None
        self.publisher: EventPublisher | None = None

    async def connect(self) -> None:
        self.transport = KafkaTransport(self.settings, metrics_registry=CollectorRegistry())
        await self.transport.start()
        self.publisher = EventPublisher(
            self.transport,
            source="users",
            registry=self.registry,
            metrics_registry=CollectorRegistry(),
        )

    async def disconnect(self) -> None:
        if self.transport is not None:
            await self.transport.close(0)
        self.transport = self.publisher = None

    def next_event(self) -> UserStep:
        n = len(self.acked)
        return UserStep(data=StepData(user=f"user-{n % USERS}", seq=n // USERS))

    async def send(self, event: UserStep) -> None:
        assert self.publisher is not None
        while True:
            try:
                result = await self.publisher.publish(event)
            except PublishError:
                continue  # the outage: the same event again, so each user's steps stay in order
            break
        self.partition_of[event.id] = result.partition
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

    async def burst(self, what: str) -> None:
        """Send until ``BURST`` more events are acknowledged."""
        more = len(self.acked) + BURST
        self.sending.set()
        await self.journal.until(lambda: len(self.acked) >= more, what, 30)


async def ready(subscriber: EventSubscriber) -> bool:
    """Whether the subscriber's readiness check passes now."""
    try:
        await subscriber.health_check()
    except ExternalServiceError as exc:
        if exc.code != "MSG_CONSUMER_UNAVAILABLE":
            raise
        return False
    return True


async def not_ready(subscriber: EventSubscriber) -> bool:
    """Whether the subscriber's readiness check fails now."""
    return not await ready(subscriber)


async def until(condition: Callable[[], Awaitable[bool]], what: str, deadline: float) -> None:
    """Poll ``condition`` (as a readiness probe or an operator does) until it holds."""
    end = time.monotonic() + deadline
    while not await condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline} s: {what}")
        await asyncio.sleep(0.05)


def topics_on(bootstrap: str) -> set[str]:
    """The topics the broker has now (a metadata request that creates none)."""
    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics)


def journaling_handler(
    journal: Journal, store: SqlIdempotencyStore
) -> Callable[[UserStep], Awaitable[None]]:
    """The handler: an idempotent apply that the journal records, holds or fails once."""

    @idempotent(store, name="apply")
    async def apply(event: UserStep) -> None:
        if event.id in journal.fail_once:
            journal.fail_once.discard(event.id)
            raise RuntimeError("fails once: its retry comes through the retry topic")
        if event.id == journal.held_id:
            journal.holding.set()
            journal.changed()
            await journal.release.wait()
        journal.applied.append((event.id, event.data.user, event.data.seq))

    async def handle(event: UserStep) -> None:
        journal.deliveries += 1
        user = event.data.user
        if user in journal.running:
            journal.overlaps.append(f"{user} step {event.data.seq} began beside another")
        journal.running.add(user)
        try:
            await apply(event)
        finally:
            journal.running.discard(user)
            journal.changed()

    return handle


@dataclass
class Scene:
    broker: RestartableServer
    subscriber: EventSubscriber
    stream: Stream
    journal: Journal
    metrics: CollectorRegistry

    def fetched(self, partition: int) -> bool:
        """Whether the subscriber fetched from ``partition`` since the lag gauge was cleared."""
        labels = {"group": GROUP, "topic": TOPIC, "partition": str(partition)}
        return self.metrics.get_sample_value("aegis_msg_consumer_lag_messages", labels) is not None


async def outage(number: int, scene: Scene) -> None:
    """Kill the broker while one handler runs, restart it empty, check the subscriber is back."""
    broker, subscriber, stream, journal = (
        scene.broker,
        scene.subscriber,
        scene.stream,
        scene.journal,
    )
    await stream.burst(f"events before outage {number}")
    await stream.pause()
    held = stream.next_event()
    journal.hold(held.id)
    await stream.send(held)
    await journal.until(
        lambda: journal.holding.is_set() and len(journal.applied) == len(stream.acked) - 1,
        f"caught up before outage {number}",
        30,
    )
    publisher_away = number == 1
    if publisher_away:
        await stream.disconnect()
    broker.stop()
    if not publisher_away:
        stream.sending.set()  # the publisher sends into the outage
        journal.release.set()  # the held handler finishes while it lasts
    await until(lambda: not_ready(subscriber), f"not ready in outage {number}", 30)
    MsgMetrics.for_registry(scene.metrics).lag.clear()  # what the subscriber fetched is new
    await asyncio.to_thread(broker.start)  # same address, empty storage
    await until(lambda: ready(subscriber), f"ready after outage {number}", 30)
    # Its retry and dead-letter topics vanished with the broker: it makes them again.
    await until(
        lambda: asyncio.to_thread(lambda: topics_on(broker.url) >= OWN_TOPICS),
        f"retry and dead-letter topics after outage {number}",
        30,
    )
    if publisher_away:
        assert TOPIC not in await asyncio.to_thread(topics_on, broker.url)
        await stream.connect()  # the publisher re-creates the topic now
    after = len(stream.acked)
    await stream.burst(f"events after outage {number}")
    if publisher_away:
        # The held user's next step is fetched from the new broker while its handler still runs.
        following = next(row[0] for row in stream.acked[after:] if row[1] == held.data.user)
        partition = stream.partition_of[following]
        await until(
            lambda: asyncio.sleep(0, scene.fetched(partition)),
            f"{held.data.user}'s next step fetched after outage {number}",
            30,
        )
    journal.release.set()


def assert_each_event_applied_once_in_user_order(applied: list[Row], acked: list[Row]) -> None:
    """No acknowledged event missing, none applied twice, each user's steps applied in order."""
    assert {row[0] for row in applied} == {row[0] for row in acked}
    assert len(applied) == len({row[0] for row in applied})
    for user in (f"user-{n}" for n in range(USERS)):
        steps = [seq for _, who, seq in applied if who == user]
        assert steps == sorted(steps), f"{user} out of order: {steps}"


def assert_outages_reported(caplog: pytest.LogCaptureFixture, metrics: CollectorRegistry) -> None:
    """Each outage: WARNING lines for its causes and its end, errors and fresh clients counted."""
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    cut_off = [line for line in warnings if f"group {GROUP} cannot consume" in line]
    back = [line for line in warnings if f"group {GROUP} consumes again after" in line]
    assert len(back) == 2, warnings
    assert sum("_ALL_BROKERS_DOWN" in line for line in cut_off) == 2, cut_off
    assert sum("lost partitions" in line for line in cut_off) == 2, cut_off
    labels = {"group": GROUP, "error": "_ALL_BROKERS_DOWN"}
    assert (metrics.get_sample_value("aegis_msg_consumer_errors_total", labels) or 0) >= 2
    # The topic that came back after the subscriber had rejoined got it a fresh client.
    labels = {"group": GROUP, "reason": "topic_back"}
    assert (metrics.get_sample_value("aegis_msg_consumer_recreated_total", labels) or 0) >= 1
    assert any(f"consumer of group {GROUP} recreated" in line for line in warnings)


async def test_subscriber_resumes_after_the_broker_restarts_empty_twice_and_misses_nothing(
    broker: RestartableServer, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aegis.msg")
    await asyncio.to_thread(broker.start)
    await asyncio.to_thread(create_topics, broker.url, [TOPIC], partitions=4)
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

    stream = Stream(settings, registry, journal)
    await stream.connect()
    writer = asyncio.create_task(stream.run())
    async with KafkaTransport(settings, metrics_registry=metrics) as kafka:
        subscriber = EventSubscriber(
            kafka,
            group_id=GROUP,
            concurrency="key",
            max_outage=1.0,
            retry=RETRY,
            registry=registry,
            metrics_registry=metrics,
        )

        subscriber.on(UserStep)(journaling_handler(journal, store))
        try:
            async with subscriber:
                await until(lambda: ready(subscriber), "ready after joining the group", 30)
                scene = Scene(broker, subscriber, stream, journal, metrics)
                for number in range(2):
                    await outage(number, scene)
                await stream.pause()
                # The retry topic, re-created after the outages, is read again.
                last = stream.next_event()
                journal.fail_once.add(last.id)
                await stream.send(last)
                await journal.until(
                    lambda: {row[0] for row in journal.applied} >= {row[0] for row in stream.acked},
                    f"every event applied ({len(stream.acked)} sent)",
                    30,
                )
                assert await ready(subscriber)
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            await stream.disconnect()
    assert journal.overlaps == []
    assert_each_event_applied_once_in_user_order(journal.applied, stream.acked)
    assert_outages_reported(caplog, metrics)


async def test_health_check_passes_while_consuming_and_fails_once_stopped() -> None:
    subscriber = EventSubscriber(
        InMemoryTransport(),
        group_id=GROUP,
        registry=EventRegistry(),
        metrics_registry=CollectorRegistry(),
    )

    @subscriber.on(UserStep)
    async def handle(event: UserStep) -> None: ...

    assert await not_ready(subscriber)  # not started
    async with subscriber:
        details = await subscriber.health_check()
        assert details["group"] == GROUP
        assert details["topics"] == [TOPIC]
        assert details["unavailable_for"] is None
        assert subscriber.unavailable_for is None
    with pytest.raises(ExternalServiceError) as raised:
        await subscriber.health_check()
    assert raised.value.status == 503
    assert "not running" in raised.value.message
