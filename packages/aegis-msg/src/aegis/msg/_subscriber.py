"""``EventSubscriber``: typed handlers, consumer-group lifecycle and at-least-once commits.

One loop fetches batches (``consume()`` of up to ``batch_size`` messages: several times faster
than one ``poll()`` per message from asyncio) and hands each message to a lane: one lane per
partition, or per key within a partition with ``concurrency="key"``. A lane runs its messages
one after another, so each key stays in order, while lanes run concurrently. Offsets are
committed between fetches, only past messages that are finished together with every earlier
one (:mod:`aegis.msg._offsets`). Handling one message (retries, dead letters) is in
:mod:`aegis.msg._handling`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from prometheus_client import CollectorRegistry

from aegis.core.errors import ConfigurationError
from aegis.msg._event import Event
from aegis.msg._handling import MessageHandling, Route
from aegis.msg._metrics import MsgMetrics
from aegis.msg._offsets import OffsetTracker, PartitionOffsets, Slot
from aegis.msg._registry import EventRegistry, default_registry
from aegis.msg._retry import RetryPolicy
from aegis.msg._tracing import tracing_enabled
from aegis.msg._transport import (
    ConsumerChannel,
    Fetched,
    ReceivedMessage,
    TopicPartition,
    Transport,
)
from aegis.msg._wire import EventCodec

logger = logging.getLogger("aegis.msg")

E = TypeVar("E", bound=Event[Any])
Handler = Callable[[E], Awaitable[None]]
"""An event handler: ``async def handle(event: UserCreated) -> None``."""

Concurrency = Literal["partition", "key"]
"""``partition``: one message at a time per partition; ``key``: per key within a partition."""


class Lane:
    """Messages that must run one after another (a partition, or one key of it).

    A partition's lane moves the partition's committable position itself after each message;
    a key's lane marks a :class:`Slot` per message, since keys of a partition finish out of
    order.
    """

    __slots__ = ("interrupt", "offsets", "partition", "queue", "revoked", "slots", "task")

    def __init__(self, partition: TopicPartition, offsets: PartitionOffsets, *, by_key: bool):
        self.partition = partition
        self.offsets = offsets
        self.queue: deque[ReceivedMessage] = deque()
        self.slots: deque[Slot] | None = deque() if by_key else None
        self.task: asyncio.Task[None] | None = None
        self.revoked = False
        self.interrupt = asyncio.Event()


class EventSubscriber:
    """Consumes events with typed handlers in a consumer group, at least once.

    Register handlers with :meth:`on`, then run the subscriber as an async context manager
    (an application's lifespan) or with :meth:`start` / :meth:`stop`.

    Args:
        transport: where to read from (Kafka or in-memory).
        group_id: the consumer group; members share the partitions.
        retry: in-process retries, retry topics and the dead-letter topic.
        concurrency: ``"partition"`` (default) or ``"key"`` (messages of different keys in one
            partition run concurrently; each key stays in order).
        max_concurrency: with ``"key"``, how many handlers may run at once.
        max_in_flight: fetched but unfinished messages at most; fetching waits above it.
        batch_size: messages per fetch.
        graceful_timeout: seconds ``stop()`` and a rebalance wait for running handlers.
        registry: event types to decode (handled classes are registered in it).
        metrics_registry: Prometheus registry for the ``aegis_msg_*`` metrics.

    Example:
        >>> subscriber = EventSubscriber(kafka, group_id="policy-service")
        >>> @subscriber.on(UserCreated)
        ... async def create_policy(event: UserCreated) -> None: ...
        >>> async with subscriber:
        ...     await stop_requested.wait()
    """

    def __init__(
        self,
        transport: Transport,
        *,
        group_id: str,
        retry: RetryPolicy | None = None,
        concurrency: Concurrency = "partition",
        max_concurrency: int = 100,
        max_in_flight: int = 1000,
        batch_size: int = 500,
        poll_timeout: float = 0.2,
        graceful_timeout: float = 15.0,
        registry: EventRegistry | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.transport = transport
        self.group_id = group_id
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.max_in_flight = max_in_flight
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.graceful_timeout = graceful_timeout
        self.registry = registry or default_registry()
        self.routes: dict[tuple[str, str], Route] = {}
        self._metrics = MsgMetrics.for_registry(metrics_registry)
        self._handling = MessageHandling(
            self,
            EventCodec(self.registry, source=group_id),
            self._metrics,
            asyncio.Semaphore(max_concurrency) if concurrency == "key" else None,
        )
        self._offsets = OffsetTracker()
        self._lanes: dict[object, Lane] = {}
        self._in_flight = 0
        self._capacity = asyncio.Event()
        self._channel: ConsumerChannel | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._retiring: asyncio.Task[None] | None = None
        self.stopping = False

    def on(
        self, event_type: type[E], *, topic: str | None = None
    ) -> Callable[[Handler[E]], Handler[E]]:
        """Register the decorated coroutine function as the handler of ``event_type``.

        Raises:
            ConfigurationError: no topic is known for the type, or it already has a handler
                on that topic, or the subscriber is running.
        """
        chosen = topic or event_type.topic
        if chosen is None:
            raise ConfigurationError(
                f"no topic for {event_type.__name__}: set `topic` on the class or pass topic="
            )
        if self._loop_task is not None:
            raise ConfigurationError("register handlers before the subscriber starts")
        self.registry.register(event_type)

        def register(handler: Handler[E]) -> Handler[E]:
            key = (chosen, event_type.type)
            if key in self.routes:
                raise ConfigurationError(
                    f"{event_type.type!r} on {chosen!r} already has a handler: "
                    f"{self.routes[key].handler.__qualname__}"
                )
            self.routes[key] = Route(event_type, chosen, handler)
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        """The topics the handlers read, without retry topics."""
        return sorted({topic for topic, _ in self.routes})

    @property
    def running(self) -> bool:
        """Whether the fetch loop is alive (for health checks)."""
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self) -> None:
        """Create retry and dead-letter topics, join the group and start consuming.

        Raises:
            ConfigurationError: no handler is registered.
        """
        if not self.routes:
            raise ConfigurationError("EventSubscriber.start(): register a handler with on() first")
        if self._loop_task is not None:
            return
        topics = self.topics
        extra = {name: main for main in topics for name in self.retry.retry_topics(main)}
        self._handling.retry_sources = {
            name: (main, tier)
            for main in topics
            for tier, name in enumerate(self.retry.retry_topics(main))
        }
        dead = {self.retry.dead_letter_topic(main): main for main in topics}
        await self.transport.ensure_topics({**extra, **dead})
        self.stopping = False
        self._channel = self.transport.open_consumer(self.group_id, [*topics, *extra], self)
        await self._channel.start()
        self._loop_task = asyncio.create_task(self._fetch_loop(self._channel))

    async def stop(self) -> None:
        """Stop fetching, let running handlers finish (``graceful_timeout``), commit, leave."""
        task, self._loop_task = self._loop_task, None
        channel, self._channel = self._channel, None
        if task is None or channel is None:
            return
        self.stopping = True
        self._capacity.set()
        for lane in self._lanes.values():
            lane.interrupt.set()
        await task
        await self._wait_for_lanes(list(self._lanes.values()))
        if self._retiring is not None:
            await self._retiring
        commits = self._offsets.commits()
        await channel.close(commits)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _fetch_loop(self, channel: ConsumerChannel) -> None:
        while not self.stopping:
            commits = self._offsets.commits()
            try:
                fetched = await channel.fetch(self.batch_size, self.poll_timeout, commits)
            except Exception:
                # A broker or network error must not end consumption: log, wait, go on.
                logger.exception("fetching events for group %s failed", self.group_id)
                await asyncio.sleep(1.0)
                continue
            self._offsets.committed(commits)
            self._handling.tracing = tracing_enabled()
            self._record_lag(fetched)
            self._dispatch(fetched.messages)
            while self._in_flight >= self.max_in_flight and not self.stopping:
                self._capacity.clear()
                await self._capacity.wait()

    def _record_lag(self, fetched: Fetched) -> None:
        if not fetched.high_watermarks:
            return
        last: dict[TopicPartition, int] = {}
        for message in fetched.messages:
            last[(message.topic(), message.partition())] = message.offset()  # type: ignore[index,assignment]
        for (topic, partition), high in fetched.high_watermarks.items():
            if (topic, partition) in last:
                lag = max(0, high - last[(topic, partition)] - 1)
                self._metrics.lag.labels(self.group_id, topic, str(partition)).set(lag)

    def _dispatch(self, messages: Sequence[ReceivedMessage]) -> None:
        # One pass over a fetch. A lane from before a rebalance reset its partition's progress
        # keeps reporting to the old progress (never committed); new messages get a new lane.
        progress = self._offsets.partition
        lanes = self._lanes
        by_key = self.concurrency == "key"
        for message in messages:
            partition: TopicPartition = (message.topic(), message.partition())  # type: ignore[assignment]
            key: object = (partition, message.key()) if by_key else partition
            lane = lanes.get(key)
            offsets = progress(partition)
            if lane is None or lane.offsets is not offsets:
                lane = lanes[key] = Lane(partition, offsets, by_key=by_key)
            lane.queue.append(message)
            if lane.slots is not None:
                lane.slots.append(offsets.track(message.offset()))  # type: ignore[arg-type]
            if lane.task is None:
                lane.task = asyncio.create_task(self._drain(key, lane))
        self._in_flight += len(messages)

    async def _drain(self, key: object, lane: Lane) -> None:
        handle = self._handling.handle
        queue, slots, offsets = lane.queue, lane.slots, lane.offsets
        try:
            retiring = self._retiring
            if retiring is not None and not retiring.done():
                # Handlers of lost partitions still run: a key must not run twice at once here,
                # nor its later events before its earlier one (the new partition may differ).
                await asyncio.shield(retiring)
            while queue and not lane.revoked and not self.stopping:
                message = queue[0]
                if not await handle(message, lane):
                    break  # stopping before it was finished: leave it for redelivery
                queue.popleft()
                if slots is None:
                    offsets.position = message.offset() + 1  # type: ignore[operator]
                else:
                    slots.popleft().done = True
                self._release(1)
        except Exception:
            logger.exception("event lane %s stopped unexpectedly", lane.partition)
        finally:
            self._release(len(queue))
            queue.clear()
            lane.task = None
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def _release(self, count: int) -> None:
        self._in_flight -= count
        if self._in_flight < self.max_in_flight:
            self._capacity.set()

    async def _wait_for_lanes(self, lanes: Sequence[Lane]) -> None:
        tasks = [lane.task for lane in lanes if lane.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.graceful_timeout)
        for task in pending:
            logger.warning("a handler outlived the graceful timeout; it is cancelled")
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def revoked(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Rebalance hook: finish running handlers of ``partitions``, return their commits."""
        gone = set(partitions)
        lanes = [lane for lane in self._lanes.values() if lane.partition in gone]
        for lane in lanes:
            lane.revoked = True
            lane.interrupt.set()
        await self._wait_for_lanes(lanes)
        commits = self._offsets.commits(gone)
        self._offsets.drop(gone)
        return commits

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Rebalance hook: start the newly assigned ``partitions`` with a clean slate."""
        self._offsets.drop(set(partitions))
        logger.info("group %s was assigned %s", self.group_id, partitions)

    def lost(self, partitions: Sequence[TopicPartition]) -> None:
        """Rebalance hook: ``partitions`` are gone without a commit; stop their lanes.

        Handlers still running on them finish (up to ``graceful_timeout``, then they are
        cancelled); messages fetched meanwhile wait for them, so an event of a key never runs
        before or beside an earlier one of the same key in this process.
        """
        gone = set(partitions)
        lanes = [lane for lane in self._lanes.values() if lane.partition in gone]
        for lane in lanes:
            lane.revoked = True
            lane.interrupt.set()
        self._offsets.drop(gone)
        running = [lane for lane in lanes if lane.task is not None]
        if running:
            self._retiring = asyncio.create_task(self._retire(self._retiring, running))

    async def _retire(self, earlier: asyncio.Task[None] | None, lanes: Sequence[Lane]) -> None:
        if earlier is not None:
            await earlier
        await self._wait_for_lanes(lanes)
