"""The AsyncAPI 3.0 document of a service's event flows, as a dict, JSON, YAML or an ASGI route.

Channels are topics; operations are what the service's publishers send and its subscribers'
handlers receive; messages are event types in the CloudEvents Kafka binding (``ce_*`` headers,
the partition key as the Kafka key); ``components.schemas`` holds every event's data schema,
pydantic's ``$defs`` hoisted beside them so each ``$ref`` resolves inside the document.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final, Literal

from aegis.core.errors import ConfigurationError
from aegis.core.html import PackageFiles
from aegis.msg import _asyncapi_web
from aegis.msg._asyncapi_channels import Channel, channel_messages, operations
from aegis.msg._asyncapi_messages import MessageKey, message, message_id
from aegis.msg._asyncapi_schemas import payload_schemas
from aegis.msg._asyncapi_servers import servers
from aegis.msg._event import Event
from aegis.msg._kafka import KafkaSettings, KafkaTransport
from aegis.msg._publisher import EventPublisher
from aegis.msg._subscriber import EventSubscriber
from aegis.msg._yaml import yaml_text

ASYNCAPI_VERSION: Final = "3.0.0"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Scope]], Callable[[Scope], Awaitable[None]]], Awaitable[None]
]
"""An ASGI application (``scope``, ``receive``, ``send``)."""


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
            {key for channel in channels.values() for key in channel_messages(channel)},
            key=lambda key: (key[0].type, key[1], key[0].__module__, key[0].__qualname__),
        )
        ids: dict[MessageKey, str] = {}
        for key in used:
            identifier = message_id(*key)
            clash = next((other for other, id_ in ids.items() if id_ == identifier), None)
            if clash is not None:
                raise ConfigurationError(
                    f"event type {key[0].type!r} is declared by both "
                    f"{clash[0].__qualname__} and {key[0].__qualname__}",
                    details={"type": key[0].type},
                )
            ids[key] = identifier
        schemas, payloads = payload_schemas(used)
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
            document["servers"], security = servers(settings)
            if security:
                components["securitySchemes"] = security
        document["channels"] = {
            topic: {
                "address": topic,
                "messages": {
                    ids[key]: {"$ref": f"#/components/messages/{ids[key]}"}
                    for key in channel_messages(channel)
                },
            }
            for topic, channel in sorted(channels.items())
        }
        document["operations"] = operations(channels, ids)
        components["messages"] = {ids[key]: message(*key, payloads[key]) for key in used}
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

    def _channels(self) -> dict[str, Channel]:
        channels: dict[str, Channel] = {}
        for publisher, topic, event_type in self._declared:
            channel = channels.setdefault(topic, Channel())
            channel.sends[event_type, publisher.codec.mode] = None
        for publisher in self._publishers:
            for topic, event_type in sorted(
                publisher.published_types, key=lambda item: (item[0], item[1].type)
            ):
                channel = channels.setdefault(topic, Channel())
                channel.sends[event_type, publisher.codec.mode] = None
        for subscriber in self._subscribers:
            for route in subscriber.routes.values():
                channel = channels.setdefault(route.topic, Channel())
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
