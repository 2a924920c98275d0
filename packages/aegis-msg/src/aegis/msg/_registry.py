"""Registry of event types: type name to model, upcasters between versions, JSON Schema export."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from aegis.core.errors import ConfigurationError
from aegis.msg._event import Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the ``data`` of one schema version (a JSON object) into the next version's."""

_E = TypeVar("_E", bound=Event[Any])


class EventRegistry:
    """The event types a service knows, by CloudEvents ``type``, and how to upcast old versions.

    Consumers look the model up by the ``ce_type`` header. An event of an older version is
    passed through the registered upcasters, one version step at a time, then validated against
    the current model; a newer version than the model's cannot be read and is refused.

    Example:
        >>> registry = EventRegistry()
        >>> registry.register(UserCreated)  # version 2
        >>> @registry.upcaster(UserCreated, from_version=1)
        ... def split_name(data: dict[str, Any]) -> dict[str, Any]:
        ...     first, _, last = data.pop("name").partition(" ")
        ...     return {**data, "first_name": first, "last_name": last}
    """

    def __init__(self) -> None:
        self._types: dict[str, type[Event[Any]]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: type[_E]) -> type[_E]:
        """Add ``event_type`` (usable as a class decorator); registering it again is a no-op.

        A class of the same module and name replaces the one registered (a reloaded module).

        Raises:
            ConfigurationError: the class has no ``type``, or another class has the same one.
        """
        if not event_type.type:
            raise ConfigurationError(
                f'{event_type.__qualname__} has no CloudEvents type: set `type = "..."`',
                details={"event_class": event_type.__qualname__},
            )
        known = self._types.setdefault(event_type.type, event_type)
        if _same_definition(known, event_type):
            # The same class defined again (a module reload, a notebook cell run twice).
            self._types[event_type.type] = event_type
        elif known is not event_type:
            raise ConfigurationError(
                f"event type {event_type.type!r} is already registered by {known.__qualname__}",
                details={"type": event_type.type},
            )
        return event_type

    def upcaster(
        self, event_type: type[Event[Any]], *, from_version: int
    ) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns ``data`` of ``from_version`` into ``from_version + 1``.

        Raises:
            ConfigurationError: ``from_version`` is not older than the model's version, or an
                upcaster for it exists already.
        """
        self.register(event_type)
        if not 1 <= from_version < event_type.version:
            raise ConfigurationError(
                f"upcaster for {event_type.type!r} from version {from_version}: the model is "
                f"version {event_type.version}, so from_version must be 1..{event_type.version - 1}"
            )

        def add(function: Upcaster) -> Upcaster:
            key = (event_type.type, from_version)
            if key in self._upcasters:
                raise ConfigurationError(
                    f"{event_type.type!r} already has an upcaster from version {from_version}"
                )
            self._upcasters[key] = function
            return function

        return add

    def get(self, type_name: str) -> type[Event[Any]] | None:
        """Return the model registered for ``type_name``, or ``None``."""
        return self._types.get(type_name)

    def upcast(self, type_name: str, from_version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Apply the upcasters from ``from_version`` up to the registered model's version.

        Raises:
            ConfigurationError: a step between the versions has no upcaster.
            KeyError: ``type_name`` is not registered.
        """
        target = self._types[type_name].version
        for version in range(from_version, target):
            step = self._upcasters.get((type_name, version))
            if step is None:
                raise ConfigurationError(
                    f"no upcaster for {type_name!r} from version {version} to {version + 1}"
                )
            data = step(data)
        return data

    def __iter__(self) -> Iterator[type[Event[Any]]]:
        return iter(sorted(self._types.values(), key=lambda event_type: event_type.type))

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """Return the JSON Schema of every registered event (the envelope with its data), by type.

        The envelope's constant attributes appear as ``const`` properties, so the schema says
        exactly which ``type`` and ``schemaversion`` an event carries.
        """
        return {event_type.type: event_json_schema(event_type) for event_type in self}


def _same_definition(known: type[Event[Any]], new: type[Event[Any]]) -> bool:
    return known is not new and (known.__module__, known.__qualname__) == (
        new.__module__,
        new.__qualname__,
    )


def event_json_schema(event_type: type[Event[Any]]) -> dict[str, Any]:
    """Return the JSON Schema of one event class, as its structured-mode JSON looks."""
    return envelope_schema(event_type, event_type.model_json_schema())


def envelope_schema(event_type: type[Event[Any]], schema: dict[str, Any]) -> dict[str, Any]:
    """Complete pydantic's ``schema`` of ``event_type`` with the envelope's constant attributes.

    ``schema`` may reference its definitions anywhere (``$defs``, AsyncAPI components): the
    AsyncAPI document hoists them into ``components.schemas``.
    """
    properties: dict[str, Any] = schema.setdefault("properties", {})
    properties["specversion"] = {"const": event_type.specversion, "type": "string"}
    properties["type"] = {"const": event_type.type, "type": "string"}
    properties["schemaversion"] = {"const": str(event_type.version), "type": "string"}
    properties["datacontenttype"] = {"const": event_type.datacontenttype, "type": "string"}
    if event_type.dataschema is not None:
        properties["dataschema"] = {"const": event_type.dataschema, "type": "string"}
    schema["required"] = sorted({*schema.get("required", []), "specversion", "type", "id"})
    schema["title"] = event_type.__name__
    return schema


_default: EventRegistry | None = None


def default_registry() -> EventRegistry:
    """Return the process-wide registry publishers and subscribers use unless given another."""
    global _default  # noqa: PLW0603 - created lazily, once
    if _default is None:
        _default = EventRegistry()
    return _default
