"""The transport a service's settings ask for: Kafka when configured, else in memory."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from aegis.msg._kafka import KafkaSettings, KafkaTransport
from aegis.msg._memory import InMemoryTransport
from aegis.msg._transport import Transport


def make_transport(
    kafka: KafkaSettings | None, *, metrics_registry: CollectorRegistry | None = None
) -> Transport:
    """Return a :class:`KafkaTransport` for ``kafka``; for ``None``, an :class:`InMemoryTransport`.

    So one settings field (``kafka: KafkaSettings | None = None``) lets a service run on the
    embedded default in development and tests and on Kafka in production. ``metrics_registry``
    is where the Kafka producer counts its recoveries (``aegis_msg_producer_recreated_total``).
    """
    if kafka is None:
        return InMemoryTransport()
    return KafkaTransport(kafka, metrics_registry=metrics_registry)
