"""Cached values as bytes: the serializer, the size limit, validation into a type on the way back.

An entry written for early recomputation carries its refresh deadline in front of the value
(:func:`with_refresh_at`); decoding skips it, so every reader reads both kinds of entry.
"""

from __future__ import annotations

import struct
from typing import Any

from pydantic import TypeAdapter

from aegis.cache._errors import CacheValueTooLargeError
from aegis.cache._serializers import JsonSerializer, Serializer

_ENVELOPE = b"\x00\x01"
_DEADLINE = struct.Struct(">d")
_HEADER = len(_ENVELOPE) + _DEADLINE.size


def with_refresh_at(data: bytes, refresh_at: float) -> bytes:
    """``data`` prefixed with the wall-clock time (``time.time()``) it should be recomputed at."""
    return _ENVELOPE + _DEADLINE.pack(refresh_at) + data


def refresh_at(data: bytes) -> float | None:
    """The refresh time written by :func:`with_refresh_at`; None for a plain entry."""
    if data[:2] != _ENVELOPE:
        return None
    (deadline,) = _DEADLINE.unpack_from(data, len(_ENVELOPE))
    return float(deadline)


class Codec:
    """Encodes values with a :class:`~aegis.cache.Serializer` under a size limit, and back.

    Args:
        serializer: the value encoding.
        max_value_bytes: larger encoded values are refused.
    """

    def __init__(self, serializer: Serializer, max_value_bytes: int) -> None:
        self.serializer = serializer
        self.max_value_bytes = max_value_bytes
        self._adapters: dict[Any, TypeAdapter[Any]] = {}
        self._json = isinstance(serializer, JsonSerializer)

    def encode(self, value: Any) -> bytes:
        """Serialize ``value``.

        Raises:
            CacheValueTooLargeError: the result is larger than ``max_value_bytes``.
            CacheSerializationError: the serializer cannot encode the value.
        """
        data = self.serializer.dumps(value)
        if len(data) > self.max_value_bytes:
            raise CacheValueTooLargeError(
                f"value of {len(data)} bytes is over max_value_bytes="
                f"{self.max_value_bytes}; store less or raise the limit",
                details={"size": len(data), "limit": self.max_value_bytes},
            )
        return data

    def decode(self, data: bytes, type_: Any = None) -> Any:
        """Deserialize ``data`` (validated into ``type_`` when given)."""
        if data[:2] == _ENVELOPE:
            data = data[_HEADER:]
        if type_ is None:
            return self.serializer.loads(data)
        adapter = self._adapters.get(type_)
        if adapter is None:
            adapter = self._adapters[type_] = TypeAdapter(type_)
        if self._json:
            return adapter.validate_json(data)
        return adapter.validate_python(self.serializer.loads(data))
