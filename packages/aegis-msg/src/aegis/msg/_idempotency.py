"""Handle a redelivered event once: a store of processed event ids, and the handler wrapper.

At-least-once delivery redelivers after a crash or a rebalance. ``@idempotent(store)`` claims
the event id before the handler runs (a lease, so a crashed claimer's event is not stuck),
marks it done after success and releases it after failure, so the event is retried.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aegis.msg._errors import EventInProgressError
from aegis.msg._event import Event

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("aegis.msg")

E = TypeVar("E", bound=Event[Any])

DEFAULT_TTL = 7 * 24 * 3600.0
"""Seconds a processed id is remembered: longer than any redelivery can come."""

DEFAULT_LEASE = 60.0
"""Seconds a claim holds before another consumer may take the event over."""


class Claim(StrEnum):
    """The answer to claiming an event id."""

    NEW = "new"
    """Not processed and not claimed: this caller runs the handler."""
    DONE = "done"
    """Processed already: skip it."""
    BUSY = "busy"
    """Claimed by another caller whose lease holds: try again later."""


class IdempotencyStore(Protocol):
    """Where processed event ids are kept (Redis, a database)."""

    async def claim(self, key: str) -> Claim:
        """Claim ``key`` for processing."""

    async def complete(self, key: str) -> None:
        """Record ``key`` as processed (after the handler succeeded)."""

    async def release(self, key: str) -> None:
        """Give up this caller's claim on ``key`` (after the handler failed)."""


def idempotent(
    store: IdempotencyStore, *, name: str | None = None
) -> Callable[[Callable[[E], Awaitable[None]]], Callable[[E], Awaitable[None]]]:
    """Wrap a handler so each event id is handled once, however often it is delivered.

    Args:
        store: where processed ids are kept.
        name: scope of the ids (default: the handler's qualified name), so two handlers of
            one event each handle it once.

    Raises (from the wrapped handler):
        EventInProgressError: another consumer is handling the same event right now; the
            subscriber retries it later.

    Example:
        >>> @subscriber.on(UserCreated)
        ... @idempotent(RedisIdempotencyStore(redis_client))
        ... async def send_welcome_mail(event: UserCreated) -> None: ...
    """

    def wrap(handler: Callable[[E], Awaitable[None]]) -> Callable[[E], Awaitable[None]]:
        scope = name or f"{handler.__module__}.{handler.__qualname__}"

        @functools.wraps(handler)
        async def run(event: E) -> None:
            key = f"{scope}:{event.id}"
            claim = await store.claim(key)
            if claim is Claim.DONE:
                logger.info("event %s (%s) was handled already: skipped", event.id, event.type)
                return
            if claim is Claim.BUSY:
                raise EventInProgressError(
                    f"event {event.id} ({event.type}) is being handled by another consumer",
                    details={"event_id": event.id, "type": event.type},
                )
            try:
                await handler(event)
            except BaseException:
                await store.release(key)
                raise
            await store.complete(key)

        return run

    return wrap


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisIdempotencyStore:
    """Processed event ids in Redis: ``SET NX`` with a lease, then the id kept for ``ttl``.

    Args:
        client: a ``redis.asyncio.Redis`` client.
        prefix: key prefix.
        ttl: seconds a processed id is remembered.
        lease: seconds a claim holds before another consumer may take the event over.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "aegis:msg:processed:",
        ttl: float = DEFAULT_TTL,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self.lease_ms = int(lease * 1000)
        self._tokens: dict[str, str] = {}

    async def claim(self, key: str) -> Claim:
        """Claim ``key``: ``NEW`` when this caller got it, else ``DONE`` or ``BUSY``."""
        full = self.prefix + key
        token = "claimed:" + uuid.uuid4().hex
        for _ in range(3):  # the holder may release between SET and GET
            if await self.client.set(full, token, nx=True, px=self.lease_ms):
                self._tokens[key] = token
                return Claim.NEW
            value = await self.client.get(full)
            if value is not None:
                return Claim.DONE if value == b"done" else Claim.BUSY
        return Claim.BUSY

    async def complete(self, key: str) -> None:
        """Remember ``key`` as processed for ``ttl``."""
        self._tokens.pop(key, None)
        await self.client.set(self.prefix + key, "done", px=self.ttl_ms)

    async def release(self, key: str) -> None:
        """Drop this caller's claim on ``key`` (only if it still holds it)."""
        token = self._tokens.pop(key, None)
        if token is not None:
            await self.client.eval(_RELEASE, 1, self.prefix + key, token)
