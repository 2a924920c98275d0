"""Read a dead-letter topic without a consumer group and replay chosen records.

Reading assigns partitions directly and never commits, so no group is joined and the
application's group offsets are never touched. A partition is read up to the end its fetch
reports (end-of-partition events), not up to a listed high watermark: some Kafka-protocol
brokers (Tansu) answer ListOffsets wrongly, and offsets by time only serve as a starting
point, so every record read is checked against the selection.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from aegis.core.errors import ConfigurationError, ExternalServiceError, NotFoundError
from aegis.msg._dlt import REPLAYED_FROM, DeadLetter
from aegis.msg._dlt_selection import DeadLetterSelection
from aegis.msg._kafka import KafkaSettings
from aegis.msg._kafka_producer import PRODUCER_DEFAULTS

client_logger = logging.getLogger("aegis.msg.dlt.client")
"""Where librdkafka's own log lines go (connection failures and the like)."""

_Client = TypeVar("_Client", Consumer, Producer)
_BATCH: Final = 500
_POLL: Final = 0.1
# A reader at the end of a partition waits less per fetch than librdkafka would by default,
# so a read ends soon after it reached the end.
_READER_DEFAULTS: Final = {"fetch.wait.max.ms": 100}


@dataclass(frozen=True)
class ReplayResult:
    """What became of one replayed dead letter.

    ``target`` is the topic it went (or would go) to; ``partition`` and ``offset`` where it
    landed; ``error`` why it was not sent. A dry run sends nothing (``dry_run``).
    """

    letter: DeadLetter
    target: str | None
    partition: int | None = None
    offset: int | None = None
    error: str | None = None
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Whether it was delivered (or, in a dry run, could be sent)."""
        return self.error is None


class DeadLetters:
    """Lists, shows and replays the records of dead-letter topics.

    Blocking, like the command line it serves; from async code call it through
    ``asyncio.to_thread``. Use it as a context manager (or call :meth:`close`).

    Args:
        settings: how to reach Kafka; ``consumer`` and ``producer`` settings pass through.
        timeout: seconds to wait for the broker before giving up on an answer.

    Example:
        >>> with DeadLetters(KafkaSettings(bootstrap_servers="kafka:9092")) as dead:
        ...     letters = list(dead.read("orders.DLT", DeadLetterSelection(limit=10)))
        ...     results = dead.replay(letters)
    """

    def __init__(self, settings: KafkaSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self.reader_group = f"aegis-msg-dlt-reader-{uuid.uuid4().hex[:12]}"
        """The group id librdkafka requires of the reader: never joined, never committed to."""
        self._consumer: Consumer | None = None
        self._last_client_error: str | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the reading client (it never committed anything)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() != KafkaError._ALL_BROKERS_DOWN:  # the error before it says why
            self._last_client_error = error.str()
        client_logger.debug("kafka client error: %s", error.str())

    def _client_config(self) -> dict[str, Any]:
        return {
            **self.settings.client_config(),
            "error_cb": self._on_client_error,
            "logger": client_logger,
        }

    def _reader(self) -> Consumer:
        """The client for metadata and time lookups, kept while this object lives."""
        if self._consumer is None:
            self._consumer = self._new_reader()
        return self._consumer

    def _new_reader(self) -> Consumer:
        """A fresh client for one read.

        librdkafka caches each partition's end per client: a later read must not stop at an
        end an earlier one saw.
        """
        config = {
            **self._client_config(),
            **_READER_DEFAULTS,
            **self.settings.consumer,
            # assign() only: this group is never joined and nothing is ever committed.
            "group.id": self.reader_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
        return _client(Consumer, config)

    def _unreachable(self, exc: KafkaException) -> ExternalServiceError:
        if self._consumer is not None:
            self._consumer.poll(0)  # serves the error callbacks, which say why
        cause = self._last_client_error or (exc.args[0].str() if exc.args else str(exc))
        return ExternalServiceError(
            f"cannot reach Kafka at {self.settings.bootstrap_servers} within "
            f"{self.timeout:g} s: {cause}",
            details={"bootstrap_servers": self.settings.bootstrap_servers},
        )

    def partitions(self, topic: str) -> list[int]:
        """The partitions of ``topic``.

        Raises:
            NotFoundError: the topic does not exist.
            ExternalServiceError: Kafka did not answer within ``timeout``.
        """
        reader = self._reader()
        try:
            metadata = reader.list_topics(topic, timeout=self.timeout)
        except KafkaException as exc:
            raise self._unreachable(exc) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise NotFoundError(
                f"topic {topic!r} does not exist on {self.settings.bootstrap_servers}",
                details={"topic": topic},
            )
        return sorted(found.partitions)

    def read(
        self, topic: str, selection: DeadLetterSelection | None = None
    ) -> Iterator[DeadLetter]:
        """The selected records of ``topic``, partition by partition, in offset order.

        Reads up to the end of each partition as it is when reached.

        Raises:
            NotFoundError: the topic or a selected partition does not exist.
            ExternalServiceError: Kafka did not answer within ``timeout``.
        """
        selection = selection or DeadLetterSelection()
        partitions = self.partitions(topic)
        missing = sorted({r.partition for r in selection.positions} - set(partitions))
        if missing:
            raise NotFoundError(
                f"topic {topic!r} has partitions {_span(partitions)}; no partition "
                + ", ".join(map(str, missing)),
                details={"topic": topic, "partitions": missing},
            )
        count = 0
        scanner = self._new_reader()
        try:
            for partition in partitions:
                bounds = selection.bounds(partition)
                first = (
                    None
                    if bounds is None
                    else self._first_since(topic, partition, bounds[0], selection)
                )
                if bounds is None or first is None:
                    continue
                for message in self._scan(scanner, topic, partition, first, bounds[1]):
                    letter = DeadLetter.from_message(message)
                    if selection.matches(letter):
                        yield letter
                        count += 1
                        if selection.limit is not None and count >= selection.limit:
                            return
        finally:
            scanner.close()

    def get(self, topic: str, partition: int, offset: int) -> DeadLetter:
        """The record at ``partition``:``offset`` of ``topic``.

        Raises:
            NotFoundError: the topic, the partition or a record at that offset does not exist.
            ExternalServiceError: Kafka did not answer within ``timeout``.
        """
        partitions = self.partitions(topic)
        if partition not in partitions:
            raise NotFoundError(
                f"topic {topic!r} has partitions {_span(partitions)}; no partition {partition}",
                details={"topic": topic, "partition": partition},
            )
        scanner = self._new_reader()
        try:
            for message in self._scan(scanner, topic, partition, offset, offset):
                if message.offset() == offset:
                    return DeadLetter.from_message(message)
        finally:
            scanner.close()
        raise NotFoundError(
            f"topic {topic!r} has no record at {partition}:{offset} "
            "(past its end, or removed by retention or compaction)",
            details={"topic": topic, "partition": partition, "offset": offset},
        )

    def _first_since(
        self, topic: str, partition: int, first: int, selection: DeadLetterSelection
    ) -> int | None:
        """Where reading starts: ``first``, moved on to ``since`` by the broker's time index."""
        if selection.since is None:
            return first
        wanted = KafkaTopicPartition(topic, partition, int(selection.since.timestamp() * 1000))
        reader = self._reader()
        try:
            (found,) = reader.offsets_for_times([wanted], timeout=self.timeout)
        except KafkaException as exc:
            raise self._unreachable(exc) from exc
        if found.error is not None:
            return first  # no index answer: read from ``first`` and filter by time
        if found.offset < 0:
            return None  # nothing at or after ``since`` in this partition
        return max(first, found.offset)

    def _scan(
        self, consumer: Consumer, topic: str, partition: int, first: int, last: int | None
    ) -> Iterator[Message]:
        """Messages of one partition from ``first`` to ``last`` (or its current end)."""
        where = KafkaTopicPartition(topic, partition, first)
        consumer.assign([where])
        following = first  # the offset after the last message seen
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                # consume(n, timeout) waits for all n or the timeout: take what is there, and
                # wait only for the first message (or end-of-partition event) when nothing is.
                messages = consumer.consume(_BATCH, 0) or consumer.consume(1, _POLL)
                if not messages:
                    # Past the end, Tansu answers fetches with nothing rather than an end or an
                    # out-of-range error: the end its fetches reported says the same.
                    _, end = consumer.get_watermark_offsets(where, cached=True)
                    if end >= 0 and following >= end:
                        return
                    if time.monotonic() > deadline:
                        consumer.poll(0)  # serves the error callbacks, which say why
                        raise self._silent(topic, partition)
                    continue
                deadline = time.monotonic() + self.timeout
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            return
                        raise ExternalServiceError(
                            f"reading {topic}[{partition}] failed: {error.str()}",
                            details={"topic": topic, "partition": partition},
                        )
                    offset = message.offset() or 0
                    following = offset + 1
                    if last is not None and offset > last:
                        return
                    if offset >= first:  # an offset reset may start below ``first``
                        yield message
        finally:
            consumer.unassign()

    def _silent(self, topic: str, partition: int) -> ExternalServiceError:
        reason = f": {self._last_client_error}" if self._last_client_error else ""
        return ExternalServiceError(
            f"no answer from Kafka at {self.settings.bootstrap_servers} reading "
            f"{topic}[{partition}] within {self.timeout:g} s{reason}",
            details={"topic": topic, "partition": partition},
        )

    def replay(
        self,
        letters: Iterable[DeadLetter],
        *,
        to: str | None = None,
        dry_run: bool = False,
        on_result: Callable[[ReplayResult], None] | None = None,
    ) -> list[ReplayResult]:
        """Publish ``letters`` again to their original topic (or ``to``), one result each.

        Key, value and headers are kept (the Spring ``kafka_dlt-*`` headers too, so a second
        failure still names the first), plus an ``aegis_dlt-replayed-from`` header naming the
        dead letter. The producer is idempotent; this waits for every delivery report (at most
        the settings' ``delivery_timeout``). Replaying is not remembered: replaying a record
        twice sends it twice. A dry run checks the targets and sends nothing.

        ``on_result`` is called with each result as soon as it is known (a delivery report,
        or a record that cannot be sent), on this thread: ``aegis-msg dlt replay`` counts them.

        Raises:
            ExternalServiceError: Kafka did not answer within ``timeout``.

        .. versionchanged:: unreleased
           ``on_result``.
        """
        report = on_result or _ignore
        letters = list(letters)
        targets = {name for letter in letters if (name := to or letter.original_topic)}
        missing = {name for name in targets if not self._exists(name)}
        results: list[ReplayResult | None] = []
        sendable: list[tuple[int, DeadLetter, str]] = []
        for letter in letters:
            target = to or letter.original_topic
            if target is None:
                known = ReplayResult(
                    letter, None, error="no kafka_dlt-original-topic header; use --to"
                )
            elif target in missing:
                known = ReplayResult(letter, target, error=f"topic {target!r} does not exist")
            elif dry_run:
                known = ReplayResult(letter, target, dry_run=True)
            else:
                sendable.append((len(results), letter, target))
                results.append(None)
                continue
            results.append(known)
            report(known)
        for index, result in self._send(sendable, report).items():
            results[index] = result
        return [result for result in results if result is not None]

    def _exists(self, topic: str) -> bool:
        try:
            self.partitions(topic)
        except NotFoundError:
            return False
        return True

    def _send(
        self,
        sendable: list[tuple[int, DeadLetter, str]],
        on_result: Callable[[ReplayResult], None],
    ) -> dict[int, ReplayResult]:
        if not sendable:
            return {}
        config = {
            **self._client_config(),
            **PRODUCER_DEFAULTS,
            "message.timeout.ms": int(self.settings.delivery_timeout * 1000),
            **self.settings.producer,
        }
        producer = _client(Producer, config)
        results: dict[int, ReplayResult] = {}
        for index, letter, target in sendable:

            def report(
                error: KafkaError | None,
                message: Message,
                index: int = index,
                letter: DeadLetter = letter,
                target: str = target,
            ) -> None:
                if error is not None:
                    results[index] = ReplayResult(letter, target, error=error.str())
                else:
                    results[index] = ReplayResult(
                        letter, target, message.partition(), message.offset()
                    )
                on_result(results[index])

            headers: list[tuple[str, str | bytes | None]] = [
                *letter.headers,
                (REPLAYED_FROM, _origin(letter).encode()),
            ]
            while True:
                try:
                    producer.produce(
                        target, letter.value, letter.key, headers=headers, on_delivery=report
                    )
                    break
                except BufferError:  # the local queue is full: serve reports, then go on
                    producer.poll(_POLL)
        # librdkafka fails each message by itself after message.timeout.ms; the margin only
        # covers the last reports arriving.
        producer.flush(self.settings.delivery_timeout + self.timeout)
        for index, letter, target in sendable:
            if index not in results:
                results[index] = ReplayResult(letter, target, error="no delivery report in time")
                on_result(results[index])
        return results


def _client(kind: Callable[[dict[str, Any]], _Client], config: dict[str, Any]) -> _Client:
    """A librdkafka client; settings it refuses raise :class:`ConfigurationError`."""
    try:
        return kind(config)
    except KafkaException as exc:
        reason = exc.args[0].str() if exc.args else str(exc)
        raise ConfigurationError(f"Kafka client settings: {reason}") from exc


def _origin(letter: DeadLetter) -> str:
    return f"{letter.topic}:{letter.partition}:{letter.offset}"


def _ignore(_: ReplayResult) -> None:
    pass


def _span(partitions: list[int]) -> str:
    return f"{partitions[0]}-{partitions[-1]}" if len(partitions) > 1 else str(partitions[0])
