"""Handling received messages: decode, call the handler, retry, forward or dead-letter them.

A lane's messages are decoded a chunk at a time (:meth:`EventCodec.decode_batch`) and handled in
order; consecutive events of a batch handler's type go to it together (:mod:`._batch_calls`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from aegis.core import context
from aegis.msg._batch_calls import BatchCalls, call_alone
from aegis.msg._decoding import Decoded
from aegis.msg._errors import UnsupportedVersionError
from aegis.msg._event import Event
from aegis.msg._forwarding import Forwarder, pause
from aegis.msg._metrics import MsgMetrics
from aegis.msg._retry import (
    RETRY_ATTEMPTS,
    RETRY_BACKOFF_TIMESTAMP,
    RetryPolicy,
    forwarded_headers,
    header_int,
    seconds_until,
)
from aegis.msg._tracing import context_from, tracer, tracing_enabled
from aegis.msg._transport import ReceivedMessage, Transport
from aegis.msg._wire import EventCodec, handling_event_id

if TYPE_CHECKING:
    from aegis.msg._lanes import Lane

logger = logging.getLogger("aegis.msg")

EVENT_CHUNK = 32
"""Messages decoded together when no batch handler wants more: few, so the events made stay
in the processor's cache until their handlers ran."""


@dataclass(frozen=True, eq=False)
class Route:
    """A registered handler: the event class it takes and the topic it reads."""

    event_type: type[Event[Any]]
    topic: str
    handler: Callable[[Any], Awaitable[None]]
    batch: int = 0
    """A batch handler's largest batch (it takes a list of events); 0: it takes one event."""


@dataclass(frozen=True, slots=True)
class HandlingContext:
    """What handling a message needs from its subscriber, and nothing else."""

    group_id: str
    """The consumer group, written into forwarded and dead-lettered records."""
    retry: RetryPolicy
    routes: Mapping[tuple[str, str], Route]
    """(main topic, event type) -> handler; the subscriber's own, so later routes are seen."""
    transport: Transport
    """Where retried and dead-lettered records are sent."""


class MessageHandling:
    """The per-message work of an :class:`EventSubscriber`."""

    def __init__(
        self,
        context: HandlingContext,
        codec: EventCodec,
        metrics: MsgMetrics,
        limit: asyncio.Semaphore | None,
    ) -> None:
        self._context = context
        self._codec = codec
        self._metrics = metrics
        self._limit = limit
        self.retry_sources: dict[str, tuple[str, int]] = {}
        """Retry topic -> (its main topic, its tier index)."""
        self.tracing = tracing_enabled()
        """Whether spans are made; refreshed per fetch (an SDK may be installed later)."""
        self.chunk = EVENT_CHUNK
        """Messages decoded together: the largest batch of a batch handler, else a few."""
        self._batches = BatchCalls(metrics, self._retry_alone)
        self._forwarder = Forwarder(context, codec.registry, metrics)

    async def drain(self, lane: Lane) -> None:
        """Run ``lane``'s messages in order until its queue is empty or its interrupt is set."""
        queue, interrupt = lane.queue, lane.interrupt
        topic = lane.partition[0]
        main, tier = self.retry_sources.get(topic, (topic, -1))
        self._batches.tracing = self.tracing
        while queue and not interrupt.is_set():
            chunk = list(islice(queue, self.chunk))
            if await self._chunk(chunk, self._codec.decode_batch(chunk), lane, main, tier) < len(
                chunk
            ):
                return  # interrupted: the rest is left for redelivery

    async def _chunk(
        self,
        messages: list[ReceivedMessage],
        decoded: list[Decoded],
        lane: Lane,
        main: str,
        tier: int,
    ) -> int:
        """Handle decoded ``messages`` from the front of ``lane``; return how many finished."""
        interrupt = lane.interrupt
        index, count = 0, len(messages)
        while index < count:
            if interrupt.is_set():
                return index
            event = decoded[index]
            route = (
                self._context.routes.get((main, event.type)) if isinstance(event, Event) else None
            )
            if route is None:  # poison, or a type without a handler here
                if not await self._process(messages[index], event, main, tier, interrupt):
                    return index
                lane.finish(1)
                index += 1
                continue
            if tier >= 0:  # from a retry topic: alone, after its delay
                if not await self._process(messages[index], event, main, tier, interrupt):
                    return index
                lane.finish(1)
                index += 1
                continue
            end = index + 1
            limit = min(count, index + max(route.batch, 1)) if route.batch else count
            if set(map(type, decoded[end:limit])) <= {route.event_type}:  # looked at in C
                end = limit
            while end < limit and decoded[end].__class__ is route.event_type:
                end += 1
            run = decoded[index:end]
            if route.batch:
                done = await self._batches.run(
                    route,
                    main,
                    messages[index:end],
                    run,  # type: ignore[arg-type] # every item is an event of the route
                    lane=lane,
                )
            else:
                done = await self._events(
                    route,
                    main,
                    messages[index:end],
                    run,  # type: ignore[arg-type] # every item is an event of the route
                    lane,
                )
            index += done
            if done < len(run):
                return index
        return index

    async def _events(
        self,
        route: Route,
        main: str,
        messages: list[ReceivedMessage],
        events: list[Event[Any]],
        lane: Lane,
    ) -> int:
        """Run ``route``'s handler on each of ``events`` in order; return how many finished."""
        interrupt = lane.interrupt
        if self._limit is not None or self.tracing:
            return await self._one_by_one(route, main, messages, events, lane)
        # The common case, in this coroutine frame: first tries that succeed. Finished events are
        # reported together, before a retry and at the end, their handler durations as well
        # (one histogram update for a run: a quarter of the cost of one per event). The context
        # values are set per event and restored once at the end (a set costs as much as a reset;
        # a correlation id the previous event had is not set again).
        handler = route.handler
        _, handled, observe_many = self._metrics.handled(main, events[0].type)
        durations: list[float] = []
        observe = durations.append
        clock = time.perf_counter
        set_event, set_correlation = handling_event_id.set, context.correlation_id.set
        event_token = set_event(None)
        correlation_token = set_correlation(None)
        correlation: str | None = None
        total = 0
        try:
            while events:
                finished = 0
                failed: Exception | None = None
                for event in events:
                    if interrupt.is_set():
                        break
                    set_event(event.id)
                    if event.correlationid != correlation:
                        correlation = event.correlationid
                        set_correlation(correlation)
                    started = clock()
                    try:
                        await handler(event)
                    except Exception as exc:  # retried or dead-lettered below
                        failed = exc
                    observe(clock() - started)
                    if failed is not None:
                        break
                    finished += 1
                observe_many(durations)
                durations.clear()
                if finished:
                    handled.inc(finished)
                    lane.finish(finished)
                    total += finished
                if failed is None:
                    return total
                self._failed(route, events[finished], main, failed, 0)
                if not await self._run(
                    messages[finished],
                    events[finished],
                    route=route,
                    main=main,
                    tier=-1,
                    interrupt=interrupt,
                    failed=failed,
                ):
                    return total
                lane.finish(1)
                total += 1
                messages, events = messages[finished + 1 :], events[finished + 1 :]
            return total
        finally:
            if durations:  # cancelled: what finished is recorded, as observe() per event did
                observe_many(durations)
            context.correlation_id.reset(correlation_token)
            handling_event_id.reset(event_token)

    async def _one_by_one(
        self,
        route: Route,
        main: str,
        messages: list[ReceivedMessage],
        events: list[Event[Any]],
        lane: Lane,
    ) -> int:
        """:meth:`_events` with a concurrency limit or spans: each event through ``_run``."""
        interrupt = lane.interrupt
        for index, (message, event) in enumerate(zip(messages, events, strict=True)):
            if interrupt.is_set() or not await self._run(
                message, event, route=route, main=main, tier=-1, interrupt=interrupt
            ):
                return index
            lane.finish(1)
        return len(events)

    async def _retry_alone(  # noqa: PLR0917 - called positionally as RetryOne, per failed event
        self,
        route: Route,
        main: str,
        lane: Lane,
        message: ReceivedMessage,
        event: Event[Any],
        failed: Exception | None,
    ) -> bool:
        """A batch's failed event handled alone: retried, forwarded or dead-lettered."""
        if failed is not None:
            self._failed(route, event, main, failed, 0)
        return await self._run(
            message,
            event,
            route=route,
            main=main,
            tier=-1,
            interrupt=lane.interrupt,
            failed=failed,
        )

    async def handle(self, message: ReceivedMessage, interrupt: asyncio.Event) -> bool:
        """Process ``message`` alone; ``False`` when ``interrupt`` (a stop) cut it short."""
        topic = message.topic() or ""
        main, tier = self.retry_sources.get(topic, (topic, -1))
        try:
            decoded: Decoded = self._codec.decode(message)
        except Exception as exc:  # whatever breaks decoding makes it poison
            decoded = exc
        return await self._process(message, decoded, main, tier, interrupt)

    async def _process(
        self,
        message: ReceivedMessage,
        decoded: Decoded,
        main: str,
        tier: int,
        interrupt: asyncio.Event,
    ) -> bool:
        """Handle one decoded message; ``False`` when ``interrupt`` cut it short."""
        if isinstance(decoded, Exception):
            reason = (
                "unsupported_version" if isinstance(decoded, UnsupportedVersionError) else "invalid"
            )
            return await self._forwarder.dead_letter(
                message, main, decoded, reason, 1, interrupt=interrupt
            )
        event = decoded
        route = None if event is None else self._context.routes.get((main, event.type))
        if event is None or route is None:
            type_name = "unknown" if event is None else event.type
            self._metrics.consumed.labels(main, type_name, "ignored").inc()
            return True
        if tier >= 0:
            backoff = seconds_until(header_int(message, RETRY_BACKOFF_TIMESTAMP))
            if not await pause(interrupt, backoff):
                return False
        return await self._run(
            message, event, route=route, main=main, tier=tier, interrupt=interrupt
        )

    def _failed(
        self, route: Route, event: Event[Any], topic: str, exc: Exception, attempt: int
    ) -> None:
        self._metrics.failures.labels(topic, event.type).inc()
        logger.warning(
            "handler %s failed on event %s (%s), attempt %d: %r",
            route.handler.__qualname__,
            event.id,
            event.type,
            attempt + 1,
            exc,
            extra={"event_id": event.id, "event_type": event.type},
        )

    async def _run(
        self,
        message: ReceivedMessage,
        event: Event[Any],
        *,
        route: Route,
        main: str,
        tier: int,
        interrupt: asyncio.Event,
        failed: Exception | None = None,
    ) -> bool:
        """Run the handler with in-process retries; ``failed``: the first call already failed."""
        policy = self._context.retry
        tries = policy.attempts if tier < 0 else 1
        error = failed
        attempt = 0
        if failed is None or not isinstance(failed, policy.not_retryable):
            for attempt in range(0 if failed is None else 1, tries):
                if attempt:
                    self._metrics.retries.labels(main, event.type, "in_process").inc()
                    if not await pause(interrupt, policy.backoff_for(attempt - 1)):
                        return False
                try:
                    await self._call(route, event, main)
                except Exception as exc:  # retried or dead-lettered
                    error = exc
                    self._failed(route, event, main, exc, attempt)
                    if isinstance(exc, policy.not_retryable):
                        break
                else:
                    return True
        assert error is not None  # the loop only ends without return on failure
        attempts = (header_int(message, RETRY_ATTEMPTS) or 0) + attempt + 1
        if isinstance(error, policy.not_retryable):
            return await self._forwarder.dead_letter(
                message, main, error, "not_retryable", attempts, interrupt=interrupt
            )
        retry_topics = policy.retry_topics(main)
        if tier + 1 < len(retry_topics):
            due = time.time() + policy.topic_delays[tier + 1]
            headers = forwarded_headers(
                message, error, group_id=self._context.group_id, attempts=attempts, due_at=due
            )
            if not await self._forwarder.forward(
                message, retry_topics[tier + 1], headers, interrupt
            ):
                return False
            self._metrics.retries.labels(main, event.type, "topic").inc()
            self._metrics.consumed.labels(main, event.type, "retried").inc()
            return True
        return await self._forwarder.dead_letter(
            message, main, error, "exhausted", attempts, interrupt=interrupt
        )

    async def _call(self, route: Route, event: Event[Any], topic: str) -> None:
        children = self._metrics.handled(topic, event.type)
        event_token = handling_event_id.set(event.id)
        correlation_token = context.correlation_id.set(event.correlationid)
        started = time.perf_counter()
        try:
            if self._limit is not None:
                async with self._limit:
                    await self._traced(route, event, topic)
            else:
                await self._traced(route, event, topic)
        finally:
            children.duration.observe(time.perf_counter() - started)
            context.correlation_id.reset(correlation_token)
            handling_event_id.reset(event_token)
        children.ok.inc()

    async def _traced(self, route: Route, event: Event[Any], topic: str) -> None:
        call = call_alone(route, event) if route.batch else route.handler(event)
        if not self.tracing:
            await call
            return
        with tracer().start_as_current_span(
            f"{topic} process",
            context=context_from(event.traceparent),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.operation.type": "process",
                "messaging.message.id": event.id,
                "cloudevents.event_type": event.type,
            },
        ):
            await call
