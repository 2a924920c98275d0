"""The Kafka transport: settings, the shared producer, consumer channels and topic creation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Literal, Self

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from aegis.msg._kafka_producer import KafkaProducer
from aegis.msg._transport import (
    BatchResult,
    Fetched,
    OutgoingRecord,
    RebalanceHooks,
    ReceivedMessage,
    TopicPartition,
)

logger = logging.getLogger("aegis.msg")

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
    (see :class:`KafkaProducer`); ``metrics_registry`` is where it counts that
    (``aegis_msg_producer_recreated_total``).

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
        self.producer = KafkaProducer(
            {
                **self.settings.client_config(),
                "message.timeout.ms": int(self.settings.delivery_timeout * 1000),
                **self.settings.producer,
            },
            metrics_registry=metrics_registry,
        )

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

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        """Send ``records`` (a generator is fine); one result per record, in order."""
        return await self.producer.send_batch(records)

    def open_consumer(
        self, group_id: str, topics: Sequence[str], hooks: RebalanceHooks
    ) -> KafkaConsumerChannel:
        """Return a consumer channel for ``group_id`` reading ``topics`` (manual commits)."""
        config = {
            **self.settings.client_config(),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **self.settings.consumer,
        }
        return KafkaConsumerChannel(config, list(topics), hooks)

    async def ensure_topics(self, topics: Mapping[str, str]) -> None:
        """Create each missing topic with the partition count of the topic it maps to."""
        if not topics:
            return
        await asyncio.to_thread(self._ensure_topics, dict(topics))

    def _ensure_topics(self, topics: dict[str, str]) -> None:
        admin = AdminClient(self.settings.client_config())
        metadata = admin.list_topics(timeout=self.settings.delivery_timeout).topics
        missing = [
            NewTopic(name, num_partitions=len(metadata[like].partitions) if like in metadata else 1)
            for name, like in topics.items()
            if name not in metadata
        ]
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


class KafkaConsumerChannel:
    """One consumer-group member. Every client call runs on one worker thread of its own.

    librdkafka calls the rebalance callbacks on that thread inside ``consume()``; they hand over
    to the event loop (finish in-flight handlers) and commit before the partitions are released.
    """

    def __init__(self, config: dict[str, Any], topics: list[str], hooks: RebalanceHooks) -> None:
        self._config = {"on_commit": log_failed_commit, **config}
        self._topics = topics
        self._hooks = hooks
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aegis-msg-consumer")
        self._consumer: Consumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.revoke_timeout = 30.0

    async def start(self) -> None:
        """Create the consumer and subscribe (the group join happens during the first fetch)."""
        self._loop = asyncio.get_running_loop()
        await self._loop.run_in_executor(self._executor, self._subscribe)

    def _subscribe(self) -> None:
        self._consumer = Consumer(self._config)
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._on_loop(self._hooks.assigned, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._on_loop(self._hooks.lost, partitions)

    def _on_loop(
        self,
        hook: Callable[[Sequence[TopicPartition]], None],
        partitions: list[KafkaTopicPartition],
    ) -> None:
        """Run a rebalance hook on the event loop, where the subscriber's state lives, and wait.

        librdkafka calls back on this worker thread, inside ``consume()``.
        """
        assert self._loop is not None  # noqa: S101 - set by start()
        listed = [(p.topic, p.partition) for p in partitions]
        asyncio.run_coroutine_threadsafe(_call(hook, listed), self._loop).result()

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        assert self._loop is not None  # noqa: S101 - set by start()
        revoked = [(p.topic, p.partition) for p in partitions]
        future = asyncio.run_coroutine_threadsafe(self._hooks.revoked(revoked), self._loop)
        try:
            commits = future.result(timeout=self.revoke_timeout)
        except Exception:
            logger.exception("finishing in-flight events of revoked partitions failed")
            return
        self._commit(commits)

    def _commit(self, commits: Mapping[TopicPartition, int], *, wait: bool = True) -> None:
        if not commits or self._consumer is None:
            return
        offsets = [KafkaTopicPartition(t, p, o) for (t, p), o in commits.items()]
        try:
            if wait:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # A commit lost to a rebalance only means redelivery: at-least-once holds.
            logger.warning("kafka commit failed: %s", exc)

    async def fetch(
        self, max_messages: int, timeout: float, commits: Mapping[TopicPartition, int]
    ) -> Fetched:
        """Commit ``commits``, then consume up to ``max_messages`` within ``timeout`` seconds."""
        assert self._loop is not None  # noqa: S101 - set by start()
        return await self._loop.run_in_executor(
            self._executor, self._fetch, max_messages, timeout, dict(commits)
        )

    def _fetch(
        self, max_messages: int, timeout: float, commits: dict[TopicPartition, int]
    ) -> Fetched:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - set by start()
        # Between fetches the commit is not waited for: a round trip per fetch would cap the
        # throughput at one batch per broker latency. A commit lost on the way only means a
        # redelivery; revocation and close() still wait for theirs.
        self._commit(commits, wait=False)
        messages: list[ReceivedMessage] = []
        last: dict[TopicPartition, int] = {}
        for message in consumer.consume(max_messages, timeout):
            error = message.error()
            if error is None:
                messages.append(message)
                last[(message.topic(), message.partition())] = message.offset()  # type: ignore[index,assignment]
            elif error.code() != KafkaError._PARTITION_EOF:
                logger.warning("kafka consumer error: %s", error)
        watermarks = {}
        for topic, partition in last:
            _, high = consumer.get_watermark_offsets(
                KafkaTopicPartition(topic, partition), cached=True
            )
            watermarks[(topic, partition)] = high
        return Fetched(messages, watermarks)

    async def close(self, commits: Mapping[TopicPartition, int]) -> None:
        """Commit ``commits`` and leave the group."""
        if self._loop is None:
            return
        try:
            await self._loop.run_in_executor(self._executor, self._close, dict(commits))
        finally:
            self._executor.shutdown(wait=False)

    def _close(self, commits: dict[TopicPartition, int]) -> None:
        self._commit(commits)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


async def _call(
    hook: Callable[[Sequence[TopicPartition]], None], partitions: list[TopicPartition]
) -> None:
    hook(partitions)


def log_failed_commit(error: KafkaError | None, partitions: list[KafkaTopicPartition]) -> None:
    """Log a failed commit (the consumer's ``on_commit`` callback).

    Commits between fetches are not waited for, so their failures surface here; one only means
    a redelivery (at-least-once holds).
    """
    if error is not None:
        logger.warning("kafka commit of %s failed: %s", partitions, error)
