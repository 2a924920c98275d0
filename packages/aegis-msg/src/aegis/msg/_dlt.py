"""A dead letter as data: one record of a dead-letter topic with its Spring Kafka headers decoded.

Which records to read is ``_dlt_selection.py``; reading and replaying against Kafka is
``_dlt_client.py``. This module needs no broker.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aegis.core.utils.datetime import format_datetime
from aegis.msg._retry import (
    DLT_EXCEPTION_FQCN,
    DLT_EXCEPTION_MESSAGE,
    DLT_EXCEPTION_STACKTRACE,
    DLT_ORIGINAL_CONSUMER_GROUP,
    DLT_ORIGINAL_OFFSET,
    DLT_ORIGINAL_PARTITION,
    DLT_ORIGINAL_TIMESTAMP,
    DLT_ORIGINAL_TOPIC,
    RETRY_ATTEMPTS,
    RETRY_BACKOFF_TIMESTAMP,
)
from aegis.msg._transport import Headers, ReceivedMessage, header_items
from aegis.msg._wire import STRUCTURED_CONTENT_TYPE

REPLAYED_FROM: Final = "aegis_dlt-replayed-from"
"""Header a replayed record carries: ``<dead-letter topic>:<partition>:<offset>`` it came from.

A replayed event that fails again is dead-lettered with this header kept (and the first
failure's ``kafka_dlt-original-*`` headers), so each hop can be traced.
"""

_INT_HEADERS: Final = frozenset({DLT_ORIGINAL_PARTITION, DLT_ORIGINAL_OFFSET, RETRY_ATTEMPTS})
_TIME_HEADERS: Final = frozenset({DLT_ORIGINAL_TIMESTAMP, RETRY_BACKOFF_TIMESTAMP})


def header_number(value: bytes | None) -> int | None:
    """A Spring integer header: 4- or 8-byte big-endian (as Spring writes it) or decimal text."""
    if value is None:
        return None
    if len(value) in (4, 8):
        return int.from_bytes(value, "big", signed=True)
    text = value.decode("ascii", errors="replace").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def epoch_ms_time(milliseconds: int | None) -> datetime | None:
    """The UTC time of epoch milliseconds; ``None`` for none or a negative (unknown) time."""
    if milliseconds is None or milliseconds < 0:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")


def _shown(value: bytes) -> str:
    """Bytes as text when they are UTF-8, else as ``0x`` hex."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "0x" + value.hex()


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic; the properties decode its Spring Kafka headers.

    ``timestamp`` is when the record was dead-lettered; ``original_*`` describe the record
    whose handling failed (its topic, partition, offset and time), ``exception_*`` and
    ``stacktrace`` the error, ``attempts`` the handler calls made. Event type and id come from
    the CloudEvents ``ce_*`` headers, or from the body of a structured-mode event.
    """

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)

    @classmethod
    def from_message(cls, message: ReceivedMessage) -> DeadLetter:
        """The dead letter of a consumed message."""
        key, value = message.key(), message.value()
        return cls(
            topic=message.topic() or "",
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            timestamp=epoch_ms_time(message.timestamp()[1]),
            key=key.encode() if isinstance(key, str) else key,
            value=value.encode() if isinstance(value, str) else value,
            headers=header_items(message),
        )

    @property
    def position(self) -> str:
        """``partition:offset``, as the command line takes it."""
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or ``None``."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    def _structured(self) -> dict[str, Any]:
        if not (self.header("content-type") or b"").startswith(STRUCTURED_CONTENT_TYPE.encode()):
            return {}
        try:
            document = json.loads(self.value or b"")
        except ValueError:
            return {}
        return document if isinstance(document, dict) else {}

    @property
    def event_type(self) -> str | None:
        """The CloudEvents type (``ce_type``, or ``type`` of a structured body)."""
        found = _text(self.header("ce_type"))
        return found if found is not None else _str_or_none(self._structured().get("type"))

    @property
    def event_id(self) -> str | None:
        """The CloudEvents id (``ce_id``, or ``id`` of a structured body)."""
        found = _text(self.header("ce_id"))
        return found if found is not None else _str_or_none(self._structured().get("id"))

    @property
    def original_topic(self) -> str | None:
        """The topic the failed record was read from (``kafka_dlt-original-topic``)."""
        return _text(self.header(DLT_ORIGINAL_TOPIC))

    @property
    def original_partition(self) -> int | None:
        """Its partition (``kafka_dlt-original-partition``)."""
        return header_number(self.header(DLT_ORIGINAL_PARTITION))

    @property
    def original_offset(self) -> int | None:
        """Its offset (``kafka_dlt-original-offset``)."""
        return header_number(self.header(DLT_ORIGINAL_OFFSET))

    @property
    def original_timestamp(self) -> datetime | None:
        """Its timestamp (``kafka_dlt-original-timestamp``)."""
        return epoch_ms_time(header_number(self.header(DLT_ORIGINAL_TIMESTAMP)))

    @property
    def consumer_group(self) -> str | None:
        """The consumer group whose handler failed (``kafka_dlt-original-consumer-group``)."""
        return _text(self.header(DLT_ORIGINAL_CONSUMER_GROUP))

    @property
    def exception_class(self) -> str | None:
        """The qualified class name of the error (``kafka_dlt-exception-fqcn``)."""
        return _text(self.header(DLT_EXCEPTION_FQCN))

    @property
    def exception_message(self) -> str | None:
        """The error's message (``kafka_dlt-exception-message``)."""
        return _text(self.header(DLT_EXCEPTION_MESSAGE))

    @property
    def stacktrace(self) -> str | None:
        """The error's stack trace (``kafka_dlt-exception-stacktrace``)."""
        return _text(self.header(DLT_EXCEPTION_STACKTRACE))

    @property
    def attempts(self) -> int | None:
        """Handler calls made before giving up (``retry_topic-attempts``)."""
        return header_number(self.header(RETRY_ATTEMPTS))

    @property
    def replayed_from(self) -> list[str]:
        """Earlier dead letters this record was replayed from, oldest first."""
        return [_shown(value) for name, value in self.headers if name == REPLAYED_FROM]

    def decoded_headers(self) -> list[tuple[str, str]]:
        """Every header as text: Spring's binary integers as numbers, times also in ISO 8601."""
        decoded = []
        for name, value in self.headers:
            number = header_number(value) if name in _INT_HEADERS | _TIME_HEADERS else None
            if number is None:
                decoded.append((name, _shown(value)))
            elif name in _TIME_HEADERS and (moment := epoch_ms_time(number)) is not None:
                decoded.append(
                    (name, f"{number} ({format_datetime(moment, timespec='milliseconds')})")
                )
            else:
                decoded.append((name, str(number)))
        return decoded

    def payload(self) -> Any:
        """The body: parsed JSON, else UTF-8 text, else ``{"base64": ...}``; ``None`` if empty."""
        if self.value is None:
            return None
        try:
            return json.loads(self.value)
        except ValueError:
            pass
        try:
            return self.value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(self.value).decode()}

    def summary(self) -> dict[str, Any]:
        """What ``aegis-msg dlt list --json`` prints for this record."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": _iso(self.timestamp),
            "key": None if self.key is None else _shown(self.key),
            "event_type": self.event_type,
            "event_id": self.event_id,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "original_timestamp": _iso(self.original_timestamp),
            "consumer_group": self.consumer_group,
            "exception_class": self.exception_class,
            "exception_message": self.exception_message,
            "attempts": self.attempts,
            "replayed_from": self.replayed_from,
        }

    def details(self) -> dict[str, Any]:
        """What ``aegis-msg dlt show --json`` prints: the summary, headers, payload, stack."""
        return {
            **self.summary(),
            "headers": [list(pair) for pair in self.decoded_headers()],
            "payload": self.payload(),
            "stacktrace": self.stacktrace,
        }


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value, timespec="milliseconds")
