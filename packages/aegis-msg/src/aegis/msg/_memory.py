"""An in-memory transport with Kafka's semantics, for local development and fast tests.

Topics have partitions, keys pick the partition, consumer groups commit offsets and resume
from them; publishers and subscribers use it exactly as they use :class:`KafkaTransport`.
A group has one active member at a time here (it reads every partition).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count

from aegis.msg._transport import (
    BatchResult,
    DeliveryResult,
    Fetched,
    Headers,
    OutgoingRecord,
    RebalanceHooks,
    TopicPartition,
)

_CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME
_round_robin = count()


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message held by :class:`InMemoryTransport`, with the accessors of Kafka's ``Message``."""

    topic_name: str
    partition_number: int
    offset_number: int
    key_bytes: bytes | None
    value_bytes: bytes
    header_list: Headers = field(default_factory=list)
    timestamp_ms: int = 0

    def topic(self) -> str:
        """The topic it was sent to."""
        return self.topic_name

    def partition(self) -> int:
        """Its partition."""
        return self.partition_number

    def offset(self) -> int:
        """Its offset in the partition."""
        return self.offset_number

    def key(self) -> bytes | None:
        """The message key."""
        return self.key_bytes

    def value(self) -> bytes:
        """The body."""
        return self.value_bytes

    def headers(self) -> Headers:
        """The headers in order."""
        return self.header_list

    def timestamp(self) -> tuple[int, int]:
        """``(create-time type, epoch milliseconds)``."""
        return (_CREATE_TIME, self.timestamp_ms)


class InMemoryTransport:
    """Topics, partitions and consumer-group offsets in this process's memory.

    Args:
        partitions: partition count of topics created on first use.

    Example:
        >>> transport = InMemoryTransport()
        >>> publisher = EventPublisher(transport, source="users")
        >>> subscriber = EventSubscriber(transport, group_id="policies")
    """

    protocol = "memory"

    def __init__(self, *, partitions: int = 1) -> None:
        self.partitions = partitions
        self._topics: dict[str, list[list[StoredMessage]]] = {}
        self._committed: dict[tuple[str, str, int], int] = {}
        self._changed = asyncio.Condition()
        self.connected = True

    async def start(self) -> None:
        """Nothing to connect to; present so code can treat every transport alike."""

    async def close(self, timeout: float = 0.0) -> None:
        """Nothing to flush; present so code can treat every transport alike."""

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create ``name`` with ``partitions`` (the transport's default when ``None``)."""
        self._topics.setdefault(name, [[] for _ in range(partitions or self.partitions)])

    def messages(self, topic: str) -> list[StoredMessage]:
        """Every message of ``topic`` (all partitions, each in offset order)."""
        return [message for partition in self._topics.get(topic, []) for message in partition]

    def committed(self, group_id: str, topic: str, partition: int = 0) -> int:
        """The next offset ``group_id`` will read from ``topic``/``partition`` (0 if none)."""
        return self._committed.get((group_id, topic, partition), 0)

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        """Append ``records`` to their partitions (key hash, else round robin)."""
        now = int(time.time() * 1000)
        results = []
        for record in records:
            self.create_topic(record.topic)
            partitions = self._topics[record.topic]
            if record.key is None:
                number = next(_round_robin) % len(partitions)
            else:
                number = zlib.crc32(record.key) % len(partitions)
            log = partitions[number]
            log.append(
                StoredMessage(
                    record.topic,
                    number,
                    len(log),
                    record.key,
                    record.value,
                    list(record.headers),
                    now,
                )
            )
            results.append(
                DeliveryResult(record.topic, number, len(log) - 1, None, record.event_id)
            )
        async with self._changed:
            self._changed.notify_all()
        return BatchResult.of(results)

    def open_consumer(
        self, group_id: str, topics: Sequence[str], hooks: RebalanceHooks
    ) -> InMemoryConsumerChannel:
        """Return a channel reading ``topics`` for ``group_id`` from its committed offsets."""
        return InMemoryConsumerChannel(self, group_id, list(topics), hooks)

    async def ensure_topics(self, topics: Mapping[str, str]) -> None:
        """Create each missing topic with the partition count of the topic it maps to."""
        for name, like in topics.items():
            self.create_topic(name, len(self._topics.get(like, [])) or None)

    async def _wait_for_messages(self, timeout: float) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                return


class InMemoryConsumerChannel:
    """A group member of :class:`InMemoryTransport`: reads from committed offsets, commits."""

    def __init__(
        self, transport: InMemoryTransport, group_id: str, topics: list[str], hooks: RebalanceHooks
    ) -> None:
        self._transport = transport
        self._group_id = group_id
        self._topics = topics
        self._hooks = hooks
        self._positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Take every partition of the topics, starting at the group's committed offsets."""
        for topic in self._topics:
            self._transport.create_topic(topic)
        assigned = [
            (topic, number)
            for topic in self._topics
            for number in range(len(self._transport._topics[topic]))
        ]
        for topic, number in assigned:
            self._positions[(topic, number)] = self._transport.committed(
                self._group_id, topic, number
            )
        self._hooks.assigned(assigned)

    def _commit(self, commits: Mapping[TopicPartition, int]) -> None:
        for (topic, number), offset in commits.items():
            self._transport._committed[(self._group_id, topic, number)] = offset

    async def fetch(
        self, max_messages: int, timeout: float, commits: Mapping[TopicPartition, int]
    ) -> Fetched:
        """Commit ``commits``, then return up to ``max_messages`` new messages."""
        self._commit(commits)
        batch = self._take(max_messages)
        if not batch:
            await self._transport._wait_for_messages(timeout)
            batch = self._take(max_messages)
        watermarks = {
            (message.topic(), message.partition()): len(
                self._transport._topics[message.topic()][message.partition()]
            )
            for message in batch
        }
        return Fetched(batch, watermarks)

    def _take(self, max_messages: int) -> list[StoredMessage]:
        batch: list[StoredMessage] = []
        for (topic, number), position in self._positions.items():
            log = self._transport._topics[topic][number]
            taken = log[position : position + max_messages - len(batch)]
            batch.extend(taken)
            self._positions[(topic, number)] = position + len(taken)
            if len(batch) >= max_messages:
                break
        return batch

    async def close(self, commits: Mapping[TopicPartition, int]) -> None:
        """Commit ``commits`` and release the partitions."""
        self._commit(commits)
        final = await self._hooks.revoked(list(self._positions))
        self._commit(final)
        self._positions.clear()
