"""The AsyncAPI 3.0 document of a service's event flows, as a dict, JSON, YAML or an ASGI route.

Channels are topics; operations are what the service's publishers send and its subscribers'
handlers receive; messages are event types in the CloudEvents Kafka binding (``ce_*`` headers,
the partition key as the Kafka key); ``components.schemas`` holds every event's data schema,
pydantic's ``$defs`` hoisted beside them so each ``$ref`` resolves inside the document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import TypeAdapter

from aegis.core.errors import ConfigurationError
from aegis.core.html import PackageFiles
from aegis.msg import _asyncapi_web
from aegis.msg._decoding import TRACEPARENT_HEADER
from aegis.msg._event import SPEC_VERSION, Event, data_type_of
from aegis.msg._kafka import KafkaSettings, KafkaTransport
from aegis.msg._publisher import EventPublisher
from aegis.msg._registry import envelope_schema
from aegis.msg._subscriber import EventSubscriber
from aegis.msg._wire import STRUCTURED_CONTENT_TYPE, WireMode
from aegis.msg._yaml import yaml_text

ASYNCAPI_VERSION: Final = "3.0.0"
_KAFKA_BINDING: Final = "0.5.0"
_SCHEMAS: Final = "#/components/schemas/"
# AsyncAPI's security scheme types for the SASL mechanisms librdkafka names.
_SASL_SCHEMES: Final = {
    "PLAIN": "plain",
    "SCRAM-SHA-256": "scramSha256",
    "SCRAM-SHA-512": "scramSha512",
    "GSSAPI": "gssapi",
}
_TRACEPARENT: Final = {
    "type": "string",
    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
    "description": "W3C trace context of the publish span.",
}

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Scope]], Callable[[Scope], Awaitable[None]]], Awaitable[None]
]
"""An ASGI application (``scope``, ``receive``, ``send``)."""

_MessageKey = tuple[type[Event[Any]], WireMode]


@dataclass
class _Channel:
    sends: dict[_MessageKey, None] = field(default_factory=dict)  # ordered set
    receives: dict[str, dict[_MessageKey, list[str]]] = field(default_factory=dict)  # by group


class AsyncAPI:
    """Describes a service's publishers and subscribers as an AsyncAPI 3.0.0 document.

    Args:
        title: the service's name (``info.title``).
        version: the service's version (``info.version``).
        description: ``info.description`` (CommonMark).
        kafka: the brokers, one ``servers`` entry per bootstrap address (default: the settings
            of the first :class:`KafkaTransport` a publisher or subscriber uses; none with the
            in-memory transport).

    Example:
        >>> asyncapi = AsyncAPI(title="user-service", version="1.4.0")
        >>> asyncapi.publisher(publisher, UserCreated)
        >>> asyncapi.subscriber(subscriber)
        >>> document = asyncapi.document()
        >>> app.add_route("/asyncapi.json", asyncapi.app())  # Starlette or FastAPI
    """

    def __init__(
        self,
        *,
        title: str,
        version: str,
        description: str | None = None,
        kafka: KafkaSettings | None = None,
    ) -> None:
        self.title = title
        self.version = version
        self.description = description
        self.kafka = kafka
        self._declared: list[tuple[EventPublisher, str, type[Event[Any]]]] = []
        self._publishers: list[EventPublisher] = []
        self._subscribers: list[EventSubscriber] = []

    def publisher(
        self, publisher: EventPublisher, *event_types: type[Event[Any]], topic: str | None = None
    ) -> None:
        """Declare that ``publisher`` sends ``event_types``.

        Each goes to ``topic``, else its class's topic, else the publisher's. The document also
        lists what the publisher has actually published so far (``published_types``).

        Raises:
            ConfigurationError: no topic is known for one of the types.
        """
        for event_type in event_types:
            chosen = topic or event_type.topic or publisher.topic
            if chosen is None:
                raise ConfigurationError(
                    f"no topic for {event_type.__name__}: set `topic` on the class, on the "
                    "EventPublisher, or pass topic= to AsyncAPI.publisher()",
                    details={"event_class": event_type.__qualname__},
                )
            self._declared.append((publisher, chosen, event_type))
        if publisher not in self._publishers:
            self._publishers.append(publisher)

    def subscriber(self, subscriber: EventSubscriber) -> None:
        """Declare ``subscriber``: its handlers' topics and event types, in its consumer group.

        Handlers registered later are included too: the document is built when asked for.
        """
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def document(self) -> dict[str, Any]:
        """Return the AsyncAPI 3.0.0 document as JSON-compatible data.

        Raises:
            ConfigurationError: two different classes declare the same CloudEvents type.
        """
        channels = self._channels()
        used = sorted(
            {key for channel in channels.values() for key in _channel_messages(channel)},
            key=lambda key: (key[0].type, key[1], key[0].__module__, key[0].__qualname__),
        )
        ids: dict[_MessageKey, str] = {}
        for key in used:
            message_id = _message_id(*key)
            clash = next((other for other, id_ in ids.items() if id_ == message_id), None)
            if clash is not None:
                raise ConfigurationError(
                    f"event type {key[0].type!r} is declared by both "
                    f"{clash[0].__qualname__} and {key[0].__qualname__}",
                    details={"type": key[0].type},
                )
            ids[key] = message_id
        schemas, payloads = _schemas(used)
        document: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {"title": self.title, "version": self.version},
            "defaultContentType": "application/json",
        }
        if self.description:
            document["info"]["description"] = self.description
        components: dict[str, Any] = {}
        settings = self.kafka or self._transport_settings()
        if settings is not None:
            document["servers"], security = _servers(settings)
            if security:
                components["securitySchemes"] = security
        document["channels"] = {
            topic: {
                "address": topic,
                "messages": {
                    ids[key]: {"$ref": f"#/components/messages/{ids[key]}"}
                    for key in _channel_messages(channel)
                },
            }
            for topic, channel in sorted(channels.items())
        }
        document["operations"] = _operations(channels, ids)
        components["messages"] = {ids[key]: _message(*key, payloads[key]) for key in used}
        components["schemas"] = schemas
        document["components"] = components
        return document

    def to_json(self, *, indent: int | None = 2) -> str:
        """Return the document as JSON text."""
        return json.dumps(self.document(), indent=indent, ensure_ascii=False) + "\n"

    def to_yaml(self) -> str:
        """Return the document as YAML text (block style; no YAML library needed)."""
        return yaml_text(self.document())

    def to_html(self) -> str:
        """Return the document as one self-contained HTML page (no network needed to view it).

        The AsyncAPI React component's standalone bundle, vendored in aegis-msg, draws it; the
        bundle and stylesheet are inline, allowed by the page's Content-Security-Policy by
        their hashes.
        """
        return _asyncapi_web.static_page(self.document())

    def write(self, path: str | Path) -> None:
        """Write the document to ``path``, in the format its suffix names.

        YAML for ``.yaml``/``.yml``, the HTML page (:meth:`to_html`) for ``.html``/``.htm``,
        else JSON.
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix in {".yaml", ".yml"}:
            text = self.to_yaml()
        elif suffix in {".html", ".htm"}:
            text = self.to_html()
        else:
            text = self.to_json()
        target.write_text(text, encoding="utf-8")

    def app(self, media_type: Literal["json", "yaml", "html"] = "json") -> ASGIApp:
        """Return an ASGI app answering GET and HEAD with the document, built per request.

        Mount it where you like: ``app.add_route("/asyncapi.json", asyncapi.app())`` on a
        Starlette or FastAPI application, ``asyncapi.app("yaml")`` for ``/asyncapi.yaml``.
        ``asyncapi.app("html")`` is the rendered page (``/asyncapi``), under a
        Content-Security-Policy whose scripts must carry the response's nonce; it loads its
        scripts and stylesheet from ``<its path>/assets/``, where :meth:`assets_app` serves them.
        """
        if media_type == "html":
            return _asyncapi_web.page_app(self.document)
        if media_type == "yaml":
            return _asyncapi_web.DocumentApp(self.to_yaml, "application/yaml")
        return _asyncapi_web.DocumentApp(self.to_json, "application/json")

    @staticmethod
    def assets_app() -> PackageFiles:
        """Return an ASGI app serving the HTML page's scripts and stylesheet.

        Mount it at the page's path plus ``/assets``: with Starlette,
        ``Mount("/asyncapi/assets", AsyncAPI.assets_app())`` beside
        ``Route("/asyncapi", asyncapi.app("html"))``.
        """
        return _asyncapi_web.assets_app()

    def _channels(self) -> dict[str, _Channel]:
        channels: dict[str, _Channel] = {}
        for publisher, topic, event_type in self._declared:
            channel = channels.setdefault(topic, _Channel())
            channel.sends[event_type, publisher.codec.mode] = None
        for publisher in self._publishers:
            for topic, event_type in sorted(
                publisher.published_types, key=lambda item: (item[0], item[1].type)
            ):
                channel = channels.setdefault(topic, _Channel())
                channel.sends[event_type, publisher.codec.mode] = None
        for subscriber in self._subscribers:
            for route in subscriber.routes.values():
                channel = channels.setdefault(route.topic, _Channel())
                handlers = channel.receives.setdefault(subscriber.group_id, {})
                name = f"{route.handler.__module__}.{route.handler.__qualname__}"
                handlers.setdefault((route.event_type, "binary"), []).append(name)
        for channel in channels.values():  # subscribers read both modes: name what is sent
            for handled in channel.receives.values():
                for event_type, _ in list(handled):
                    if (event_type, "structured") in channel.sends:
                        handled[event_type, "structured"] = handled[event_type, "binary"]
        return channels

    def _transport_settings(self) -> KafkaSettings | None:
        transports = [user.transport for user in self._publishers]
        transports += [user.transport for user in self._subscribers]
        for transport in transports:
            if isinstance(transport, KafkaTransport):
                return transport.settings
        return None


def _channel_messages(channel: _Channel) -> dict[_MessageKey, None]:
    found = dict(channel.sends)
    for handled in channel.receives.values():
        found.update(dict.fromkeys(handled))
    return found


def _message_id(event_type: type[Event[Any]], mode: WireMode) -> str:
    # Component keys must match ^[\w\d.\-_]+$; a CloudEvents type usually does already.
    base = re.sub(r"[^A-Za-z0-9._-]", "_", event_type.type)
    return f"{base}.structured" if mode == "structured" else base


def _schemas(
    used: list[_MessageKey],
) -> tuple[dict[str, Any], dict[_MessageKey, dict[str, Any]]]:
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
    payloads: dict[_MessageKey, dict[str, Any]] = {}
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


def _constant(value: str) -> dict[str, str]:
    return {"type": "string", "const": value}


def _message(
    event_type: type[Event[Any]], mode: WireMode, payload: dict[str, Any]
) -> dict[str, Any]:
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
                "content-type": _constant(STRUCTURED_CONTENT_TYPE),
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
    message["bindings"] = {"kafka": {"key": key, "bindingVersion": _KAFKA_BINDING}}
    return message


def _binary_headers(event_type: type[Event[Any]]) -> dict[str, Any]:
    text: dict[str, Any] = {"type": "string"}
    properties: dict[str, Any] = {
        "content-type": _constant(event_type.datacontenttype),
        "ce_specversion": _constant(SPEC_VERSION),
        "ce_type": _constant(event_type.type),
        "ce_schemaversion": _constant(str(event_type.version)),
        "ce_id": {**text, "description": "Event id (a UUIDv7)."},
        "ce_source": {**text, "description": "The publishing service."},
        "ce_time": {**text, "format": "date-time"},
        "ce_subject": text,
        "ce_correlationid": {**text, "description": "Shared by the events of one flow."},
        "ce_causationid": {**text, "description": "Id of the event whose handler sent this."},
        TRACEPARENT_HEADER: _TRACEPARENT,
    }
    if event_type.dataschema is not None:
        properties["ce_dataschema"] = _constant(event_type.dataschema)
    return {
        "type": "object",
        "properties": properties,
        "required": ["content-type", "ce_specversion", "ce_type", "ce_id", "ce_source"],
    }


def _operations(channels: dict[str, _Channel], ids: dict[_MessageKey, str]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for topic, channel in sorted(channels.items()):

        def refs(keys: dict[_MessageKey, Any], topic: str = topic) -> list[dict[str, str]]:
            return [{"$ref": f"#/channels/{topic}/messages/{ids[key]}"} for key in keys]

        if channel.sends:
            types = ", ".join(f"`{key[0].type}`" for key in channel.sends)
            operations[f"send-{topic}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{topic}"},
                "summary": f"Publishes {types} to `{topic}`.",
                "messages": refs(channel.sends),
            }
        for group, handled in sorted(channel.receives.items()):
            handlers = sorted({name for names in handled.values() for name in names})
            operations[f"receive-{topic}-{group}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{topic}"},
                "summary": f"Consumer group `{group}` handles "
                + ", ".join(f"`{key[0].type}`" for key in handled)
                + ".",
                "description": "Handlers: " + ", ".join(f"`{name}`" for name in handlers) + ".",
                "messages": refs(handled),
                "bindings": {
                    "kafka": {"groupId": _constant(group), "bindingVersion": _KAFKA_BINDING}
                },
            }
    return operations


def _servers(settings: KafkaSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    secure = settings.security_protocol in {"SSL", "SASL_SSL"}
    server: dict[str, Any] = {"protocol": "kafka-secure" if secure else "kafka"}
    security: dict[str, Any] = {}
    scheme = _SASL_SCHEMES.get((settings.sasl_mechanism or "").upper())
    if settings.security_protocol.startswith("SASL") and scheme is not None:
        security["kafka-sasl"] = {"type": scheme}
        server["security"] = [{"$ref": "#/components/securitySchemes/kafka-sasl"}]
    hosts = [
        address.strip().rpartition("://")[2]
        for address in settings.bootstrap_servers.split(",")
        if address.strip()
    ]
    if len(hosts) == 1:
        return {"kafka": {"host": hosts[0], **server}}, security
    return {
        f"kafka-{number}": {"host": host, **server} for number, host in enumerate(hosts, 1)
    }, security
