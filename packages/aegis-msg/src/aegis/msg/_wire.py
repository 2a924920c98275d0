"""The CloudEvents Kafka protocol binding: events to records (binary or structured) and back.

Binary mode (the default) sends the envelope as ``ce_*`` headers plus ``content-type`` and the
JSON ``data`` as the body; structured mode sends the whole envelope as one JSON body with
``content-type: application/cloudevents+json``. A decoder tells them apart by ``content-type``.
What is constant per event class (type, version, content type, spec version, the data's
serializer and validator) is computed once per class, so encoding an event costs its data's
serialization plus a few header strings.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final, Literal, NamedTuple

from pydantic import BaseModel, TypeAdapter

from aegis.core import context
from aegis.core.utils.datetime import format_datetime
from aegis.msg._construct import PlainEventMaker, plain_event_maker
from aegis.msg._decoding import TRACEPARENT_HEADER, Decoded, Decoder
from aegis.msg._event import SPEC_VERSION, Event, data_type_of
from aegis.msg._registry import EventRegistry
from aegis.msg._transport import Headers, OutgoingRecord, ReceivedMessage

WireMode = Literal["binary", "structured"]
"""CloudEvents Kafka binding content mode."""

STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
CE_TRACEPARENT_HEADER: Final = "ce_traceparent"
"""The same value as the CloudEvents distributed-tracing extension attribute (binary mode)."""

handling_event_id: Final = contextvars.ContextVar[str | None]("aegis_msg_event_id", default=None)
"""Id of the event whose handler is running: events published from it name it as their cause."""


class Run(NamedTuple):
    """Where a run of records of one topic and event class starts in an encoded batch."""

    start: int
    topic: str
    event_type: type[Event[Any]]


_new_record: Final = partial(tuple.__new__, OutgoingRecord)
"""``OutgoingRecord`` from a tuple, without the Python-level ``__new__`` of a NamedTuple."""

_SECOND: Final = timedelta(seconds=1)
_NEVER: Final = datetime.min.replace(tzinfo=UTC)


def _second_of(value: datetime) -> tuple[datetime, datetime, bytes]:
    """The second ``value`` falls in (start, end) and its ``format_datetime`` text up to the dot.

    Events of a batch are mostly made within one second: comparing datetimes to the second's
    bounds and formatting the microseconds costs about half of formatting seven fields.
    """
    # A naive time (model_construct() and model_copy() skip validation) is read as UTC.
    start = value.replace(microsecond=0, tzinfo=value.tzinfo or UTC)
    try:
        end = start + _SECOND
    except OverflowError:  # the last second of 9999: compared each time, formatted each time
        end = start
    return start, end, format_datetime(start)[:-7].encode()


class _Template:
    """Everything about an event class that is the same for each of its events."""

    __slots__ = (
        "headers",
        "key_field",
        "make_plain",
        "serialize",
        "type_bytes",
        "validate_json",
        "validate_list",
        "validate_python",
        "version_bytes",
    )

    def __init__(self, event_type: type[Event[Any]]) -> None:
        data_type = data_type_of(event_type)
        if isinstance(data_type, type) and issubclass(data_type, BaseModel):
            self.serialize: Callable[[Any], bytes] = data_type.__pydantic_serializer__.to_json
            self.validate_json: Callable[[bytes], Any] = (
                data_type.__pydantic_validator__.validate_json
            )
            self.validate_python: Callable[[Any], Any] = (
                data_type.__pydantic_validator__.validate_python
            )
        else:
            adapter: TypeAdapter[Any] = TypeAdapter(data_type)
            self.serialize = adapter.dump_json
            self.validate_json = adapter.validate_json
            self.validate_python = adapter.validate_python
        self.validate_list: Callable[[list[dict[str, Any]]], list[Any]] | None = None
        """Validates a list of envelopes of this class in one call (made on first use)."""
        self.make_plain: PlainEventMaker | None = plain_event_maker(event_type)
        """Makes the events of a plain class from checked envelope values (else ``None``)."""
        self.type_bytes = event_type.type.encode()
        self.key_field = event_type.key_field
        self.version_bytes = str(event_type.version).encode()
        self.headers: Headers = [
            ("content-type", event_type.datacontenttype.encode()),
            ("ce_specversion", event_type.specversion.encode()),
            ("ce_type", self.type_bytes),
            ("ce_schemaversion", str(event_type.version).encode()),
        ]
        if event_type.dataschema is not None:
            self.headers.append(("ce_dataschema", event_type.dataschema.encode()))


class EventCodec:
    """Encodes events as Kafka records and decodes received messages into typed events.

    Args:
        registry: the event types decoding knows.
        source: CloudEvents ``source`` for events that do not set one (the service name).
        mode: ``"binary"`` (``ce_*`` headers, JSON data body) or ``"structured"``.
    """

    def __init__(self, registry: EventRegistry, *, source: str, mode: WireMode = "binary") -> None:
        self.registry = registry
        self.source = source
        self.mode = mode
        self._source_bytes = source.encode()
        self._templates: dict[type[Event[Any]], _Template] = {}
        self._decoder = Decoder(registry, self._templates, self._template)

    def _template(self, event_type: type[Event[Any]]) -> _Template:
        template = self._templates.get(event_type)
        if template is None:
            self.registry.register(event_type)
            template = self._templates[event_type] = _Template(event_type)
        return template

    def records(
        self,
        events: Iterable[Event[Any]],
        topic_of: Callable[[Event[Any]], str],
        *,
        traceparent: str | None = None,
        runs: list[Run] | None = None,
    ) -> Iterator[OutgoingRecord]:
        """Encode ``events`` one by one as records (a generator: nothing is kept).

        Context values (correlation, cause, trace) are read once. In binary mode a topic is taken
        as belonging to an event class, so ``topic_of`` is asked once per run of events of one
        class (per event in structured mode). ``runs`` receives a :data:`Run` where each run of
        records of one topic and event class starts.
        """
        if runs is None:
            runs = []
        if self.mode == "structured":
            return self._structured_records(events, topic_of, traceparent, runs)
        return self._binary_records(events, topic_of, traceparent, runs)

    def _structured_records(
        self,
        events: Iterable[Event[Any]],
        topic_of: Callable[[Event[Any]], str],
        traceparent: str | None,
        runs: list[Run],
    ) -> Iterator[OutgoingRecord]:
        last: tuple[str, type[Event[Any]]] | None = None
        for index, event in enumerate(events):
            record = self._structured(event, topic_of(event), traceparent=traceparent)
            if last != (record.topic, event.__class__):
                last = (record.topic, event.__class__)
                runs.append(Run(index, *last))
            yield record

    def _binary_records(  # noqa: PLR0915 - the per-event hot loop, kept flat
        self,
        events: Iterable[Event[Any]],
        topic_of: Callable[[Event[Any]], str],
        traceparent: str | None,
        runs: list[Run],
    ) -> Iterator[OutgoingRecord]:
        # Per event, only the id and the time are new; everything else is built once per run of
        # events of one class (header prefix, topic, key attribute) or once per batch (context
        # headers), and the time's text once per second.
        shared: Headers = []
        correlation = context.correlation_id.get()
        cause = handling_event_id.get()
        if cause is not None:
            shared.append(("ce_causationid", cause.encode()))
        if traceparent is not None:
            parent_bytes = traceparent.encode()
            shared += [(TRACEPARENT_HEADER, parent_bytes), (CE_TRACEPARENT_HEADER, parent_bytes)]
        correlation_bytes = None if correlation is None else correlation.encode()
        # With the context's correlation id, the plain event's trailing headers are constant.
        tail: Headers = (
            [("ce_correlationid", correlation_bytes), *shared]
            if correlation_bytes is not None
            else []
        )
        templates = self._templates
        default_source = self._source_bytes
        new_record = _new_record
        second_start = second_end = _NEVER
        second_text = b""
        run_type: type[Event[Any]] | None = None
        run_topic = ""
        run_start = run = 0
        prefix: Headers = []
        head: Headers = []
        key_field: str | None = None
        serialize: Callable[[Any], bytes] = bytes
        for event in events:
            event_type = event.__class__
            if event_type is not run_type:
                template = templates.get(event_type) or self._template(event_type)
                run_start += run
                run_type, run_topic, run = event_type, topic_of(event), 0
                runs.append(Run(run_start, run_topic, event_type))
                prefix = template.headers
                head = [*prefix, ("ce_source", default_source)]
                key_field, serialize = template.key_field, template.serialize
            run += 1
            fields = event.__dict__  # one lookup per field instead of pydantic attribute access
            event_id = fields["id"]
            id_bytes = event_id.encode()
            stamp = fields["time"]
            try:
                current = second_start <= stamp < second_end
            except TypeError:  # a naive time: model_construct() and model_copy() skip validation
                current = False
            if not current:
                second_start, second_end, second_text = _second_of(stamp)
            time_bytes = b"%s%06dZ" % (second_text, stamp.microsecond)
            if (
                fields["source"] is None
                and fields["subject"] is None
                and fields["correlationid"] is None
                and fields["causationid"] is None
                and fields["traceparent"] is None
            ):
                # The plain event: every envelope value comes from here or from the context.
                headers = [*head, ("ce_id", id_bytes), ("ce_time", time_bytes), *tail]
                if correlation_bytes is None:
                    headers.append(("ce_correlationid", id_bytes))
                    headers += shared
            else:
                headers = self._own_headers(
                    event,
                    prefix,
                    id_bytes=id_bytes,
                    time_bytes=time_bytes,
                    correlation=correlation_bytes,
                    cause=cause,
                    traceparent=traceparent,
                )
            key = fields["partitionkey"]
            if key is None and key_field is not None:
                key = getattr(fields["data"], key_field)
            yield new_record(
                (
                    run_topic,
                    serialize(fields["data"]),
                    None if key is None else str(key).encode(),
                    headers,
                    event_id,
                )
            )

    def _own_headers(
        self,
        event: Event[Any],
        prefix: Headers,
        *,
        id_bytes: bytes,
        time_bytes: bytes,
        correlation: bytes | None,
        cause: str | None,
        traceparent: str | None,
    ) -> Headers:
        """Headers of an event that sets some envelope values itself (the uncommon case)."""
        source = self._source_bytes if event.source is None else event.source.encode()
        headers = [*prefix, ("ce_source", source), ("ce_id", id_bytes), ("ce_time", time_bytes)]
        if event.subject is not None:
            headers.append(("ce_subject", event.subject.encode()))
        if event.correlationid is not None:
            headers.append(("ce_correlationid", event.correlationid.encode()))
        else:
            headers.append(("ce_correlationid", correlation or id_bytes))
        return headers + self._own_context(event, cause, traceparent)

    @staticmethod
    def _own_context(event: Event[Any], cause: str | None, traceparent: str | None) -> Headers:
        headers: Headers = []
        causation = event.causationid or cause
        if causation is not None:
            headers.append(("ce_causationid", causation.encode()))
        parent = event.traceparent or traceparent
        if parent is not None:
            parent_bytes = parent.encode()
            headers += [(TRACEPARENT_HEADER, parent_bytes), (CE_TRACEPARENT_HEADER, parent_bytes)]
        return headers

    def envelope(self, event: Event[Any], *, traceparent: str | None = None) -> dict[str, Any]:
        """Return the structured-mode envelope of ``event`` with context filled in (no data)."""
        self._template(event.__class__)  # registers the class, as binary encoding does
        stamp = event.time  # naive only if model_construct() skipped validation: read as UTC
        envelope: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": event.id,
            "source": event.source or self.source,
            "type": event.type,
            "time": format_datetime(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)),
            "datacontenttype": event.datacontenttype,
            "schemaversion": event.schemaversion,
            "correlationid": event.correlationid or context.correlation_id.get() or event.id,
        }
        optional = {
            "subject": event.subject,
            "dataschema": event.dataschema,
            "causationid": event.causationid or handling_event_id.get(),
            "traceparent": event.traceparent or traceparent,
        }
        envelope.update((name, value) for name, value in optional.items() if value is not None)
        return envelope

    def _structured(
        self, event: Event[Any], topic: str, *, traceparent: str | None
    ) -> OutgoingRecord:
        envelope = self.envelope(event, traceparent=traceparent)
        data = self._template(event.__class__).serialize(event.data)
        body = json.dumps(envelope, separators=(",", ":"))[:-1].encode() + b',"data":' + data + b"}"
        headers: Headers = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
        if "traceparent" in envelope:
            headers.append((TRACEPARENT_HEADER, envelope["traceparent"].encode()))
        key = event.message_key()
        return OutgoingRecord(topic, body, None if key is None else key.encode(), headers, event.id)

    def decode(self, message: ReceivedMessage) -> Event[Any] | None:
        """Decode a received message into its event; ``None`` when its type is not registered.

        Raises:
            InvalidEventError: the message is not a readable event (a poison message).
            UnsupportedVersionError: its schema version is newer than the registered model.
        """
        return self._decoder.decode(message)

    def decode_batch(self, messages: Sequence[ReceivedMessage]) -> list[Decoded]:
        """Decode ``messages`` in order, each as :meth:`decode` would, errors included.

        Each item is the event, ``None`` (its type is not registered) or the exception
        :meth:`decode` would raise for it (a poison message). The envelopes of one event type
        are validated together, in one call: a batch costs less per event than one by one.
        """
        return self._decoder.decode_batch(messages)
