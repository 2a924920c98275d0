"""An asyncio bridge over librdkafka's ``Producer`` that keeps per-message headers.

confluent-kafka's ``AIOProducer`` refuses headers on its batched path, and CloudEvents binary
mode and ``traceparent`` need them. So the plain ``Producer`` is driven from asyncio: a poll thread
serves delivery reports, and each batch resolves one asyncio future when its last report arrives
(one ``call_soon_threadsafe`` per batch, not per message: that hop costs ~20 µs per message in
peers that do it per message). While a batch is being produced the poll thread waits and the
event loop serves reports itself every 1,000 messages: a poll thread running callbacks during
the produce loop made both threads fight for the GIL, doubling the cost per message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from array import array
from collections.abc import Iterable
from sys import getrefcount
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from prometheus_client import CollectorRegistry

from aegis.msg._kafka_probe import PROBE_TIMEOUT, MetadataProbe
from aegis.msg._kafka_reports import _Batch, _error, _QuietSlots, _ReportSlots, _resolve
from aegis.msg._metrics import MsgMetrics
from aegis.msg._transport import BatchResult, OutgoingRecord

logger = logging.getLogger("aegis.msg")

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # also forces acks=all and ordered retries per partition
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "none",
}

_BUFFER_FULL_WAIT = 0.005
# Errors after which this client cannot deliver again, whatever the broker does: the broker
# forgot or fenced its idempotent producer id (a broker restarted empty), or the sequence
# state is broken. Only a new client (a new producer id) gets out of them.
_FENCED = frozenset(
    {
        KafkaError._FATAL,
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    }
)
_POLL_TIMEOUT = 0.1
_DRAIN_STEP = 1.0  # seconds per flush() while waiting for a quiet client's queue to empty
ONLY_ERRORS = "delivery.report.only.error"
"""librdkafka's setting for a client that reports failed messages only (see ``send_batch``)."""
_INLINE_POLL_EVERY = 1000
_UNREPORTED_INTS = array("i", [-1]) * _INLINE_POLL_EVERY
_UNREPORTED_LONGS = array("q", [-1]) * _INLINE_POLL_EVERY


class KafkaProducer:
    """Asynchronous, header-capable Kafka producer: idempotent, acks=all, ordered per partition.

    ``send_batch`` returns one :class:`DeliveryResult` per record once the broker acknowledged
    or refused each one; a full local queue makes it wait, never drop. librdkafka retries
    retriable errors with backoff (``retry.backoff.ms``) until ``message.timeout.ms``.

    The client recovers by itself: after a fatal or fenced error (a broker restarted empty
    forgot the idempotent producer's id), or after messages timed out while the broker answers
    again (a client stuck on a producer id the broker no longer knows), the next send replaces
    the client with a fresh one, logged at WARNING and counted in
    ``aegis_msg_producer_recreated_total{reason}``. Messages still queued in the old client fail
    as retriable (their records come back in the results), so the caller sends them again, in
    order. ``close()`` flushes.

    Args:
        config: librdkafka settings (``bootstrap.servers`` at least); idempotence and acks=all
            are the defaults.
        metrics_registry: Prometheus registry for ``aegis_msg_producer_recreated_total``.
    """

    def __init__(
        self, config: dict[str, Any], *, metrics_registry: CollectorRegistry | None = None
    ) -> None:
        self._config = {**PRODUCER_DEFAULTS, **config, "error_cb": self._on_error}
        self._quiet = bool(self._config.get(ONLY_ERRORS))
        self._metrics = MsgMetrics.for_registry(metrics_registry)
        self._producer: Producer | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: str | None = None  # why the client must be replaced, set by any thread
        self._timed_out = False  # messages timed out: replace the client once the broker answers
        self._recovering = asyncio.Lock()
        self._probe = MetadataProbe(interval=PROBE_TIMEOUT)
        self.recreated = 0
        """How many times the client was replaced by a fresh one since this producer was made."""
        self._batches: set[_Batch] = set()
        self._slots = _ReportSlots()
        self._quiet_slots = _QuietSlots()
        self._producing = 0  # batches in their produce loop; the poll thread waits meanwhile
        self._may_poll = threading.Event()
        self._may_poll.set()
        self.connected = False
        """Whether the last word from the broker was good (a delivery), not an outage."""
        self.last_error: str | None = None
        """The last client-level error librdkafka reported, for health checks."""

    def start(self) -> None:
        """Create the client and start the delivery-report thread (idempotent)."""
        if self._producer is not None:
            return
        self._producer = Producer(self._config)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._poll_forever, name="aegis-msg-producer", daemon=True
        )
        self._thread.start()

    def _poll_forever(self) -> None:
        producer = self._producer
        assert producer is not None  # started before the thread
        while not self._stopping.is_set():
            if not self._may_poll.wait(_POLL_TIMEOUT):
                continue
            try:
                producer.poll(_POLL_TIMEOUT)
            except KafkaException as exc:
                # librdkafka raises its fatal errors from poll(); the next send replaces the
                # client, and polling on serves the failure reports of queued messages.
                self._on_error(exc.args[0])

    def _on_error(self, error: KafkaError) -> None:
        self.last_error = f"{error.name()}: {error.str()}"
        if error.fatal() or error.code() in _FENCED:
            # An idempotent producer's fatal error (the broker forgot its producer id, say)
            # ends this client; the next send starts a fresh one.
            self._fatal = error.name()
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.connected = False
        logger.warning("kafka producer error: %s", self.last_error)

    async def send_batch(self, records: Iterable[OutgoingRecord]) -> BatchResult:
        """Send ``records`` (a generator is fine) and return one result per record, in order.

        librdkafka retries retriable errors itself (with idempotence, until
        ``message.timeout.ms``); what fails after that is reported in the result. A client
        configured with ``delivery.report.only.error`` hears of failed messages only: its
        results give no partition and offset (-1) for delivered ones, and a batch is done once
        the client has nothing left to deliver.

        Raises:
            RuntimeError: the producer is not started.
        """
        producer = await self._client()
        batch = _Batch(asyncio.get_running_loop())
        self._pause_polling()
        try:
            if self._quiet:
                await self._produce_quietly(producer, batch, records)
            else:
                await self._produce(producer, batch, records)
        finally:
            self._resume_polling()
        del batch.partitions[batch.produced :], batch.offsets[batch.produced :]
        if self._quiet:
            await self._drain(producer)
            self._quiet_slots.release(batch)
            self._settle(batch)
            return batch.result()
        if batch.complete():
            _resolve(batch.future)
        self._batches.add(batch)
        try:
            await batch.future
        finally:
            self._batches.discard(batch)
        self._settle(batch)
        return batch.result()

    def _settle(self, batch: _Batch) -> None:
        """Note what a finished batch says about the client: connected, or to be replaced."""
        if len(batch.errors) < batch.produced:
            self.connected = True
        self._diagnose(batch)

    def _diagnose(self, batch: _Batch) -> None:
        """Note from a batch's failures whether the client needs replacing before the next send."""
        timed_out = False
        for error in batch.errors.values():
            if not isinstance(error, KafkaError):
                continue
            if error.fatal() or error.code() in _FENCED:
                self._fatal = self._fatal or error.name()
            elif error.code() == KafkaError._MSG_TIMED_OUT:
                timed_out = True
        if timed_out:
            self._timed_out = True
        elif len(batch.errors) < batch.produced:
            self._timed_out = False  # this client delivers: the timeouts were the outage's

    async def _produce(
        self, producer: Producer, batch: _Batch, records: Iterable[OutgoingRecord]
    ) -> None:
        """Hand every record to librdkafka, serving reports inline every 1,000 records."""
        slots = self._slots
        free, slot_batches, slot_parts, callbacks = (
            slots.free,
            slots.batches,
            slots.parts,
            slots.callbacks,
        )
        produce = producer.produce
        add_topic, add_event_id = batch.topics.append, batch.event_ids.append
        partitions, offsets = batch.partitions, batch.offsets
        capacity = 0
        for index, record in enumerate(records):
            topic, value, key, headers, event_id = record
            add_topic(topic)
            add_event_id(event_id)
            if index == capacity:
                # Room for the next reports, made in blocks rather than one append each.
                partitions.extend(_UNREPORTED_INTS)
                offsets.extend(_UNREPORTED_LONGS)
                capacity += _INLINE_POLL_EVERY
                producer.poll(0)
            batch.produced = index + 1
            # A free report slot (_ReportSlots.take, inline): the callback made for it.
            slot = free.pop() if free else slots.grow()
            slot_batches[slot] = batch
            # A tuple of the headers: once the collector has seen it, it and the parts are
            # untracked, so the records in flight never promote into the oldest generation.
            slot_parts[slot] = (index, value, key, tuple(headers))
            callback = callbacks[slot]
            while True:
                try:
                    # Positional (topic, value, key, partition, callback, on_delivery,
                    # timestamp, headers): cheaper to parse than keywords, per message.
                    produce(
                        topic,
                        value,
                        key,
                        -1,
                        callback,
                        None,
                        0,
                        headers,  # type: ignore[arg-type] # confluent reads (str, bytes) pairs
                    )
                    break
                except BufferError:
                    # The local queue is full: let the poll thread drain reports meanwhile.
                    self._resume_polling()
                    await asyncio.sleep(_BUFFER_FULL_WAIT)
                    self._pause_polling()
                except KafkaException as exc:
                    self._slots.give_back(slot)
                    batch.errors[index] = exc.args[0]
                    batch.failed_records[index] = record
                    batch.failed_now += 1
                    break

    async def _produce_quietly(
        self, producer: Producer, batch: _Batch, records: Iterable[OutgoingRecord]
    ) -> None:
        """As :meth:`_produce`, for a client that reports failed messages only.

        Each message's callback (called only if it fails) comes from :class:`_QuietSlots`.
        """
        produce = producer.produce
        slots = self._quiet_slots
        callbacks, slot_batches, slot_parts = slots.callbacks, slots.batches, slots.parts
        idle = slots.IDLE
        add_topic, add_event_id = batch.topics.append, batch.event_ids.append
        partitions, offsets = batch.partitions, batch.offsets
        capacity = 0
        for index, record in enumerate(records):
            topic, value, key, headers, event_id = record
            add_topic(topic)
            add_event_id(event_id)
            if index == capacity:
                partitions.extend(_UNREPORTED_INTS)
                offsets.extend(_UNREPORTED_LONGS)
                capacity += _INLINE_POLL_EVERY
                producer.poll(0)
            batch.produced = index + 1
            while True:
                # _QuietSlots.take, inline: the oldest slot if its message is done, else a new one.
                slot = slots.next
                if slot < len(callbacks) and getrefcount(callbacks[slot]) == idle:
                    slots.next = slot + 1 if slot + 1 < len(callbacks) else 0
                else:
                    slot = slots.grow()
                slot_batches[slot] = batch
                slot_parts[slot] = (index, value, key, tuple(headers))
                try:
                    produce(topic, value, key, -1, callbacks[slot], None, 0, headers)  # type: ignore[arg-type] # confluent reads (str, bytes) pairs
                    break
                except BufferError:
                    self._resume_polling()
                    await asyncio.sleep(_BUFFER_FULL_WAIT)
                    self._pause_polling()
                except KafkaException as exc:
                    batch.errors[index] = exc.args[0]
                    batch.failed_records[index] = record
                    batch.failed_now += 1
                    break

    @staticmethod
    async def _drain(producer: Producer) -> None:
        """Wait until ``producer`` has delivered (or failed) every message handed to it."""
        while len(producer):
            try:
                await asyncio.to_thread(producer.flush, _DRAIN_STEP)
            except RuntimeError:  # closed meanwhile: close() has flushed and purged it
                return

    async def _client(self) -> Producer:
        if (self._fatal or self._timed_out) and self._producer is not None:
            async with self._recovering:  # one replacement for concurrent senders
                await self._recover()
        if self._producer is None:
            raise RuntimeError("KafkaProducer.start() was not called")
        return self._producer

    async def _recover(self) -> None:
        producer = self._producer
        if producer is None:
            return
        reason = self._fatal
        if reason is None and self._timed_out:
            # Messages timed out. While the broker is down that is the outage, and a new client
            # would time out as well; once it answers, a client still timing out is stuck on
            # state the broker forgot (it came back empty). One probe tells the two apart; after
            # one, senders go on without probing for a while (no queue of probes).
            if not self._probe.due() or not await asyncio.to_thread(self._probe.answers, producer):
                return
            reason = KafkaError(KafkaError._MSG_TIMED_OUT).name()
        if reason is None:
            return
        logger.warning(
            "kafka producer recreated after %s (last error: %s); undelivered messages fail as "
            "retriable and are sent again by their publisher or outbox relay",
            reason,
            self.last_error,
        )
        await self._replace()
        self.recreated += 1
        self._metrics.producer_recreated.labels(reason).inc()

    def _pause_polling(self) -> None:
        self._producing += 1
        self._may_poll.clear()

    def _resume_polling(self) -> None:
        self._producing -= 1
        if not self._producing:
            self._may_poll.set()

    async def _replace(self) -> None:
        await self.close(0)
        self._fatal = None
        self._timed_out = False
        self.start()

    async def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the poll thread."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        self._stopping.set()
        self._may_poll.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        remaining = await asyncio.to_thread(producer.flush, timeout)
        if remaining:
            logger.error("kafka producer closed with %d undelivered messages", remaining)
            producer.purge()
            await asyncio.to_thread(producer.flush, 0)
        for batch in self._batches:
            # Messages without a report by now never get one: they fail as not delivered.
            for index in range(batch.produced):
                if batch.partitions[index] < 0:
                    batch.errors.setdefault(
                        index, _error(batch.topics[index], batch.event_ids[index], None)
                    )
            _resolve(batch.future)
