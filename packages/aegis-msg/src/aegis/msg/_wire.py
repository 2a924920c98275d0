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
from typing import Any, Final, Literal, NamedTuple, cast

from pydantic import BaseModel, TypeAdapter, ValidationError

from aegis.core import context
from aegis.core.errors import ConfigurationError
from aegis.core.utils.datetime import format_datetime
from aegis.msg._errors import InvalidEventError, UnsupportedVersionError
from aegis.msg._event import SPEC_VERSION, Event, data_type_of
from aegis.msg._registry import EventRegistry
from aegis.msg._transport import Headers, OutgoingRecord, ReceivedMessage

WireMode = Literal["binary", "structured"]
"""CloudEvents Kafka binding content mode."""

STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
TRACEPARENT_HEADER: Final = "traceparent"
"""W3C Trace Context's Kafka header, which OpenTelemetry's Kafka instrumentations read."""
CE_TRACEPARENT_HEADER: Final = "ce_traceparent"
"""The same value as the CloudEvents distributed-tracing extension attribute (binary mode)."""

handling_event_id: Final = contextvars.ContextVar[str | None]("aegis_msg_event_id", default=None)
"""Id of the event whose handler is running: events published from it name it as their cause."""

_ENVELOPE_HEADERS: Final = {
    "ce_id": "id",
    "ce_source": "source",
    "ce_time": "time",
    "ce_subject": "subject",
    "ce_correlationid": "correlationid",
    "ce_causationid": "causationid",
    "ce_traceparent": "traceparent",
}
_OPTIONAL_HEADERS: Final = ("ce_subject", "ce_causationid", "ce_traceparent")
_OPTIONAL_NAMES: Final = frozenset({*_OPTIONAL_HEADERS, "traceparent"})
_JSON: Final = b"application/json"
_LAYOUT: Final = (
    "content-type",
    "ce_specversion",
    "ce_type",
    "ce_schemaversion",
    "ce_source",
    "ce_id",
    "ce_time",
    "ce_correlationid",
)
"""The headers of an event aegis sends without a data schema, cause or trace, in order."""
_UNSEEN: Final = object()


Decoded = Event[Any] | None | Exception
"""A decoded message: its event, ``None`` (a type not registered here), or why it is poison."""


class Run(NamedTuple):
    """Where a run of records of one topic and event class starts in an encoded batch."""

    start: int
    topic: str
    event_type: type[Event[Any]]


_new_record: Final = partial(tuple.__new__, OutgoingRecord)
"""``OutgoingRecord`` from a tuple, without the Python-level ``__new__`` of a NamedTuple."""

_SECOND: Final = timedelta(seconds=1)
_WIRE_TIME_LENGTH: Final = len("2026-01-01T00:00:00.000000Z")
_Z: Final = ord("Z")
_from_iso: Final = datetime.fromisoformat
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
        self._by_type_bytes: dict[bytes, type[Event[Any]]] = {}

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
        raw = message.headers()
        # dict() of the pairs is the cheap path; values are bytes for every consumed message.
        headers = cast("dict[str, bytes]", dict(raw)) if raw else {}
        body = message.value()
        if isinstance(body, str):
            body = body.encode()
        if body is None:
            raise InvalidEventError("message has no body (a tombstone is not an event)")
        content_type = headers.get("content-type")
        if content_type is not None and content_type.startswith(b"application/cloudevents"):
            return self._decode_structured(body, headers)
        type_bytes = headers.get("ce_type")
        if type_bytes is None:
            raise InvalidEventError("message has no ce_type header: not a CloudEvent")
        event_type = self._by_type_bytes.get(type_bytes)
        if event_type is None:
            event_type = self.registry.get(type_bytes.decode(errors="replace"))
            if event_type is None:
                return None
            self._by_type_bytes[type_bytes] = event_type
        template = self._templates.get(event_type) or self._template(event_type)
        version = headers.get("ce_schemaversion")
        if version == template.version_bytes:
            try:
                data = template.validate_json(body)
            except ValidationError:
                data = self._data(event_type, str(event_type.version), body, None)
        else:
            text = "1" if version is None else version.decode(errors="replace")
            data = self._data(event_type, text, body, None)
        envelope = _binary_envelope(headers)
        envelope["data"] = data
        try:
            return event_type.__pydantic_validator__.validate_python(envelope)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise InvalidEventError(
                f"{event_type.type}: invalid envelope: {_summary(exc)}",
                details={"type": event_type.type},
            ) from exc

    def decode_batch(self, messages: Sequence[ReceivedMessage]) -> list[Decoded]:  # noqa: PLR0912, PLR0915 - the per-message hot loop, kept flat
        """Decode ``messages`` in order, each as :meth:`decode` would, errors included.

        Each item is the event, ``None`` (its type is not registered) or the exception
        :meth:`decode` would raise for it (a poison message). The envelopes of one event type
        are validated together, in one call: a batch costs less per event than one by one.
        """
        results: list[Decoded] = [None] * len(messages)
        pending: dict[type[Event[Any]], tuple[list[int], list[dict[str, Any]]]] = {}
        indexes: list[int] = []
        envelopes: list[dict[str, Any]] = []
        last_type: object = _UNSEEN
        event_type: type[Event[Any]] | None = None
        template: _Template | None = None
        for index, message in enumerate(messages):
            # The common case inline: a binary event of a known type and the current version
            # with the headers aegis sends, read by position when they are exactly aegis's own
            # eight (no dict made), else by name. Anything else as decode() does it.
            # Consumed headers are (str, bytes) pairs, a value None for a header without one.
            raw: list[tuple[str, bytes]] = message.headers()  # type: ignore[assignment]
            body = message.value()
            try:
                (
                    (n0, content_type),
                    (n1, _),
                    (n2, type_bytes),
                    (n3, version),
                    (n4, source),
                    (n5, ident),
                    (n6, stamp),
                    (n7, correlation),
                ) = raw
                exact = (n0, n1, n2, n3, n4, n5, n6, n7) == _LAYOUT and content_type == _JSON
            except (TypeError, ValueError):  # no headers, or not eight pairs
                exact = False
            if not exact:
                headers = dict(raw) if raw else {}
                if headers.get("content-type", _JSON) != _JSON or not _OPTIONAL_NAMES.isdisjoint(
                    headers
                ):
                    results[index] = self._decode_or_error(message)
                    continue
                try:
                    type_bytes, source = headers["ce_type"], headers["ce_source"]
                    ident, stamp = headers["ce_id"], headers["ce_time"]
                    correlation = headers["ce_correlationid"]
                except KeyError:
                    results[index] = self._decode_or_error(message)
                    continue
                version = headers.get("ce_schemaversion", b"")  # b"": not the current one
            if type_bytes != last_type:
                last_type = type_bytes
                event_type = self._by_type_bytes.get(type_bytes)
                template = None if event_type is None else self._templates.get(event_type)
                if event_type is None or template is None:
                    last_type = _UNSEEN  # decode() may register it: look again next time
                else:
                    indexes, envelopes = pending.setdefault(event_type, ([], []))
            if template is None or type(body) is not bytes or version != template.version_bytes:
                results[index] = self._decode_or_error(message)
                continue
            try:
                # Header text decoded here: pydantic's own bytes-to-str costs more per field.
                envelope = {
                    "id": ident.decode(),
                    "source": source.decode(),
                    "time": stamp,
                    "correlationid": correlation.decode(),
                    "data": template.validate_json(body),
                }
            except (AttributeError, ValueError):  # a header without a value, not UTF-8, bad data
                results[index] = self._decode_or_error(message)  # as decode() words it
                continue
            if len(stamp) == _WIRE_TIME_LENGTH and stamp[-1] == _Z:
                try:
                    envelope["time"] = _from_iso(stamp.decode("ascii"))
                except ValueError:  # left as it came: pydantic says what is wrong with it
                    envelope["time"] = stamp
            indexes.append(index)
            envelopes.append(envelope)
        if len(pending) == 1:
            ((group_type, (group_indexes, group_envelopes)),) = pending.items()
            if len(group_indexes) == len(messages):  # every message one type: no merging
                return self._validate_many(group_type, group_envelopes)  # type: ignore[return-value]
        for group_type, (group_indexes, group_envelopes) in pending.items():
            if group_indexes:
                events = self._validate_many(group_type, group_envelopes)
                for index, event in zip(group_indexes, events, strict=True):
                    results[index] = event
        return results

    def _decode_or_error(self, message: ReceivedMessage) -> Decoded:
        try:
            return self.decode(message)
        except Exception as exc:  # whatever breaks decoding makes it poison
            return exc

    def _validate_many(
        self, event_type: type[Event[Any]], envelopes: list[dict[str, Any]]
    ) -> list[Event[Any] | Exception]:
        """Validate envelopes of ``event_type`` in one call; one by one when one of them fails."""
        template = self._templates.get(event_type) or self._template(event_type)
        if template.validate_list is None:
            template.validate_list = TypeAdapter(list[event_type]).validate_python  # type: ignore[valid-type]
        try:
            return template.validate_list(envelopes)
        except ValidationError:
            pass
        found: list[Event[Any] | Exception] = []
        for envelope in envelopes:
            try:
                found.append(self._validate(event_type, envelope))
            except InvalidEventError as exc:
                found.append(exc)
        return found

    def _decode_structured(self, body: bytes, headers: dict[str, bytes]) -> Event[Any] | None:
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise InvalidEventError(f"structured event body is not JSON: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("type"), str):
            raise InvalidEventError("structured event has no string `type`")
        event_type = self.registry.get(document["type"])
        if event_type is None:
            return None
        envelope = {
            field: document[field] for field in _ENVELOPE_HEADERS.values() if field in document
        }
        if "traceparent" not in envelope and TRACEPARENT_HEADER in headers:
            envelope["traceparent"] = headers[TRACEPARENT_HEADER].decode(errors="replace")
        version = str(document.get("schemaversion", "1"))
        envelope["data"] = self._data(event_type, version, None, document.get("data"))
        return self._validate(event_type, envelope)

    def _data(
        self, event_type: type[Event[Any]], version_text: str, body: bytes | None, parsed: Any
    ) -> Any:
        template = self._template(event_type)
        try:
            version = int(version_text.split(".", 1)[0])
        except ValueError as exc:
            raise InvalidEventError(
                f"{event_type.type}: schemaversion {version_text!r} is not a version number"
            ) from exc
        if version > event_type.version:
            raise UnsupportedVersionError(
                f"{event_type.type}: schema version {version} is newer than this consumer's "
                f"model (version {event_type.version}); upgrade the consumer to read it",
                details={"type": event_type.type, "version": version},
            )
        try:
            if version == event_type.version:
                if body is not None:
                    return template.validate_json(body)
                return template.validate_python(parsed)
            raw = json.loads(body) if body is not None else parsed
            if not isinstance(raw, dict):
                raise InvalidEventError(
                    f"{event_type.type}: version {version} data is not an object"
                )
            return template.validate_python(self.registry.upcast(event_type.type, version, raw))
        except ConfigurationError as exc:
            raise UnsupportedVersionError(str(exc), details={"type": event_type.type}) from exc
        except ValidationError as exc:
            raise InvalidEventError(
                f"{event_type.type} (version {version}): invalid data: {_summary(exc)}",
                details={"type": event_type.type},
            ) from exc
        except ValueError as exc:
            raise InvalidEventError(f"{event_type.type}: data is not JSON: {exc}") from exc

    @staticmethod
    def _validate(event_type: type[Event[Any]], envelope: dict[str, Any]) -> Event[Any]:
        try:
            return event_type.__pydantic_validator__.validate_python(envelope)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise InvalidEventError(
                f"{event_type.type}: invalid envelope: {_summary(exc)}",
                details={"type": event_type.type},
            ) from exc


def _binary_envelope(headers: dict[str, bytes]) -> dict[str, Any]:
    """The envelope fields of a binary-mode message's headers, as pydantic validates them."""
    # pydantic reads UTF-8 bytes into str fields itself: no decoding per header here.
    try:  # what aegis sends: these four, seldom the three optional ones
        envelope: dict[str, Any] = {
            "id": headers["ce_id"],
            "source": headers["ce_source"],
            "time": headers["ce_time"],
            "correlationid": headers["ce_correlationid"],
        }
    except KeyError:
        envelope = {
            field: headers[name] for name, field in _ENVELOPE_HEADERS.items() if name in headers
        }
    else:
        for name in _OPTIONAL_HEADERS:
            if name in headers:
                envelope[_ENVELOPE_HEADERS[name]] = headers[name]
    stamp = envelope.get("time")
    if stamp is not None and len(stamp) == _WIRE_TIME_LENGTH and stamp[-1] == _Z:
        # The form aegis writes (format_datetime): C's parser reads it to the same UTC time in
        # a fraction of pydantic's time; anything else, and a bad date, pydantic reads.
        try:
            envelope["time"] = _from_iso(stamp.decode("ascii"))
        except ValueError:  # left as it came: pydantic says what is wrong with it
            envelope["time"] = stamp
    parent = headers.get(TRACEPARENT_HEADER)
    if parent is not None:
        envelope["traceparent"] = parent
    return envelope


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'data'}: {error['msg']}"
        for error in exc.errors()[:5]
    )
