"""The message objects of the AsyncAPI document: an event type in one content mode.

Each says which CloudEvents headers carry the envelope (``ce_*`` in binary mode, only
``content-type`` in structured mode), where the correlation id is, and what the Kafka key is.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aegis.msg._decoding import TRACEPARENT_HEADER
from aegis.msg._event import SPEC_VERSION, Event
from aegis.msg._wire import STRUCTURED_CONTENT_TYPE, WireMode

KAFKA_BINDING: Final = "0.5.0"
_TRACEPARENT: Final = {
    "type": "string",
    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
    "description": "W3C trace context of the publish span.",
}

MessageKey = tuple[type[Event[Any]], WireMode]
"""An event type in one content mode: one message of the document."""


def message_id(event_type: type[Event[Any]], mode: WireMode) -> str:
    """The message's key in ``components.messages``: its CloudEvents type, and the mode."""
    # Component keys must match ^[\w\d.\-_]+$; a CloudEvents type usually does already.
    base = re.sub(r"[^A-Za-z0-9._-]", "_", event_type.type)
    return f"{base}.structured" if mode == "structured" else base


def constant(value: str) -> dict[str, str]:
    """The schema of a string that is always ``value``."""
    return {"type": "string", "const": value}


def message(
    event_type: type[Event[Any]], mode: WireMode, payload: dict[str, Any]
) -> dict[str, Any]:
    """The message object of ``event_type`` in ``mode``, whose payload schema is ``payload``."""
    message: dict[str, Any] = {"name": event_type.type, "title": event_type.__name__}
    doc = (event_type.__doc__ or "").strip()
    if doc:
        message["summary"] = doc.splitlines()[0]
    if mode == "binary":
        message["description"] = (
            f"CloudEvents `{event_type.type}`, schema version {event_type.version}, in binary "
            "content mode: the envelope in `ce_*` headers, `data` as the body."
        )
        message["contentType"] = event_type.datacontenttype
        message["headers"] = _binary_headers(event_type)
        message["correlationId"] = {"location": "$message.header#/ce_correlationid"}
    else:
        message["description"] = (
            f"CloudEvents `{event_type.type}`, schema version {event_type.version}, in "
            "structured content mode: the whole event as one JSON document."
        )
        message["contentType"] = STRUCTURED_CONTENT_TYPE
        message["headers"] = {
            "type": "object",
            "properties": {
                "content-type": constant(STRUCTURED_CONTENT_TYPE),
                TRACEPARENT_HEADER: _TRACEPARENT,
            },
            "required": ["content-type"],
        }
        message["correlationId"] = {"location": "$message.payload#/correlationid"}
    message["payload"] = payload
    key: dict[str, Any]
    if event_type.key_field is not None:
        key = {
            "type": "string",
            "description": f"The partition key: `data.{event_type.key_field}`, or the event's "
            "`partitionkey` when set. Events with one key stay in order.",
        }
    else:
        key = {
            "type": ["string", "null"],
            "description": "The event's `partitionkey`; none when it is unset.",
        }
    message["bindings"] = {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}}
    return message


def _binary_headers(event_type: type[Event[Any]]) -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string"}
    properties: dict[str, Any] = {
        "content-type": constant(event_type.datacontenttype),
        "ce_specversion": constant(SPEC_VERSION),
        "ce_type": constant(event_type.type),
        "ce_schemaversion": constant(str(event_type.version)),
        "ce_id": {**text, "description": "Event id (a UUIDv7)."},
        "ce_source": {**text, "description": "The publishing service."},
        "ce_time": {**text, "format": "date-time"},
        "ce_subject": text,
        "ce_correlationid": {**text, "description": "Shared by the events of one flow."},
        "ce_causationid": {**text, "description": "Id of the event whose handler sent this."},
        TRACEPARENT_HEADER: _TRACEPARENT,
    }
    if event_type.dataschema is not None:
        properties["ce_dataschema"] = constant(event_type.dataschema)
    return {
        "type": "object",
        "properties": properties,
        "required": ["content-type", "ce_specversion", "ce_type", "ce_id", "ce_source"],
    }
