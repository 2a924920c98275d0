"""Retry policy, retry-topic names and the dead-letter headers Spring Kafka's tools read.

A failing handler is retried in process with exponential backoff, then through retry topics
with increasing delays (``orders-retry-5000``, ``orders-retry-30000``), then its message goes to
the dead-letter topic (``orders.DLT``) with the headers Spring Kafka's
``DeadLetterPublishingRecoverer`` writes, in the same binary encodings (partition as a 4-byte
and offset and timestamp as 8-byte big-endian integers), so existing DLT tooling reads them.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Final

from aegis.core.errors import ConfigurationError, InvalidInputError
from aegis.msg._transport import Headers, ReceivedMessage, header_items, header_map

DLT_ORIGINAL_TOPIC: Final = "kafka_dlt-original-topic"
DLT_ORIGINAL_PARTITION: Final = "kafka_dlt-original-partition"
DLT_ORIGINAL_OFFSET: Final = "kafka_dlt-original-offset"
DLT_ORIGINAL_TIMESTAMP: Final = "kafka_dlt-original-timestamp"
DLT_ORIGINAL_TIMESTAMP_TYPE: Final = "kafka_dlt-original-timestamp-type"
DLT_ORIGINAL_CONSUMER_GROUP: Final = "kafka_dlt-original-consumer-group"
DLT_EXCEPTION_FQCN: Final = "kafka_dlt-exception-fqcn"
DLT_EXCEPTION_CAUSE_FQCN: Final = "kafka_dlt-exception-cause-fqcn"
DLT_EXCEPTION_MESSAGE: Final = "kafka_dlt-exception-message"
DLT_EXCEPTION_STACKTRACE: Final = "kafka_dlt-exception-stacktrace"
RETRY_ATTEMPTS: Final = "retry_topic-attempts"
RETRY_BACKOFF_TIMESTAMP: Final = "retry_topic-backoff-timestamp"

_ORIGINAL_HEADERS: Final = (
    DLT_ORIGINAL_TOPIC,
    DLT_ORIGINAL_PARTITION,
    DLT_ORIGINAL_OFFSET,
    DLT_ORIGINAL_TIMESTAMP,
    DLT_ORIGINAL_TIMESTAMP_TYPE,
    DLT_ORIGINAL_CONSUMER_GROUP,
)
_OWN_PREFIXES: Final = ("kafka_dlt-", "retry_topic-")
_TIMESTAMP_TYPES: Final = {1: b"CreateTime", 2: b"LogAppendTime"}
_MAX_STACKTRACE: Final = 8192


@dataclass(frozen=True)
class RetryPolicy:
    """How a subscriber retries a failing handler before giving its message up as dead.

    Args:
        attempts: handler calls in process for a message from its own topic (at least 1).
        backoff: seconds before the first in-process retry; multiplied by ``multiplier`` per
            retry up to ``max_backoff``.
        topic_delays: one retry topic per entry, each tried once after that many seconds. Keep
            them under the consumer's ``max.poll.interval.ms``. Empty: no retry topics.
        not_retryable: exception types that go to the dead letters at once (a handler's
            :class:`~aegis.core.errors.InvalidInputError` will fail the same way again).
        dead_letter_suffix: the dead-letter topic is the topic plus this (Spring's ``.DLT``).
    """

    attempts: int = 3
    backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 5.0
    topic_delays: tuple[float, ...] = (5.0, 30.0)
    not_retryable: tuple[type[BaseException], ...] = field(default=(InvalidInputError,))
    dead_letter_suffix: str = ".DLT"

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("RetryPolicy.attempts must be at least 1")
        if self.backoff < 0 or any(delay <= 0 for delay in self.topic_delays):
            raise ConfigurationError("RetryPolicy delays must be positive")

    def backoff_for(self, retry: int) -> float:
        """Seconds to wait before in-process retry number ``retry`` (0 is the first)."""
        return float(min(self.backoff * self.multiplier**retry, self.max_backoff))

    def retry_topics(self, topic: str) -> list[str]:
        """The retry topics of ``topic``, in order: ``<topic>-retry-<delay in ms>``."""
        return [f"{topic}-retry-{round(delay * 1000)}" for delay in self.topic_delays]

    def dead_letter_topic(self, topic: str) -> str:
        """The dead-letter topic of ``topic``."""
        return topic + self.dead_letter_suffix


def forwarded_headers(
    message: ReceivedMessage,
    error: BaseException,
    *,
    group_id: str,
    attempts: int,
    due_at: float | None = None,
) -> Headers:
    """Headers for a message forwarded to a retry or dead-letter topic.

    The message's own headers are kept; the original topic, partition, offset and timestamp
    are those of the first delivery (kept across retry topics); the exception headers describe
    ``error``; ``due_at`` (epoch seconds) is when a retry topic's consumer may run it.
    """
    own = header_items(message)
    kept = [(name, value) for name, value in own if not name.startswith(_OWN_PREFIXES)]
    originals = {name: value for name, value in own if name in _ORIGINAL_HEADERS}
    if DLT_ORIGINAL_TOPIC not in originals:
        timestamp_type, timestamp = message.timestamp()
        originals = {
            DLT_ORIGINAL_TOPIC: (message.topic() or "").encode(),
            DLT_ORIGINAL_PARTITION: (message.partition() or 0).to_bytes(4, "big", signed=True),
            DLT_ORIGINAL_OFFSET: (message.offset() or 0).to_bytes(8, "big", signed=True),
            DLT_ORIGINAL_TIMESTAMP: timestamp.to_bytes(8, "big", signed=True),
            DLT_ORIGINAL_TIMESTAMP_TYPE: _TIMESTAMP_TYPES.get(timestamp_type, b"NoTimestampType"),
            DLT_ORIGINAL_CONSUMER_GROUP: group_id.encode(),
        }
    cause = error.__cause__ or error.__context__
    stack = "".join(traceback.format_exception(error))[-_MAX_STACKTRACE:]
    headers = [
        *kept,
        *originals.items(),
        (DLT_EXCEPTION_FQCN, _qualified_name(type(error)).encode()),
        (DLT_EXCEPTION_MESSAGE, str(error).encode()),
        (DLT_EXCEPTION_STACKTRACE, stack.encode()),
        (RETRY_ATTEMPTS, attempts.to_bytes(4, "big")),
    ]
    if cause is not None:
        headers.append((DLT_EXCEPTION_CAUSE_FQCN, _qualified_name(type(cause)).encode()))
    if due_at is not None:
        headers.append((RETRY_BACKOFF_TIMESTAMP, int(due_at * 1000).to_bytes(8, "big")))
    return headers


def header_int(message: ReceivedMessage, name: str) -> int | None:
    """The big-endian integer header ``name`` of ``message`` (the last one), or ``None``."""
    value = header_map(message).get(name)
    return None if value is None else int.from_bytes(value, "big", signed=True)


def seconds_until(due_ms: int | None) -> float:
    """Seconds from now until ``due_ms`` (epoch milliseconds); 0 when past or unknown."""
    if due_ms is None:
        return 0.0
    return max(0.0, due_ms / 1000 - time.time())


def _qualified_name(cls: type[BaseException]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
