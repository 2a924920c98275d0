"""The Kafka transport: settings, the shared producer, consumer channels and topic creation.

:func:`make_transport` picks it when a service's settings configure Kafka, else the in-memory one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from aegis.msg._kafka_consumer import KafkaConsumerChannel
from aegis.msg._kafka_producer import ONLY_ERRORS, KafkaProducer
from aegis.msg._memory import InMemoryTransport
from aegis.msg._metrics import MsgMetrics
from aegis.msg._transport import BatchResult, OutgoingRecord, RebalanceHooks, Transport

logger = logging.getLogger("aegis.msg")

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": False,  # the subscriber commits what its handlers finished
    # A group that lost its offsets (a broker restarted empty) reads what the broker holds.
    "auto.offset.reset": "earliest",
    # A subscribed topic that is re-created (or gains partitions) is noticed within 10 s,
    # not librdkafka's 5 minutes; one small metadata request per consumer every 10 s.
    "topic.metadata.refresh.interval.ms": 10_000,
}

ConfigValue = str | int | float | bool


class KafkaSettings(BaseModel):
    """How to reach Kafka. ``producer`` and ``consumer`` pass further librdkafka settings.

    Example:
        >>> KafkaSettings(bootstrap_servers="kafka-1:9092,kafka-2:9092", client_id="users")
    """

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str = Field(default="localhost:9092", min_length=1)
    client_id: str = "aegis"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    delivery_timeout: float = Field(default=30.0, gt=0)
    """Seconds librdkafka keeps trying to deliver one message (``message.timeout.ms``)."""
    producer: dict[str, ConfigValue] = Field(default_factory=dict)
    consumer: dict[str, ConfigValue] = Field(default_factory=dict)

    def client_config(self) -> dict[str, Any]:
        """Settings every client shares: servers, client id and security."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        return config


class KafkaTransport:
    """A Kafka connection for publishers and subscribers: one producer, a consumer per group.

    Use it as an async context manager (or call ``start()`` and ``close()``); closing flushes
    what is queued. The producer replaces its client by itself after a fatal or fenced error
    (see :class:`KafkaProducer`); a consumer reports outages to its subscriber and replaces
    its client when a subscribed topic the broker had lost exists again.
    ``metrics_registry`` is where they count (``aegis_msg_producer_recreated_total``,
    ``aegis_msg_consumer_errors_total``, ``aegis_msg_consumer_recreated_total``).

    Example:
        >>> async with KafkaTransport(KafkaSettings(bootstrap_servers="localhost:9092")) as kafka:
        ...     await EventPublisher(kafka, source="users").publish(event)
    """

    protocol = "kafka"

    def __init__(
        self,
        settings: KafkaSettings | None = None,
        *,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings or KafkaSettings()
        self._metrics = MsgMetrics.for_registry(metrics_registry)
        self._partition_counts: dict[str, int] = {}  # of the topics ensure_topics saw
        self._producer_config = {
            **self.settings.client_config(),
            "message.timeout.ms": int(self.settings.delivery_timeout * 1000),
            **self.settings.producer,
        }
        self._metrics_registry = metrics_registry
        self.producer = KafkaProducer(self._producer_config, metrics_registry=metrics_registry)
        self._quiet_producer: KafkaProducer | None = None

    @property
    def connected(self) -> bool:
        """Whether the producer's last word from the broker was a delivery, not an outage."""
        return self.producer.connected

    async def start(self) -> None:
        """Start the producer (connections are made lazily by librdkafka)."""
        self.producer.start()

    async def close(self, timeout: float = 30.0) -> None:
        """Flush queued messages (up to ``timeout`` seconds) and stop."""
        await self.producer.close(timeout)
        quiet, self._quiet_producer = self._quiet_producer, None
        if quiet is not None:
            await quiet.close(timeout)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def send_batch(
        self, records: Iterable[OutgoingRecord], *, errors_only: bool = False
    ) -> BatchResult:
        """Send ``records`` (a generator is fine); one result per record, in order.

        ``errors_only``: through a second client that reports failed messages only (made on
        first use), so a delivered message costs no report; its result has no partition and
        offset (-1).
        """
        if not errors_only:
            return await self.producer.send_batch(records)
        quiet = self._quiet_producer
        if quiet is None:
            quiet = self._quiet_producer = KafkaProducer(
                {**self._producer_config, ONLY_ERRORS: True},
                metrics_registry=self._metrics_registry,
            )
            quiet.start()
        return await quiet.send_batch(records)

    def open_consumer(
        self, group_id: str, topics: Sequence[str], hooks: RebalanceHooks
    ) -> KafkaConsumerChannel:
        """Return a consumer channel for ``group_id`` reading ``topics`` (manual commits)."""
        config = {
            **self.settings.client_config(),
            "group.id": group_id,
            "on_commit": log_failed_commit,
            **CONSUMER_DEFAULTS,
            **self.settings.consumer,
        }
        return KafkaConsumerChannel(config, list(topics), hooks, metrics=self._metrics)

    async def ensure_topics(self, topics: Mapping[str, str]) -> None:
        """Create each missing topic with the partition count of the topic it maps to.

        A topic created again after the broker lost it (a subscriber's retry topics after an
        outage) gets the partition count it had, even while the topic it maps to is missing:
        a producer that still knows the old count keeps writing to its partitions.
        """
        if not topics:
            return
        await asyncio.to_thread(self._ensure_topics, dict(topics))

    def _ensure_topics(self, topics: dict[str, str]) -> None:
        admin = AdminClient(self.settings.client_config())
        metadata = admin.list_topics(timeout=self.settings.delivery_timeout).topics
        counts = self._partition_counts
        counts.update((name, len(metadata[name].partitions)) for name in topics if name in metadata)
        for like in topics.values():
            if like in metadata:
                counts[like] = len(metadata[like].partitions)
        missing = []
        for name, like in topics.items():
            if name not in metadata:
                counts[name] = counts.get(name) or counts.get(like) or 1
                missing.append(NewTopic(name, num_partitions=counts[name]))
        if not missing:
            return
        for name, future in admin.create_topics(missing).items():
            try:
                future.result(timeout=self.settings.delivery_timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            else:
                logger.info("created kafka topic %s", name)


def log_failed_commit(error: KafkaError | None, partitions: list[KafkaTopicPartition]) -> None:
    """Log a failed commit (the consumer's ``on_commit`` callback).

    Commits between fetches are not waited for, so their failures surface here; one only means
    a redelivery (at-least-once holds).
    """
    if error is not None:
        logger.warning("kafka commit of %s failed: %s", partitions, error)


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
