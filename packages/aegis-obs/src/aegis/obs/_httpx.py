"""Trace propagation into outgoing httpx requests (``aegis-obs[http]``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import propagate

if TYPE_CHECKING:
    import httpx

# httpx is an optional extra: aegis.obs imports without it, the caller's client brings it.
_Client = TypeVar("_Client", "httpx.Client", "httpx.AsyncClient")


def _inject(request: httpx.Request) -> None:
    propagate.inject(request.headers)


async def _inject_async(request: httpx.Request) -> None:
    propagate.inject(request.headers)


def instrument_httpx(client: _Client) -> _Client:
    """Make every request of ``client`` carry the current trace (``traceparent``).

    Adds a request event hook, so it works for ``httpx.Client`` and ``httpx.AsyncClient`` and
    keeps the client's other hooks.

    Returns:
        ``client`` itself.

    Example:
        >>> client = instrument_httpx(httpx.AsyncClient(base_url="http://user-service"))
    """
    import httpx  # noqa: PLC0415 (optional extra, present wherever a client exists)

    hooks: dict[str, list[Callable[..., Any]]] = client.event_hooks
    hook = _inject_async if isinstance(client, httpx.AsyncClient) else _inject
    hooks["request"] = [*hooks["request"], hook]
    client.event_hooks = hooks
    return client


__all__ = ["instrument_httpx"]
