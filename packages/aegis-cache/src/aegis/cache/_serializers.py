"""Serializers turn cached values into bytes and back; JSON (pydantic-aware) is the default."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pydantic_core

from aegis.cache._errors import CacheSerializationError


@runtime_checkable
class Serializer(Protocol):
    """What a cache needs to store values: ``dumps`` to bytes and ``loads`` back.

    Pass your own (msgpack, pickle with a signature, ...) as ``Cache(serializer=...)``.
    """

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise any exception if it cannot be encoded."""

    def loads(self, data: bytes) -> Any:
        """Decode bytes written by :meth:`dumps`."""


class JsonSerializer:
    """Compact JSON: pydantic models, dataclasses, datetimes, UUIDs and decimals included.

    Values come back as JSON types (a model as a dict); ``Cache.get(key, type=User)`` and
    ``@cached`` functions with a return annotation validate them back into the annotated type.
    """

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as JSON bytes.

        Raises:
            CacheSerializationError: the value has a type JSON cannot represent.
        """
        try:
            return pydantic_core.to_json(value)
        except pydantic_core.PydanticSerializationError as exc:
            raise CacheSerializationError(
                f"cannot store a {type(value).__name__} as JSON: {exc}; pass a serializer "
                "that supports it"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode JSON bytes."""
        return pydantic_core.from_json(data)
