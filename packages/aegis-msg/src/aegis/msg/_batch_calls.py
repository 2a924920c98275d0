"""Calling a batch handler: one call for many events, failures taken apart per event.

A batch handler gets a list of events of one type, in order, from one lane. It reports which
event failed by raising :class:`BatchFailedError` (the events before it are done); that event
then goes through the same retries, retry topics and dead letters as an event of a per-event
handler, alone, and the events after it come to the handler again. Any other exception says
nothing about which event failed, so the batch is handled again one event at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import trace

from aegis.msg._errors import BatchFailedError
from aegis.msg._event import Event
from aegis.msg._metrics import MsgMetrics
from aegis.msg._tracing import context_from, tracer
from aegis.msg._transport import ReceivedMessage

if TYPE_CHECKING:
    from aegis.msg._handling import Route
    from aegis.msg._lanes import Lane

logger = logging.getLogger("aegis.msg")

RetryOne = Callable[
    ["Route", str, "Lane", ReceivedMessage, Event[Any], Exception | None], Awaitable[bool]
]
"""``(route, topic, lane, message, event, failed)``: handles one event of a batch alone, with
retries, retry topics and dead letters (given the error of a first call that already failed,
if any); ``False`` when the lane's interrupt cut it short."""


class Failure(NamedTuple):
    """How a batch call failed: at ``position`` with ``error`` (``known``), or somewhere."""

    position: int
    error: Exception
    known: bool


class BatchCalls:
    """Calls batch handlers and takes their failures apart, event by event.

    Args:
        metrics: where calls, events and failures are counted.
        retry_one: how a failed event of a batch is handled alone.
    """

    def __init__(self, metrics: MsgMetrics, retry_one: RetryOne) -> None:
        self._metrics = metrics
        self._retry_one = retry_one
        self.tracing = False
        """Whether spans are made (set by the handling, per fetch)."""

    async def run(
        self,
        route: Route,
        topic: str,
        messages: Sequence[ReceivedMessage],
        events: list[Event[Any]],
        *,
        lane: Lane,
    ) -> int:
        """Handle ``events`` (of ``messages``, at the front of ``lane``); return how many finished.

        Fewer than all only when the lane's interrupt cut the work short.
        """
        finished = 0
        interrupt = lane.interrupt
        retry_one = self._retry_one
        while events and not interrupt.is_set():
            failure = await self.call(route, topic, events)
            if failure is None:
                lane.finish(len(events))
                return finished + len(events)
            if not failure.known:
                # Which event failed is unknown: each one alone, with its own retries.
                for message, event in zip(messages, events, strict=True):
                    if interrupt.is_set() or not await retry_one(
                        route, topic, lane, message, event, None
                    ):
                        return finished
                    lane.finish(1)
                    finished += 1
                return finished
            index = failure.position
            if index:
                lane.finish(index)
                finished += index
            if not await retry_one(
                route, topic, lane, messages[index], events[index], failure.error
            ):
                return finished
            lane.finish(1)
            finished += 1
            messages, events = messages[index + 1 :], events[index + 1 :]
        return finished

    async def call(self, route: Route, topic: str, events: list[Event[Any]]) -> Failure | None:
        """Call ``route``'s handler once with ``events``; ``None`` when it returned."""
        event_type = events[0].type
        handled = self._metrics.handled(topic, event_type)
        started = time.perf_counter()
        try:
            if self.tracing:
                await self._traced(route, topic, events)
            else:
                await route.handler(events)
        except BatchFailedError as exc:
            handled.duration.observe(time.perf_counter() - started)
            if not 0 <= exc.index < len(events):
                logger.warning(
                    "batch handler %s named event %d of a batch of %d as failed; "
                    "the batch is handled again one event at a time",
                    route.handler.__qualname__,
                    exc.index,
                    len(events),
                )
                return Failure(0, exc, known=False)
            if exc.index:
                handled.ok.inc(exc.index)
            cause = exc.__cause__
            return Failure(exc.index, cause if isinstance(cause, Exception) else exc, known=True)
        except Exception as exc:  # which event failed is not known: taken apart by run()
            handled.duration.observe(time.perf_counter() - started)
            self._metrics.failures.labels(topic, event_type).inc()
            logger.warning(
                "batch handler %s failed on a batch of %d events (%s); they are handled "
                "again one at a time: %r",
                route.handler.__qualname__,
                len(events),
                event_type,
                exc,
            )
            return Failure(0, exc, known=False)
        handled.duration.observe(time.perf_counter() - started)
        handled.ok.inc(len(events))
        return None

    @staticmethod
    async def _traced(route: Route, topic: str, events: list[Event[Any]]) -> None:
        links = []
        for event in events:
            parent = context_from(event.traceparent)
            if parent is not None:
                span_context = trace.get_current_span(parent).get_span_context()
                if span_context.is_valid:
                    links.append(trace.Link(span_context))
        with tracer().start_as_current_span(
            f"{topic} process",
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.operation.type": "process",
                "messaging.batch.message_count": len(events),
                "cloudevents.event_type": events[0].type,
            },
        ):
            await route.handler(events)


async def call_alone(route: Route, event: Event[Any]) -> None:
    """Call ``route``'s batch handler with ``event`` alone; raise what the event caused."""
    failure: Exception | None = None
    try:
        await route.handler([event])
    except BatchFailedError as exc:
        if not isinstance(exc.__cause__, Exception):
            raise
        failure = exc.__cause__
    if failure is not None:
        raise failure  # outside the except block: its own cause and context stay as they were
