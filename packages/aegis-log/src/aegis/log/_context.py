"""Ad-hoc fields for every line logged in the current context (task, thread or request).

aegis.core.context holds the fixed request fields (request_id, user_id, ...). These are the
free-form ones a handler adds on its way (``bind_context(order_id=7)``). They live in one
ContextVar holding an immutable mapping, so reading them costs one ``ContextVar.get`` per line
and each asyncio task sees the fields of the task that created it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

# A plain dict, never changed in place: `{**fields}` on it is faster than on a proxy.
EMPTY_FIELDS: Final[Mapping[str, Any]] = {}

bound_fields: Final = ContextVar[Mapping[str, Any]]("aegis_log_fields", default=EMPTY_FIELDS)
"""The fields bound in the current context; replaced, never changed in place."""


def bind_context(**fields: Any) -> None:
    """Add ``fields`` to every line logged from here on in the current context.

    In a request, the fields last until the request ends; in an asyncio task, until it ends,
    and tasks it starts inherit them. A later value for the same name wins.

    Example:
        >>> bind_context(order_id=7)
        >>> get_logger().info("order paid")  # {"event": "order paid", "order_id": 7, ...}
    """
    bound_fields.set({**bound_fields.get(), **fields})


def unbind_context(*names: str) -> None:
    """Remove the named fields from the current context; unknown names are ignored."""
    current = bound_fields.get()
    bound_fields.set({key: value for key, value in current.items() if key not in names})


def clear_context() -> None:
    """Remove every field that :func:`bind_context` added in the current context."""
    bound_fields.set(EMPTY_FIELDS)


def get_context() -> dict[str, Any]:
    """Return a copy of the fields bound in the current context."""
    return dict(bound_fields.get())


@contextmanager
def bound_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` for the block only; the previous fields come back after it.

    Example:
        >>> with bound_context(job="nightly-report"):
        ...     get_logger().info("started")
    """
    token = bound_fields.set({**bound_fields.get(), **fields})
    try:
        yield
    finally:
        bound_fields.reset(token)
