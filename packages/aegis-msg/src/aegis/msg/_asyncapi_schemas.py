"""The ``components.schemas`` of the AsyncAPI document: the events' JSON Schemas.

pydantic's ``$defs`` are hoisted beside the events' data schemas so that each ``$ref``
resolves inside the document; a structured-mode message's payload is the whole event envelope.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import TypeAdapter

from aegis.msg._asyncapi_messages import MessageKey
from aegis.msg._event import Event, data_type_of
from aegis.msg._registry import envelope_schema

_SCHEMAS: Final = "#/components/schemas/"


def payload_schemas(
    used: list[MessageKey],
) -> tuple[dict[str, Any], dict[MessageKey, dict[str, Any]]]:
    """``components.schemas`` and each message's payload schema (a reference into them)."""
    adapters: list[tuple[Any, Literal["serialization"], TypeAdapter[Any]]] = []
    event_types = list(dict.fromkeys(event_type for event_type, _ in used))
    for event_type in event_types:
        adapters.append(
            (("data", event_type), "serialization", TypeAdapter(data_type_of(event_type)))
        )
    structured = [event_type for event_type, mode in used if mode == "structured"]
    for event_type in dict.fromkeys(structured):
        adapters.append((("event", event_type), "serialization", TypeAdapter(event_type)))
    if not adapters:
        return {}, {}
    found, definitions = TypeAdapter.json_schemas(adapters, ref_template=_SCHEMAS + "{model}")
    schemas: dict[str, Any] = definitions.get("$defs", {})
    data: dict[type[Event[Any]], dict[str, Any]] = {}
    for event_type in event_types:
        schema = found[("data", event_type), "serialization"]
        if set(schema) != {"$ref"}:  # not a model (a list, a dict): give it a name of its own
            name = _free_name(schemas, f"{event_type.__name__}Data")
            schemas[name] = schema
            schema = {"$ref": _SCHEMAS + name}
        data[event_type] = schema
    payloads: dict[MessageKey, dict[str, Any]] = {}
    for event_type, mode in used:
        if mode == "binary":
            payloads[event_type, mode] = data[event_type]
            continue
        reference = found[("event", event_type), "serialization"]
        name = reference["$ref"].removeprefix(_SCHEMAS)
        schemas[name] = envelope_schema(event_type, schemas[name])
        payloads[event_type, mode] = reference
    _asyncapi_discriminators(schemas)
    return dict(sorted(schemas.items())), payloads


def _free_name(taken: dict[str, Any], name: str) -> str:
    candidate, number = name, 1
    while candidate in taken:
        number += 1
        candidate = f"{name}{number}"
    return candidate


def _asyncapi_discriminators(schema: Any) -> None:
    # pydantic writes OpenAPI's {"propertyName": ..., "mapping": ...}; AsyncAPI's Schema Object
    # takes the property name itself.
    if isinstance(schema, dict):
        discriminator = schema.get("discriminator")
        if isinstance(discriminator, dict) and "propertyName" in discriminator:
            schema["discriminator"] = discriminator["propertyName"]
        for value in schema.values():
            _asyncapi_discriminators(value)
    elif isinstance(schema, list):
        for value in schema:
            _asyncapi_discriminators(value)
