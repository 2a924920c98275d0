"""``EventPublisher``: publish typed events one at a time or as a batch with one flush."""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import chain
from typing import Any

from opentelemetry import trace
from prometheus_client import CollectorRegistry

from aegis.core import context
from aegis.core.errors import ConfigurationError
from aegis.msg._event import Event
from aegis.msg._kafka import KafkaTransport
from aegis.msg._metrics import MsgMetrics
from aegis.msg._registry import EventRegistry, default_registry
from aegis.msg._tracing import traceparent_of, tracer, tracing_enabled
from aegis.msg._transport import BatchResult, DeliveryResult, Transport
from aegis.msg._wire import EventCodec, Run, WireMode

logger = logging.getLogger("aegis.msg")


class EventPublisher:
    """Publishes events through a transport (Kafka or in-memory) in CloudEvents format.

    Each event's message key is its partition key (:meth:`Event.message_key`), so the events of
    one entity land on one partition, in order. Metadata an event leaves empty is filled on the
    wire: ``source`` from here, ``correlationid`` from :mod:`aegis.core.context` (else the
    event's own id), ``causationid`` from the event being handled, ``traceparent`` from the
    publish span.

    Args:
        transport: where to send (shared with other publishers and subscribers).
        source: CloudEvents ``source`` (default: the ``service_name`` context value, else
            ``"aegis"``).
        topic: topic for events whose class names none.
        mode: ``"binary"`` (``ce_*`` headers) or ``"structured"`` (one JSON envelope).
        registry: event types (published classes are registered in it).
        metrics_registry: Prometheus registry for ``aegis_msg_published_total``.
        retries: how often events that failed retriably (a broker outage outlasting the
            transport's delivery timeout) are sent again.
        retry_backoff: seconds before the first resend; doubles per resend.

    Example:
        >>> publisher = EventPublisher(kafka, source="users")
        >>> result = await publisher.publish(UserCreated(data=UserCreatedData(user_id="u1")))
        >>> result.partition, result.offset
    """

    def __init__(
        self,
        transport: Transport,
        *,
        source: str | None = None,
        topic: str | None = None,
        mode: WireMode = "binary",
        registry: EventRegistry | None = None,
        metrics_registry: CollectorRegistry | None = None,
        retries: int = 2,
        retry_backoff: float = 0.5,
    ) -> None:
        self.transport = transport
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.topic = topic
        self.codec = EventCodec(
            registry or default_registry(),
            source=source or context.service_name.get() or "aegis",
            mode=mode,
        )
        self._metrics = MsgMetrics.for_registry(metrics_registry)
        self.published_types: set[tuple[str, type[Event[Any]]]] = set()
        """Every ``(topic, event class)`` published so far (for the AsyncAPI document)."""

    def topic_for(self, event: Event[Any], topic: str | None = None) -> str:
        """The topic ``event`` goes to: ``topic``, else its class's, else the publisher's.

        Raises:
            ConfigurationError: none of them names a topic.
        """
        chosen = topic or event.topic or self.topic
        if chosen is None:
            raise ConfigurationError(
                f"no topic for {event.type!r}: set `topic` on {type(event).__name__}, on the "
                "EventPublisher, or pass topic= to publish()"
            )
        return chosen

    async def publish(self, event: Event[Any], *, topic: str | None = None) -> DeliveryResult:
        """Publish one event and wait until the broker has it.

        Raises:
            PublishError: the broker did not take it (after the transport's retries).
            ConfigurationError: no topic is known for it.
        """
        (result,) = await self.publish_batch([event], topic=topic)
        if result.error is not None:
            raise result.error
        return result

    async def publish_batch(
        self,
        events: Iterable[Event[Any]],
        *,
        topic: str | None = None,
        errors_only: bool = False,
    ) -> Sequence[DeliveryResult]:
        """Publish ``events`` together (one flush) and return one result per event, in order.

        ``events`` may be a generator: each event is encoded and sent as it comes and is not
        kept, so a large batch built on the fly never holds every event in memory at once.
        A failure is reported in that event's result (``result.error``), never raised, so the
        caller sees exactly which events the broker has; failures the broker calls retriable
        are sent again first (``retries``, with backoff), as the records they were.

        ``errors_only=True`` saves the work of a delivery report per delivered event: with a
        :class:`KafkaTransport` the events go through a second producer client of it, which
        reports failures only, and the results of delivered events say ``ok`` without a
        partition or offset (-1); failures are reported, and retried, as always. Other
        transports report every event as usual.

        Raises:
            ConfigurationError: no topic is known for one of the events.
        """
        iterator = iter(events)
        first = next(iterator, None)
        if first is None:
            return []
        batch = chain((first,), iterator)

        def topic_of(event: Event[Any]) -> str:  # asked once per run of one event class
            return self.topic_for(event, topic)

        runs: list[Run] = []
        if tracing_enabled():
            first_topic = topic_of(first)
            with tracer().start_as_current_span(
                f"{first_topic} publish",
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": self.transport.protocol,
                    "messaging.destination.name": first_topic,
                    "messaging.operation.type": "send",
                },
            ) as span:
                parent = traceparent_of(span)
                results = await self._send(batch, topic_of, parent, runs, errors_only)
                span.set_attribute("messaging.batch.message_count", len(results))
                failed = len(_failures(results))
                if failed:
                    span.set_status(trace.StatusCode.ERROR, f"{failed} events not delivered")
        else:
            results = await self._send(batch, topic_of, None, runs, errors_only)
        self._account(results, runs)
        return results

    async def _send(
        self,
        batch: Iterable[Event[Any]],
        topic_of: Callable[[Event[Any]], str],
        traceparent: str | None,
        runs: list[Run],
        errors_only: bool,
    ) -> Sequence[DeliveryResult]:
        send = self.transport.send_batch
        if errors_only and isinstance(self.transport, KafkaTransport):
            send = partial(self.transport.send_batch, errors_only=True)
        results: Sequence[DeliveryResult] = await send(
            self.codec.records(batch, topic_of, traceparent=traceparent, runs=runs)
        )
        delay = self.retry_backoff
        for _ in range(self.retries):
            again = [
                (index, result.record)
                for index, result in _failures(results)
                if result.error is not None and result.error.retriable and result.record
            ]
            if not again:
                break
            await asyncio.sleep(delay)
            delay *= 2
            resent = await send([record for _, record in again])
            merged = list(results)
            for (index, _), result in zip(again, resent, strict=True):
                merged[index] = result
            results = merged
        return results

    def _account(self, results: Sequence[DeliveryResult], runs: list[Run]) -> None:
        sent: dict[tuple[str, type[Event[Any]]], int] = {}
        for run, end in zip(runs, [*(run.start for run in runs[1:]), len(results)], strict=True):
            key = (run.topic, run.event_type)
            sent[key] = sent.get(key, 0) + end - run.start
        failed: dict[tuple[str, type[Event[Any]]], int] = {}
        starts = [run.start for run in runs]
        for index, result in _failures(results):
            run = runs[bisect_right(starts, index) - 1]
            key = (run.topic, run.event_type)
            failed[key] = failed.get(key, 0) + 1
            event_type = run.event_type.type
            logger.error(
                "event %s (%s) was not published: %s",
                result.event_id,
                event_type,
                result.error.message if result.error else "",
                extra={"event_id": result.event_id, "event_type": event_type},
            )
        published = self._metrics.published
        for (topic_name, event_class), count in sent.items():
            errors = failed.get((topic_name, event_class), 0)
            if count > errors:
                published.labels(topic_name, event_class.type, "ok").inc(count - errors)
            if errors:
                published.labels(topic_name, event_class.type, "error").inc(errors)
            self.published_types.add((topic_name, event_class))


def _failures(results: Sequence[DeliveryResult]) -> list[tuple[int, DeliveryResult]]:
    if isinstance(results, BatchResult):
        failed = results.failed
        if not failed:
            return []
    return [(index, result) for index, result in enumerate(results) if result.error is not None]
