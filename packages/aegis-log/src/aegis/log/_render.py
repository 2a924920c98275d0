"""Turning one event into one JSON line: timestamps, values JSON lacks, and the size limit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any, Final

import orjson

_STR_KEYS: Final = orjson.OPT_UTC_Z
# Non-string keys (ints, UUIDs in a dict built by hand) are rare, and orjson serializes every
# dict more slowly with this option on: it is the second attempt, not the first.
_OPTIONS: Final = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
_MAX_DEPTH: Final = 32
# Keys that survive truncation: what a search needs to find the line and its request.
_KEPT_ON_TRUNCATION: Final = (
    "timestamp",
    "level",
    "logger",
    "request_id",
    "correlation_id",
    "user_id",
    "service_name",
    "tenant_id",
    "trace_id",
    "span_id",
)
_KEPT_EVENT_CHARS: Final = 256


def _unrepresentable(value: object) -> str:
    return f"<unrepresentable {type(value).__qualname__}>"


def json_default(value: object) -> object:
    """Render what orjson cannot: sets as lists, bytes as text, anything else by ``repr``."""
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, Decimal | timedelta | PurePath):
        return str(value)
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not lose the line
        return _unrepresentable(value)


def _jsonable(value: object, depth: int, ancestors: set[int]) -> object:
    """Plain JSON types only: the slow path for what orjson refused (huge ints, odd keys)."""
    if value is None or isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, Enum):
        return _jsonable(value.value, depth, ancestors)
    if not isinstance(value, Mapping | list | tuple | set | frozenset):
        rendered = orjson.loads(orjson.dumps(value, default=json_default, option=_OPTIONS))
        return rendered if not isinstance(rendered, int) else str(rendered)
    if depth <= 0 or id(value) in ancestors:
        return "<cycle>" if id(value) in ancestors else "<too deep>"
    ancestors.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {
                key if isinstance(key, str) else str(_jsonable(key, depth - 1, ancestors)): (
                    _jsonable(item, depth - 1, ancestors)
                )
                for key, item in value.items()
            }
        return [_jsonable(item, depth - 1, ancestors) for item in value]
    finally:
        ancestors.discard(id(value))


def render_json(event: Mapping[str, Any]) -> bytes:
    """One compact JSON document for ``event``; never raises for the values in it."""
    try:
        return orjson.dumps(event, default=json_default, option=_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return orjson.dumps(event, default=json_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return orjson.dumps(_jsonable(event, _MAX_DEPTH, set()), option=_OPTIONS)
    except Exception as exc:  # the last resort still writes a line
        return orjson.dumps(
            {key: event[key] for key in _KEPT_ON_TRUNCATION if isinstance(event.get(key), str)}
            | {"event": "<unrenderable event>", "render_error": repr(exc)}
        )


def truncate_line(event: Mapping[str, Any], line: bytes, limit: int) -> bytes:
    """Cut a line longer than ``limit`` bytes to at most ``limit``, still one JSON document.

    The line keeps its timestamp, level, logger, context ids and the start of the message,
    adds ``truncated: true`` and ``original_bytes``, and carries as much of the original JSON
    text as fits in ``partial``, ending in ``…``.
    """
    message = event.get("event")
    head: dict[str, Any] = {key: event[key] for key in _KEPT_ON_TRUNCATION if key in event}
    head["event"] = message[:_KEPT_EVENT_CHARS] if isinstance(message, str) else "<event not shown>"
    head["truncated"] = True
    head["original_bytes"] = len(line)
    head["partial"] = ""
    room = limit - len(render_json(head))
    if room < 0:  # context ids alone exceed the limit: keep the marker, drop the rest
        head = {"truncated": True, "original_bytes": len(line), "partial": ""}
        room = limit - len(render_json(head))
    text = line.decode("utf-8", "ignore")
    # JSON escaping can grow the text (quotes, backslashes, control characters): shrink until
    # the rendered line fits, which is a few rounds at most.
    cut = max(room - 3, 0)
    while True:
        head["partial"] = text[:cut] + "…"
        rendered = render_json(head)
        if len(rendered) <= limit or cut == 0:
            return rendered
        cut = max(cut - (len(rendered) - limit) - 3, 0)
