"""Prometheus metrics of publishers and subscribers (``aegis_msg_*``), one set per registry."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final, NamedTuple

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from aegis.core.metrics import PlainCounter, PlainHistogram, multiprocess_mode
from aegis.core.utils.weak import OncePerObject

HANDLER_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
)


class Handled(NamedTuple):
    """The two metrics a topic's events of one type record as they are handled."""

    duration: Any
    """The ``aegis_msg_handler_duration_seconds`` child of the topic and type."""
    ok: Any
    """The ``aegis_msg_consumed_total{outcome="ok"}`` child of the topic and type."""
    observe_many: Callable[[list[float]], None]
    """Records several handler durations into ``duration`` in one call."""


class MsgMetrics:
    """The metrics aegis.msg records. Get the set of a registry with :meth:`for_registry`.

    - ``aegis_msg_published_total{topic,type,outcome}``: events sent (``ok`` / ``error``).
    - ``aegis_msg_consumed_total{topic,type,outcome}``: messages finished: ``ok``, ``ignored``
      (no handler for the type), ``retried`` (sent to a retry topic), ``dead_lettered``.
    - ``aegis_msg_handler_failures_total{topic,type}``: handler calls that raised.
    - ``aegis_msg_retries_total{topic,type,stage}``: retries, ``in_process`` or ``topic``.
    - ``aegis_msg_dead_lettered_total{topic,type,reason}``: ``exhausted``, ``invalid``,
      ``unsupported_version``, ``not_retryable``.
    - ``aegis_msg_handler_duration_seconds{topic,type}``: handler time per message.
    - ``aegis_msg_consumer_lag_messages{group,topic,partition}``: messages behind the end.
    - ``aegis_msg_producer_recreated_total{reason}``: Kafka producer clients replaced by a fresh
      one after a fatal or fenced error, or timeouts while the broker answered (``reason``:
      the librdkafka error name, such as ``UNKNOWN_PRODUCER_ID`` or ``_MSG_TIMED_OUT``).
    - ``aegis_msg_consumer_errors_total{group,error}``: errors a Kafka consumer reported, by
      librdkafka error name (``_ALL_BROKERS_DOWN``, ``_TRANSPORT``, ``UNKNOWN_TOPIC_OR_PART``
      for a subscribed topic that does not exist, ...).
    - ``aegis_msg_consumer_recreated_total{group,reason}``: Kafka consumer clients replaced by a
      fresh one (``reason``: ``topic_back``, a subscribed topic that was missing exists again).
    - ``aegis_msg_outbox_pending_events{table}``: unsent outbox rows, as an
      :class:`~aegis.msg.OutboxRelay` last counted them (at most once per ``interval``).
    - ``aegis_msg_outbox_oldest_pending_age_seconds{table}``: how long the oldest of them has
      waited (0 when none waits).
    - ``aegis_msg_outbox_relayed_total{table}``: outbox rows published and marked sent.
    - ``aegis_msg_outbox_relay_failures_total{table,reason}``: rows the broker did not take, by
      Kafka error name, and relay rounds that failed as a whole, by exception type.

    The two recorded per consumed message (consumed, handler duration) are plain numbers
    rendered on scrape (:mod:`aegis.core.metrics`), except in prometheus_client's
    multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), which only its own metrics support.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        counter: Any = Counter if multiprocess_mode() else PlainCounter
        histogram: Any = Histogram if multiprocess_mode() else PlainHistogram
        self.published = Counter(
            "aegis_msg_published_total",
            "Events sent to the broker, by outcome.",
            ["topic", "type", "outcome"],
            registry=registry,
        )
        self.consumed = counter(
            "aegis_msg_consumed_total",
            "Messages a subscriber finished, by outcome.",
            ["topic", "type", "outcome"],
            registry=registry,
        )
        self.failures = Counter(
            "aegis_msg_handler_failures_total",
            "Handler calls that raised.",
            ["topic", "type"],
            registry=registry,
        )
        self.retries = Counter(
            "aegis_msg_retries_total",
            "Handler retries, in process or through a retry topic.",
            ["topic", "type", "stage"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "aegis_msg_dead_lettered_total",
            "Messages sent to a dead-letter topic, by reason.",
            ["topic", "type", "reason"],
            registry=registry,
        )
        self.handler_duration = histogram(
            "aegis_msg_handler_duration_seconds",
            "Time a handler took per message.",
            ["topic", "type"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.lag = Gauge(
            "aegis_msg_consumer_lag_messages",
            "Messages between a group's position and the end.",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.producer_recreated = Counter(
            "aegis_msg_producer_recreated_total",
            "Kafka producer clients replaced by a fresh one, by the error that required it.",
            ["reason"],
            registry=registry,
        )

        self.consumer_errors = Counter(
            "aegis_msg_consumer_errors_total",
            "Errors a Kafka consumer reported, by librdkafka error name.",
            ["group", "error"],
            registry=registry,
        )
        self.consumer_recreated = Counter(
            "aegis_msg_consumer_recreated_total",
            "Kafka consumer clients replaced by a fresh one, by reason.",
            ["group", "reason"],
            registry=registry,
        )
        # Every relay of a table sees the same rows: across workers, the largest value is the truth.
        self.outbox_pending = Gauge(
            "aegis_msg_outbox_pending_events",
            "Unsent outbox rows, as the relay last counted them.",
            ["table"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.outbox_oldest_age = Gauge(
            "aegis_msg_outbox_oldest_pending_age_seconds",
            "Seconds the oldest unsent outbox row has waited (0 when none waits).",
            ["table"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.outbox_relayed = Counter(
            "aegis_msg_outbox_relayed_total",
            "Outbox rows published and marked sent.",
            ["table"],
            registry=registry,
        )
        self.outbox_relay_failures = Counter(
            "aegis_msg_outbox_relay_failures_total",
            "Outbox rows the broker did not take, by Kafka error name, and relay rounds that "
            "failed as a whole, by exception type.",
            ["table", "reason"],
            registry=registry,
        )

        self._handled: dict[tuple[str, str], Handled] = {}

    def handled(self, topic: str, event_type: str) -> Handled:
        """The metrics recorded for events of ``event_type`` handled from ``topic``.

        Looked up once per topic and type, not per message or batch.
        """
        found = self._handled.get((topic, event_type))
        if found is None:
            duration = self.handler_duration.labels(topic, event_type)
            # prometheus_client's histogram (multiprocess mode) records one value per call.
            observe_many = getattr(duration, "observe_many", None) or partial(
                _observe_each, duration
            )
            found = self._handled[(topic, event_type)] = Handled(
                duration, self.consumed.labels(topic, event_type, "ok"), observe_many
            )
        return found

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> MsgMetrics:
        """Return the metrics registered in ``registry`` (the default one when ``None``)."""
        return _by_registry(registry if registry is not None else REGISTRY)


def _observe_each(histogram: Any, durations: list[float]) -> None:
    for seconds in durations:
        histogram.observe(seconds)


_by_registry: OncePerObject[CollectorRegistry, MsgMetrics] = OncePerObject(MsgMetrics)
