"""What publishers and subscribers need from a broker: the Kafka and in-memory transports."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, cast, overload

from aegis.msg._errors import PublishError

Headers = list[tuple[str, bytes]]
"""Message headers in order, as Kafka carries them (names may repeat)."""

TopicPartition = tuple[str, int]
"""``(topic, partition)``."""


class OutgoingRecord(NamedTuple):
    """One message to send: where, what and with which headers."""

    topic: str
    value: bytes
    key: bytes | None
    headers: Headers
    event_id: str | None = None


@dataclass(slots=True)
class DeliveryResult:
    """What became of one sent message: where it landed, or the error that stopped it."""

    topic: str
    partition: int
    offset: int
    error: PublishError | None = None
    event_id: str | None = None
    record: OutgoingRecord | None = None
    """The record itself when it was not delivered, so it can be sent again as it was."""

    @property
    def ok(self) -> bool:
        """Whether the broker acknowledged the message."""
        return self.error is None


class BatchResult(Sequence[DeliveryResult]):
    """The results of one batch, in order; each :class:`DeliveryResult` is built on access.

    A batch of 100,000 events keeps two integer arrays and the failures here, not 100,000
    objects: every object kept alive makes Python's garbage collector slower for everyone.
    A failure keeps its record (``failed_records``), so it can be sent again as it was.
    """

    __slots__ = ("_errors", "_event_ids", "_failed_records", "_offsets", "_partitions", "_topics")

    def __init__(
        self,
        topics: list[str],
        event_ids: list[str | None],
        partitions: array[int],
        offsets: array[int],
        errors: dict[int, PublishError],
        *,
        failed_records: dict[int, OutgoingRecord] | None = None,
    ) -> None:
        self._topics = topics
        self._event_ids = event_ids
        self._partitions = partitions
        self._offsets = offsets
        self._errors = errors
        self._failed_records = failed_records or {}

    @classmethod
    def of(cls, results: Iterable[DeliveryResult]) -> BatchResult:
        """Pack ready-made results (the in-memory transport, tests)."""
        batch = cls([], [], array("i"), array("q"), {})
        for index, result in enumerate(results):
            batch._topics.append(result.topic)
            batch._event_ids.append(result.event_id)
            batch._partitions.append(result.partition)
            batch._offsets.append(result.offset)
            if result.error is not None:
                batch._errors[index] = result.error
            if result.record is not None:
                batch._failed_records[index] = result.record
        return batch

    def __len__(self) -> int:
        return len(self._topics)

    @overload
    def __getitem__(self, index: int) -> DeliveryResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[DeliveryResult]: ...

    def __getitem__(self, index: int | slice) -> DeliveryResult | list[DeliveryResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        error = self._errors.get(index)
        return DeliveryResult(
            self._topics[index],
            -1 if error is not None else self._partitions[index],
            -1 if error is not None else self._offsets[index],
            error,
            self._event_ids[index],
            self._failed_records.get(index) if error is not None else None,
        )

    def __iter__(self) -> Iterator[DeliveryResult]:
        return (self[index] for index in range(len(self)))

    @property
    def all_ok(self) -> bool:
        """Whether the broker acknowledged every message."""
        return not self._errors

    @property
    def failed(self) -> list[DeliveryResult]:
        """The results of the messages that were not delivered, in order."""
        return [self[index] for index in sorted(self._errors)]


class ReceivedMessage(Protocol):
    """A consumed message; confluent-kafka's ``Message`` has exactly these accessors."""

    def topic(self) -> str | None:
        """The topic it came from."""

    def partition(self) -> int | None:
        """Its partition."""

    def offset(self) -> int | None:
        """Its offset in the partition."""

    def key(self) -> str | bytes | None:
        """The message key."""

    def value(self) -> str | bytes | None:
        """The body."""

    def headers(
        self,
    ) -> Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None:
        """The headers in order."""

    def timestamp(self) -> tuple[int, int]:
        """``(timestamp type, epoch milliseconds)``."""


def header_items(message: ReceivedMessage) -> Headers:
    """The headers of a received message as ``(name, bytes)`` pairs, in order."""
    raw = message.headers()
    if not raw:
        return []
    items = raw.items() if isinstance(raw, Mapping) else raw
    # Consumed headers carry bytes; a header sent without a value arrives as None.
    return [(name, b"" if value is None else _as_bytes(value)) for name, value in items]


def header_map(message: ReceivedMessage) -> dict[str, bytes]:
    """The headers of a received message by name (the last of repeated names wins)."""
    raw = message.headers()
    # dict() of the pairs is the cheap path; values are bytes for every consumed message.
    return cast("dict[str, bytes]", dict(raw)) if raw else {}


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


class Fetched(NamedTuple):
    """One fetch: the messages, and the end offset of each partition they came from (for lag).

    ``last_offsets``, when given, is the offset of each partition's last message in
    ``messages`` (a channel that has them saves the subscriber a pass over the messages).
    """

    messages: Sequence[ReceivedMessage]
    high_watermarks: Mapping[TopicPartition, int]
    last_offsets: Mapping[TopicPartition, int] | None = None


class RebalanceHooks(Protocol):
    """How a consumer channel tells the subscriber that partitions come and go, and outages."""

    async def revoked(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """Finish in-flight work on ``partitions``; return the offsets to commit before release."""

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """``partitions`` are now this consumer's."""

    def lost(self, partitions: Sequence[TopicPartition]) -> None:
        """``partitions`` were taken away without a chance to commit."""

    def unavailable(self, reason: str) -> None:
        """The channel cannot reach the broker (``reason`` says why) or failed for good."""

    def available(self) -> None:
        """The channel reaches the broker again."""


class ConsumerChannel(Protocol):
    """A group member reading some topics: fetch batches, commit offsets, close."""

    async def start(self) -> None:
        """Connect and subscribe."""

    async def fetch(
        self, max_messages: int, timeout: float, commits: Mapping[TopicPartition, int]
    ) -> Fetched:
        """Commit ``commits`` (next offset to read, per partition), then fetch a batch."""

    async def close(self, commits: Mapping[TopicPartition, int]) -> None:
        """Commit ``commits`` and leave the group."""


class Transport(Protocol):
    """A broker connection publishers and subscribers share."""

    @property
    def protocol(self) -> str:
        """The protocol name for documents and spans (``kafka``)."""

    async def start(self) -> None:
        """Get ready to send (the owner of the transport calls it once)."""

    async def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then release the connection."""

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        """Send ``records`` and wait for every delivery report; one result per record, in order.

        ``records`` may be a generator: each record is sent as it is made and not kept.
        """

    def open_consumer(
        self, group_id: str, topics: Sequence[str], hooks: RebalanceHooks
    ) -> ConsumerChannel:
        """Return a channel that joins ``group_id`` and reads ``topics``."""

    async def ensure_topics(self, topics: Mapping[str, str]) -> None:
        """Create each missing topic with as many partitions as the topic it maps to."""
