"""Pagination arithmetic and signed opaque cursors: the one home of paging rules in aegis.

The page models of :mod:`aegis.core.models` (``PageParams``, ``PaginatedResponse``,
``CursorPage``) count offsets and pages with :func:`offset_for` and :func:`total_pages`; aegis-db
signs its keyset cursors with :func:`encode_cursor`.

A cursor is ``<payload>.<signature>``: the payload is the compact JSON of a dict, the signature
is HMAC-SHA256 over a fixed domain label and the payload, both URL-safe base64 without padding.
Clients can carry cursors in URLs but cannot read them as an API or forge them: a changed,
garbled or foreign (other secret, other service) cursor is refused. The payload is signed,
not encrypted: keep secrets out of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from aegis.core.errors import InvalidInputError

MAX_CURSOR_LENGTH = 4096
"""Longest cursor :func:`decode_cursor` reads; longer text is refused before any work."""

MIN_SECRET_BYTES = 16
"""Shortest signing secret accepted (128 bits), so a cursor key cannot be guessed."""

_DOMAIN = b"aegis.cursor.v1\x00"  # a MAC over other data made with the same secret is no cursor
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def offset_for(page: int, size: int) -> int:
    """Return the number of rows before ``page`` (1-based) of ``size`` rows.

    Raises:
        InvalidInputError: ``page`` or ``size`` is below 1 (rule ``min``).

    Example:
        >>> offset_for(3, 20)
        40
    """
    _require_at_least(page, 1, "page")
    _require_at_least(size, 1, "size")
    return (page - 1) * size


def total_pages(total: int, size: int) -> int:
    """Return how many pages of ``size`` rows hold ``total`` rows (0 when there are none).

    Raises:
        InvalidInputError: ``total`` is negative or ``size`` below 1 (rule ``min``).

    Example:
        >>> total_pages(41, 20)
        3
    """
    _require_at_least(total, 0, "total")
    _require_at_least(size, 1, "size")
    return -(-total // size)


def encode_cursor(payload: Mapping[str, Any], secret: bytes | str) -> str:
    """Sign ``payload`` (JSON-serializable, e.g. the last row's sort keys) into a cursor string.

    Raises:
        InvalidInputError: the payload is not JSON-serializable (field ``payload``, rule
            ``json_serializable``) or the secret is shorter than :data:`MIN_SECRET_BYTES`
            (field ``secret``, rule ``min_length``).

    Example:
        >>> cursor = encode_cursor({"id": 42}, secret)
        >>> decode_cursor(cursor, secret)
        {'id': 42}
    """
    key = _key(secret)
    try:
        body = json.dumps(
            dict(payload),
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
            allow_nan=False,
        ).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"cursor payload cannot be written as JSON: {exc}",
            field="payload",
            rule="json_serializable",
        ) from exc
    return f"{_b64encode(body)}.{_b64encode(_sign(key, body))}"


def decode_cursor(cursor: str, secret: bytes | str) -> dict[str, Any]:
    """Verify a cursor made by :func:`encode_cursor` with the same ``secret``; return its payload.

    The signature is checked (in constant time) before the payload is parsed.

    Raises:
        InvalidInputError: field ``cursor``, rule ``max_length`` (too long), ``format`` (not a
            cursor: garbled, truncated, not base64) or ``signature`` (changed, or made with
            another secret).
    """
    key = _key(secret)
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
        length = len(cursor) if isinstance(cursor, str) else type(cursor).__name__
        raise InvalidInputError(
            f"cursor must be text of at most {MAX_CURSOR_LENGTH} characters (got {length}); "
            "pass back the next_cursor value exactly as received",
            field="cursor",
            rule="max_length",
        )
    body_text, dot, signature_text = cursor.partition(".")
    body = _b64decode(body_text) if dot else None
    signature = _b64decode(signature_text) if dot else None
    if body is None or signature is None:
        raise InvalidInputError(
            "cursor is garbled: it is not a cursor this service issued; "
            "pass back the next_cursor value exactly as received",
            field="cursor",
            rule="format",
        )
    if not hmac.compare_digest(signature, _sign(key, body)):
        raise InvalidInputError(
            "cursor signature does not match: it was changed, or issued by another service "
            "or with another key; start again from the first page",
            field="cursor",
            rule="signature",
        )
    try:
        payload = json.loads(body)
    except ValueError as exc:  # signed by us, so only a bug or a reused key gets here
        raise InvalidInputError(
            "cursor payload is not JSON", field="cursor", rule="format"
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidInputError("cursor payload is not an object", field="cursor", rule="format")
    return payload


def _key(secret: bytes | str) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidInputError(
            f"cursor secret is {len(key)} bytes; use at least {MIN_SECRET_BYTES} random bytes "
            "(e.g. secrets.token_bytes(32)) from configuration",
            field="secret",
            rule="min_length",
        )
    return key


def _sign(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + body, hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Decode unpadded URL-safe base64, or ``None``; only the canonical spelling is accepted."""
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the checks above rule these out
        return None
    # Several spellings decode to the same bytes (unused low bits in the last character): accept
    # one, so that any change to the text is a change to the cursor.
    return data if _b64encode(data) == text else None


def _require_at_least(value: int, minimum: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(
            f"{field} must be an integer, not {type(value).__name__}", field=field, rule="type"
        )
    if value < minimum:
        raise InvalidInputError(
            f"{field} must be at least {minimum}, got {value}", field=field, rule="min"
        )
