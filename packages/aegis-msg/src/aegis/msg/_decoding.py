"""Reading received messages into typed events: the decoding half of the CloudEvents binding.

Binary mode (``ce_*`` headers, the data as the body) and structured mode (one JSON envelope) are
told apart by ``content-type``; older schema versions reach the current model through the
registry's upcasters. :meth:`Decoder.decode_batch` reads the headers aegis itself sends without
a dict per message and validates the envelopes of one event type in one call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, cast

from pydantic import TypeAdapter, ValidationError

from aegis.core.errors import ConfigurationError
from aegis.msg._errors import InvalidEventError, UnsupportedVersionError
from aegis.msg._event import Event
from aegis.msg._registry import EventRegistry
from aegis.msg._transport import ReceivedMessage

if TYPE_CHECKING:
    from aegis.msg._construct import PlainEventMaker
    from aegis.msg._wire import _Template

TRACEPARENT_HEADER: Final = "traceparent"
"""W3C Trace Context's Kafka header, which OpenTelemetry's Kafka instrumentations read."""

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
_WIRE_TIME_LENGTH: Final = len("2026-01-01T00:00:00.000000Z")
_Z: Final = ord("Z")
_from_iso: Final = datetime.fromisoformat


Decoded = Event[Any] | None | Exception
"""A decoded message: its event, ``None`` (a type not registered here), or why it is poison."""


class Decoder:
    """Decodes received messages into the event types of ``registry``.

    Args:
        registry: the event types decoding knows.
        templates: what is constant per event class, shared with the encoding side.
        template_of: the template of a class, made (and the class registered) on first use.
    """

    def __init__(
        self,
        registry: EventRegistry,
        templates: dict[type[Event[Any]], _Template],
        template_of: Callable[[type[Event[Any]]], _Template],
    ) -> None:
        self.registry = registry
        self._templates = templates
        self._template = template_of
        self._by_type_bytes: dict[bytes, type[Event[Any]]] = {}

    def decode(self, message: ReceivedMessage) -> Event[Any] | None:
        """Decode one message into its event; ``None`` when its type is not registered.

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
        return self._validate(event_type, envelope)

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
        make: PlainEventMaker | None = None
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
                    make = template.make_plain
            if template is None or version != template.version_bytes:
                results[index] = self._decode_or_error(message)
                continue
            try:
                # Header text decoded here: pydantic's own bytes-to-str costs more per field.
                ident_text = ident.decode()
                source_text = source.decode()
                correlation_text = correlation.decode()
                data = template.validate_json(body)  # type: ignore[arg-type] # None: ValueError
                # The time as aegis writes it (27 characters, the last a Z) is read here, at UTC;
                # any other form is left to pydantic.
                time: datetime | bytes = (
                    _from_iso(stamp.decode("ascii")) if stamp[26:] == b"Z" else stamp
                )
            except (AttributeError, TypeError, ValueError):  # a header without a value, not
                # UTF-8, bad data, a time fromisoformat refuses: as decode() words it
                results[index] = self._decode_or_error(message)
                continue
            if make is not None and time is not stamp and ident_text and source_text:
                # What pydantic would check is checked: no envelope validation needed.
                results[index] = make(ident_text, source_text, time, correlation_text, data)  # type: ignore[arg-type]
                continue
            indexes.append(index)
            envelopes.append(
                {
                    "id": ident_text,
                    "source": source_text,
                    "time": time,
                    "correlationid": correlation_text,
                    "data": data,
                }
            )
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
