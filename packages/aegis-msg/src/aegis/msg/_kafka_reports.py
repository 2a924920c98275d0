"""Delivery reports of the Kafka producer: per-batch result arrays and reusable callbacks.

The poll thread (or the event loop, inline) writes each report into its batch's flat arrays;
the batch resolves one asyncio future when its last report arrives.
"""

from __future__ import annotations

import asyncio
import threading
from array import array
from collections.abc import Callable
from functools import partial
from sys import getrefcount

from confluent_kafka import KafkaError, Message

from aegis.msg._errors import PublishError
from aegis.msg._transport import BatchResult, Headers, OutgoingRecord

# Local errors worth sending again: the broker may be back, or a fresh client may succeed
# (after a fenced or fatal error the producer replaces its client before the next send).
_RETRIABLE = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._FATAL,
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    }
)


class _Batch:
    """One batch's delivery reports, written by the poll thread into flat arrays."""

    __slots__ = (
        "errors",
        "event_ids",
        "failed_now",
        "failed_records",
        "finished",
        "future",
        "lock",
        "loop",
        "offsets",
        "partitions",
        "produced",
        "reported",
        "topics",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.topics: list[str] = []
        self.event_ids: list[str | None] = []
        self.partitions = array("i")
        self.offsets = array("q")
        self.errors: dict[int, KafkaError | PublishError] = {}
        self.failed_records: dict[int, OutgoingRecord] = {}
        self.produced = 0  # written by the event loop only
        self.failed_now = 0  # written by the event loop only: refused by produce() itself
        self.reported = 0  # written by whichever thread serves reports, under the lock
        self.lock = threading.Lock()
        self.finished = False  # set by the event loop once every record is produced
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def report(  # noqa: PLR0917 - a partial's arguments, then confluent's two
        self,
        index: int,
        value: bytes,
        key: bytes | None,
        headers: tuple[tuple[str, bytes], ...],
        error: KafkaError | None,
        message: Message,
    ) -> None:
        if error is None:
            self.partitions[index] = message.partition() or 0
            self.offsets[index] = message.offset() or 0
        else:
            self.errors[index] = error
            self.failed_records[index] = OutgoingRecord(
                self.topics[index], value, key, list(headers), self.event_ids[index]
            )
        with self.lock:
            self.reported += 1
            last = self.finished and self.reported + self.failed_now == self.produced
        if last:
            self.loop.call_soon_threadsafe(_resolve, self.future)

    def result(self) -> BatchResult:
        """The batch's results, once every report is in."""
        topics, event_ids = self.topics, self.event_ids
        errors = {
            index: error
            if isinstance(error, PublishError)
            else _error(topics[index], event_ids[index], error)
            for index, error in self.errors.items()
        }
        return BatchResult(
            topics,
            event_ids,
            self.partitions,
            self.offsets,
            errors,
            failed_records=self.failed_records,
        )

    def complete(self) -> bool:
        with self.lock:
            self.finished = True
            return self.reported + self.failed_now == self.produced


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _ReportSlots:
    """Delivery callbacks made once and reused: one per message in flight, not per message.

    A fresh ``partial`` per message, alive until its report, cost measurably more per message
    than one callback made once (the allocations, and the garbage collector walking them while
    they wait). A slot holds its message's batch and index, and the record's immutable parts
    (a failed record can be sent again), until the report frees it for the next message. There
    are as many slots as messages were ever in flight at once, which librdkafka bounds
    (``queue.buffering.max.messages``).
    """

    __slots__ = ("batches", "callbacks", "free", "parts")

    def __init__(self) -> None:
        self.callbacks: list[Callable[[KafkaError | None, Message], None]] = []
        """The callback of each slot, made once."""
        self.free: list[int] = []
        """Slots no message holds."""
        self.batches: list[_Batch | None] = []
        """The batch of each slot's message."""
        self.parts: list[tuple[int, bytes, bytes | None, tuple[tuple[str, bytes], ...]] | None] = []
        """Each slot's message: its index in the batch, value, key and headers."""

    def take(
        self, batch: _Batch, index: int, value: bytes, key: bytes | None, headers: Headers
    ) -> tuple[int, Callable[[KafkaError | None, Message], None]]:
        """A free slot for one message, and the callback that reports it.

        The producer's send loop does the same inline. The headers are kept (as a tuple, which
        the garbage collector stops tracking) for a failed record to be sent again.
        """
        slot = self.free.pop() if self.free else self.grow()
        self.batches[slot] = batch
        self.parts[slot] = (index, value, key, tuple(headers))
        return slot, self.callbacks[slot]

    def give_back(self, slot: int) -> None:
        """Free ``slot`` of a message that produce() refused (no report will come)."""
        self.batches[slot] = self.parts[slot] = None
        self.free.append(slot)

    def grow(self) -> int:
        """Add a slot (and its callback); return it."""
        slot = len(self.callbacks)
        self.callbacks.append(partial(self._deliver, slot))
        self.batches.append(None)
        self.parts.append(None)
        return slot

    def _deliver(self, slot: int, error: KafkaError | None, message: Message) -> None:
        # One frame per report: the slot is freed and a delivery recorded here; a failure
        # (rare) goes through _Batch.report.
        batches, parts_of = self.batches, self.parts
        batch, parts = batches[slot], parts_of[slot]
        batches[slot] = parts_of[slot] = None
        self.free.append(slot)
        if batch is None or parts is None:
            return
        if error is not None:
            batch.report(*parts, error, message)
            return
        index = parts[0]
        batch.partitions[index] = message.partition() or 0
        batch.offsets[index] = message.offset() or 0
        with batch.lock:
            batch.reported += 1
            last = batch.finished and batch.reported + batch.failed_now == batch.produced
        if last:
            batch.loop.call_soon_threadsafe(_resolve, batch.future)


class _QuietSlots:
    """Callbacks of a client that reports failed messages only: one per message in flight.

    Such a client calls a message's callback only when the message fails, so no report frees
    a slot. confluent-kafka holds a reference to a message's callback until librdkafka is done
    with the message (delivered or failed), so a callback that nothing else references has no
    message in flight, and its slot is taken again. A fresh ``partial`` per message instead
    kept one more object per message in flight for the garbage collector to promote.
    """

    __slots__ = ("batches", "callbacks", "next", "parts")

    IDLE = 2
    """``sys.getrefcount`` of a callback held by the pool only (the list, the argument)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[KafkaError | None, Message], None]] = []
        self.batches: list[_Batch | None] = []
        self.parts: list[tuple[int, bytes, bytes | None, tuple[tuple[str, bytes], ...]] | None] = []
        self.next = 0

    def take(
        self, batch: _Batch, index: int, value: bytes, key: bytes | None, headers: Headers
    ) -> Callable[[KafkaError | None, Message], None]:
        """The callback for one message: a slot whose message is done, or a new one."""
        callbacks = self.callbacks
        count = len(callbacks)
        slot = self.next
        if slot < count and getrefcount(callbacks[slot]) == self.IDLE:
            self.next = slot + 1 if slot + 1 < count else 0
        else:  # messages finish in about the order they were sent: the oldest slot is next
            slot = self.grow()
        self.batches[slot] = batch
        self.parts[slot] = (index, value, key, tuple(headers))
        return callbacks[slot]

    def release(self, batch: _Batch) -> None:
        """Forget ``batch`` (every message of it is done), so its results are not kept alive."""
        batches, parts = self.batches, self.parts
        for slot, held in enumerate(batches):
            if held is batch:
                batches[slot] = parts[slot] = None

    def grow(self) -> int:
        """Add a slot (and its callback); return it."""
        slot = len(self.callbacks)
        self.callbacks.append(partial(self._failed, slot))
        self.batches.append(None)
        self.parts.append(None)
        return slot

    def _failed(self, slot: int, error: KafkaError | None, message: Message) -> None:
        batch, parts = self.batches[slot], self.parts[slot]
        if batch is not None and parts is not None and error is not None:
            batch.report(*parts, error, message)


def _error(topic: str, event_id: str | None, error: KafkaError | None) -> PublishError:
    name = error.name() if error is not None else "UNKNOWN"
    text = error.str() if error is not None else "no delivery report before the producer closed"
    retriable = error is None or error.retriable() or error.code() in _RETRIABLE
    return PublishError(
        f"event {event_id or '?'} was not delivered to {topic!r}: {name}: {text}",
        retriable=retriable,
        details={"topic": topic, "event_id": event_id, "kafka_error": name},
    )
