"""``EventSubscriber``: typed handlers, consumer-group lifecycle and at-least-once commits.

One loop fetches batches (``consume()`` of up to ``batch_size`` messages: several times faster
than one ``poll()`` per message from asyncio) and hands each message to a lane: one lane per
partition, or per key within a partition with ``concurrency="key"``. A lane runs its messages
one after another, so each key stays in order, while lanes run concurrently. Offsets are
committed between fetches, only past messages that are finished together with every earlier
one (:mod:`aegis.msg._offsets`); with a ``commit_interval``, at most once per interval while
events keep coming (under load a commit with every fetch, hundreds a second, costs the broker
as much as the fetches). Lanes are in :mod:`aegis.msg._lanes`; handling one message (retries, dead
letters) in :mod:`aegis.msg._handling`; whether the subscriber can consume (outages, the
readiness check) in :mod:`aegis.msg._consumer_health`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast

from prometheus_client import CollectorRegistry

from aegis.core.errors import ConfigurationError
from aegis.msg._consumer_health import ConsumerHealth
from aegis.msg._event import Event
from aegis.msg._handling import EVENT_CHUNK, HandlingContext, MessageHandling, Route
from aegis.msg._lanes import Lanes
from aegis.msg._metrics import MsgMetrics
from aegis.msg._offsets import OffsetTracker
from aegis.msg._registry import EventRegistry, default_registry
from aegis.msg._retry import RetryPolicy
from aegis.msg._tracing import tracing_enabled
from aegis.msg._transport import (
    ConsumerChannel,
    Fetched,
    TopicPartition,
    Transport,
)
from aegis.msg._wire import EventCodec

logger = logging.getLogger("aegis.msg")

E = TypeVar("E", bound=Event[Any])
Handler = Callable[[E], Awaitable[None]]
"""An event handler: ``async def handle(event: UserCreated) -> None``."""
BatchHandler = Callable[[list[E]], Awaitable[None]]
"""A batch handler: ``async def handle(events: list[UserCreated]) -> None``."""

Concurrency = Literal["partition", "key"]
"""``partition``: one message at a time per partition; ``key``: per key within a partition."""


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
        commit_interval: seconds between two commits while fetching goes on: finished events'
            offsets are committed with the first fetch after it has passed (0, the default:
            with every fetch). A crash redelivers at most the events finished since the last commit;
            ``stop()`` and a rebalance commit everything finished, whatever the interval.
        graceful_timeout: seconds ``stop()`` and a rebalance wait for running handlers.
        max_outage: seconds the subscriber may be cut off from the broker or its group
            (or not have joined it yet) before :meth:`health_check` fails.
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
        commit_interval: float = 0.0,
        graceful_timeout: float = 15.0,
        max_outage: float = 30.0,
        registry: EventRegistry | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.transport = transport
        self.group_id = group_id
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        if commit_interval < 0:
            raise ConfigurationError(f"commit_interval must be 0 or more, not {commit_interval}")
        self.commit_interval = commit_interval
        self.max_outage = max_outage
        self.registry = registry or default_registry()
        self.routes: dict[tuple[str, str], Route] = {}
        self._metrics = MsgMetrics.for_registry(metrics_registry)
        self._handling = MessageHandling(
            HandlingContext(group_id, self.retry, self.routes, transport),
            EventCodec(self.registry, source=group_id),
            self._metrics,
            asyncio.Semaphore(max_concurrency) if concurrency == "key" else None,
        )
        self._offsets = OffsetTracker()
        self._lanes = Lanes(
            self._handling.drain,
            self._offsets,
            by_key=concurrency == "key",
            max_in_flight=max_in_flight,
            graceful_timeout=graceful_timeout,
        )
        self._channel: ConsumerChannel | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._health = ConsumerHealth(group_id, self._restore_topics)
        self._own_topics: dict[str, str] = {}
        self._restoring: asyncio.Task[None] | None = None

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` is under way (handlers still running may finish)."""
        return self._lanes.stopping

    @property
    def graceful_timeout(self) -> float:
        """Seconds ``stop()`` and a rebalance wait for running handlers."""
        return self._lanes.graceful_timeout

    @property
    def max_in_flight(self) -> int:
        """Fetched but unfinished messages at most; fetching waits above it."""
        return self._lanes.max_in_flight

    def on(
        self, event_type: type[E], *, topic: str | None = None
    ) -> Callable[[Handler[E]], Handler[E]]:
        """Register the decorated coroutine function as the handler of ``event_type``.

        Raises:
            ConfigurationError: no topic is known for the type, or it already has a handler
                on that topic, or the subscriber is running.
        """
        return cast("Callable[[Handler[E]], Handler[E]]", self._register(event_type, topic, 0))

    def on_batch(
        self, event_type: type[E], *, topic: str | None = None, max_size: int = 32
    ) -> Callable[[BatchHandler[E]], BatchHandler[E]]:
        """Register the decorated coroutine function as the batch handler of ``event_type``.

        It is called with a list of up to ``max_size`` events of that type, in the order of
        their partition (of their key with ``concurrency="key"``): the events fetched together,
        at most ``max_size`` at a time. To say which event failed, raise
        :class:`BatchFailedError` ``(index) from error``: the events before it are done, that
        one is retried alone (in process, then through the retry topics, then dead-lettered,
        as a per-event handler's event is), and the events after it come in the next call. Any
        other exception hands the batch's events to the handler again one at a time, each with
        its own retries. Events from a retry topic come alone. Offsets are committed as the
        events finish, as for :meth:`on`. Batches far larger than the default cost more CPU
        per event: the events of a batch no longer fit the processor's cache together.

        Raises:
            ConfigurationError: as :meth:`on`, or ``max_size`` is below 1.

        Example:
            >>> @subscriber.on_batch(UserCreated, max_size=20)
            ... async def save_users(events: list[UserCreated]) -> None:
            ...     for index, event in enumerate(events):
            ...         try:
            ...             await users.save(event.data)
            ...         except Exception as exc:
            ...             raise BatchFailedError(index) from exc
        """
        if max_size < 1:
            raise ConfigurationError(f"max_size must be at least 1, not {max_size}")
        return cast(
            "Callable[[BatchHandler[E]], BatchHandler[E]]",
            self._register(event_type, topic, max_size),
        )

    def _register(
        self, event_type: type[E], topic: str | None, batch: int
    ) -> Callable[[Callable[[Any], Awaitable[None]]], Callable[[Any], Awaitable[None]]]:
        chosen = topic or event_type.topic
        if chosen is None:
            raise ConfigurationError(
                f"no topic for {event_type.__name__}: set `topic` on the class or pass topic="
            )
        if self._loop_task is not None:
            raise ConfigurationError("register handlers before the subscriber starts")
        self.registry.register(event_type)

        def register(handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
            key = (chosen, event_type.type)
            if key in self.routes:
                raise ConfigurationError(
                    f"{event_type.type!r} on {chosen!r} already has a handler: "
                    f"{self.routes[key].handler.__qualname__}"
                )
            self.routes[key] = Route(event_type, chosen, handler, batch)
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        """The topics the handlers read, without retry topics."""
        return sorted({topic for topic, _ in self.routes})

    @property
    def running(self) -> bool:
        """Whether the fetch loop is alive (see :meth:`health_check` for readiness)."""
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def unavailable_for(self) -> float | None:
        """Seconds it has been cut off from the broker or its group; ``None`` while it consumes.

        Between ``start()`` and joining the group it counts as cut off as well.
        """
        return self._health.unavailable_for

    @property
    def last_error(self) -> str | None:
        """Why the subscriber was last cut off (all brokers down, partitions lost, ...)."""
        return self._health.last_error

    async def health_check(self) -> dict[str, object]:
        """A readiness check: fails while the subscriber cannot consume for over ``max_outage``.

        It fails when the subscriber is not running, or has been cut off from the broker or
        its consumer group (or has not joined the group since it started) for longer than
        ``max_outage`` seconds, and passes again once it consumes. Add it to the service's
        readiness checks: ``health.add("events", subscriber.health_check)``.

        Raises:
            ExternalServiceError: code ``MSG_CONSUMER_UNAVAILABLE`` (HTTP 503); ``details``
                carry the group, the topics, ``unavailable_for`` and ``last_error``.
        """
        return self._health.check(
            running=self.running, max_outage=self.max_outage, topics=self.topics
        )

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
        self._handling.chunk = max((r.batch for r in self.routes.values()), default=0) or (
            EVENT_CHUNK
        )
        dead = {self.retry.dead_letter_topic(main): main for main in topics}
        self._own_topics = {**extra, **dead}
        await self.transport.ensure_topics(self._own_topics)
        self._lanes.stopping = False
        self._health.begin("group", "joining the consumer group", quiet=True)
        self._channel = self.transport.open_consumer(self.group_id, [*topics, *extra], self)
        await self._channel.start()
        self._loop_task = asyncio.create_task(self._fetch_loop(self._channel))
        self._loop_task.add_done_callback(self._fetch_loop_ended)

    async def stop(self) -> None:
        """Stop fetching, let running handlers finish (``graceful_timeout``), commit, leave."""
        task, self._loop_task = self._loop_task, None
        channel, self._channel = self._channel, None
        if task is None or channel is None:
            return
        self._lanes.halt()
        await task
        if self._restoring is not None:
            self._restoring.cancel()
        await self._lanes.finish()
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
        clock = asyncio.get_running_loop().time
        commit_at = clock() + self.commit_interval  # from when the next commit may go out
        while not self.stopping:
            commits = self._offsets.commits() if clock() >= commit_at else {}
            if commits:
                commit_at = clock() + self.commit_interval
            try:
                fetched = await channel.fetch(self.batch_size, self.poll_timeout, commits)
            except Exception as exc:
                # A broker or network error must not end consumption: log, wait, go on.
                logger.exception("fetching events for group %s failed", self.group_id)
                self._health.begin("fetch", f"fetching failed: {exc!r}")
                await asyncio.sleep(1.0)
                continue
            self._health.end("fetch")
            self._offsets.committed(commits)
            self._handling.tracing = tracing_enabled()
            self._record_lag(fetched)
            self._lanes.dispatch(fetched.messages)
            if fetched.messages:
                # The lanes start on the fetch before the next one is asked for: a fetching
                # thread that wants the interpreter lock mid-handling interrupts the handlers
                # (and evicts what they work on from the processor's caches) for no gain.
                await asyncio.sleep(0)
            await self._lanes.room()

    def _fetch_loop_ended(self, task: asyncio.Task[None]) -> None:
        if self.stopping:
            return
        # Only a bug gets here (fetch errors are caught): say so; the health check fails too.
        error = None if task.cancelled() else task.exception()
        logger.error(
            "the event subscriber of group %s stopped consuming: %r",
            self.group_id,
            "cancelled" if error is None else error,
            exc_info=error,
        )

    def _restore_topics(self) -> None:
        """After an outage, create the retry and dead-letter topics again if they vanished."""
        if self._own_topics and (self._restoring is None or self._restoring.done()):
            self._restoring = asyncio.create_task(self._ensure_own_topics())

    async def _ensure_own_topics(self) -> None:
        try:
            await self.transport.ensure_topics(self._own_topics)
        except Exception as exc:  # logged; forwarding to them creates them too
            logger.warning(
                "re-creating the retry and dead-letter topics of group %s failed: %r",
                self.group_id,
                exc,
            )

    def _record_lag(self, fetched: Fetched) -> None:
        if not fetched.high_watermarks:
            return
        last = fetched.last_offsets
        if last is None:
            last = {}
            for message in fetched.messages:
                last[(message.topic(), message.partition())] = message.offset()  # type: ignore[index,assignment]
        for (topic, partition), high in fetched.high_watermarks.items():
            if (topic, partition) in last:
                lag = max(0, high - last[(topic, partition)] - 1)
                self._metrics.lag.labels(self.group_id, topic, str(partition)).set(lag)

    async def revoked(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Rebalance hook: finish running handlers of ``partitions``, return their commits."""
        gone = set(partitions)
        await self._lanes.revoke(gone)
        commits = self._offsets.commits(gone)
        self._offsets.drop(gone)
        return commits

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Rebalance hook: start the newly assigned ``partitions`` with a clean slate."""
        self._offsets.drop(set(partitions))
        logger.info("group %s was assigned %s", self.group_id, partitions)
        self._health.end("group")

    def lost(self, partitions: Sequence[TopicPartition]) -> None:
        """Rebalance hook: ``partitions`` are gone without a commit; stop their lanes.

        Handlers still running on them finish (up to ``graceful_timeout``, then they are
        cancelled); messages fetched meanwhile wait for them, so an event of a key never runs
        before or beside an earlier one of the same key in this process.
        """
        self._health.begin(
            "group",
            f"lost partitions {sorted(partitions)} without a commit (the group coordinator "
            "forgot this member: a broker restart, or a session timeout); on rejoining, "
            "uncommitted events come again, and all of them if the broker lost the offsets",
        )
        gone = set(partitions)
        self._lanes.retire(gone)
        self._offsets.drop(gone)

    def unavailable(self, reason: str) -> None:
        """Channel hook: the broker cannot be reached (``reason``), or the client failed."""
        self._health.begin("broker", reason)

    def available(self) -> None:
        """Channel hook: the broker answers again."""
        self._health.end("broker")
