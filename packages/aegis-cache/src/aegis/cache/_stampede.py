"""Stampede control for missing and expiring entries.

One computation per key per process (single flight), one per key across processes (a short
Redis lock whose waiters read the result), and early recomputation before expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aegis.cache._core import TTL, CacheCore, Labels

T = TypeVar("T")
ENVELOPE = b"\x00\x01"
_DEADLINE = struct.Struct(">d")
_FIRST_POLL = 0.005
_LONGEST_POLL = 0.1


@dataclass(frozen=True)
class FillOptions:
    """How a missing value is computed and stored."""

    labels: Labels
    ttl: TTL | None = None
    tags: Sequence[str] = ()
    lock: bool = True
    type_: Any = None
    store: Callable[[Any], bool] | None = None
    early_ttl: float | None = None


@dataclass(frozen=True)
class Filled:
    """A computed value and, when it was stored, its serialized form (for waiters to decode)."""

    value: Any
    data: bytes | None


class Stampede:
    """Per-cache state of in-flight computations and background refreshes."""

    def __init__(self, cache: CacheCore) -> None:
        self._cache = cache
        self._inflight: dict[str, asyncio.Future[Filled]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def lock_key(self, full_key: str) -> str:
        """The key of the cross-process lock that guards computing ``full_key``."""
        return f"{self._cache.prefix}__lock__:{full_key[len(self._cache.prefix) :]}"

    async def fill(
        self, full_key: str, factory: Callable[[], Awaitable[T]], options: FillOptions
    ) -> T:
        """Compute a missing value once per process (and, with a lock, once across them)."""
        running = self._inflight.get(full_key)
        if running is not None:
            filled = await asyncio.shield(running)
            if filled.data is None:
                shared: T = filled.value
                return shared
            decoded: T = self._cache.decode(filled.data, options.type_)
            return decoded
        future: asyncio.Future[Filled] = asyncio.get_running_loop().create_future()
        self._inflight[full_key] = future
        try:
            filled = await self._compute(full_key, factory, options)
        except BaseException as exc:
            future.set_exception(exc)
            # Waiters get the exception; the future itself must not warn that nobody read it.
            future.exception()
            raise
        else:
            future.set_result(filled)
        finally:
            del self._inflight[full_key]
        value: T = filled.value
        return value

    async def _lock(
        self, lock_key: str, token: bytes, labels: Labels, *, down: bool
    ) -> bool | None:
        """Take the cross-process lock: True taken, False held by another process.

        ``down`` is the answer when the circuit breaker says Redis is unavailable; None when the
        reply failed while the breaker is closed (a slow reply: the SET may have landed or not).
        """
        cache = self._cache
        ttl_ms = cache.ttl_ms(cache.settings.lock_timeout, jitter=False)
        failed: bool | None = None
        taken = await cache.attempt(
            "lock",
            lambda: cache.backend.set(lock_key, token, ttl_ms, only_if_absent=True),
            failed,
            labels,
        )
        if taken is None and cache.breaker.state != "closed":
            return down
        return taken

    async def _unlock(self, lock_key: str, token: bytes, labels: Labels) -> None:
        cache = self._cache
        await cache.attempt(
            "unlock", lambda: cache.backend.release_lock(lock_key, token), False, labels
        )

    async def _compute(
        self,
        full_key: str,
        factory: Callable[[], Awaitable[Any]],
        options: FillOptions,
        *,
        lock: bool | None = None,
    ) -> Filled:
        cache = self._cache
        labels = options.labels
        lock = options.lock if lock is None else lock
        token = os.urandom(16)
        lock_key = self.lock_key(full_key)
        # Redis down: nobody can hold the lock, so compute here.
        locked = await self._lock(lock_key, token, labels, down=True) if lock else False
        try:
            if locked is not True and lock:
                data, mine = await self._wait_for(full_key, lock_key, token, labels)
                # Unknown (None): the SET may have landed after all; releasing is harmless.
                locked = locked is None or mine
                if data is not None:
                    return Filled(cache.decode(data, options.type_), data)
            value = await factory()
            data = None
            if options.store is None or options.store(value):
                ttl_ms = cache.ttl_ms(options.ttl)
                data = cache.encode(value)
                if options.early_ttl is not None:
                    refresh_at = time.time() + ttl_ms / 1000 - options.early_ttl
                    data = ENVELOPE + _DEADLINE.pack(refresh_at) + data
                await cache.write(full_key, data, ttl_ms, options.tags, labels)
            return Filled(value, data)
        finally:
            if locked:
                await self._unlock(lock_key, token, labels)

    async def _wait_for(
        self, full_key: str, lock_key: str, token: bytes, labels: Labels
    ) -> tuple[bytes | None, bool]:
        """Poll until another process stored the value, released its lock, or time ran out.

        Returns the value, or None and whether the lock turned out to be ours (a SET whose
        reply timed out but which landed). A poll that failed says nothing about the lock: on a
        loaded machine one reply can take longer than ``timeout`` while the holder is still
        computing. Waiting goes on until the circuit breaker opens (Redis is down: nobody can
        hold the lock, so compute here).
        """
        cache = self._cache
        deadline = time.monotonic() + cache.settings.lock_wait
        delay = _FIRST_POLL
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _LONGEST_POLL)
            failed: list[bytes | None] | None = None
            polled = await cache.attempt(
                "lock_wait",
                lambda: cache.backend.get_many([full_key, lock_key]),
                failed,
                labels,
            )
            if polled is None:
                if cache.breaker.state == "closed":
                    continue
                return None, False
            value, holder = polled
            if value is not None or holder is None or holder == token:
                return value, holder == token
        return None, False

    def needs_refresh(self, data: bytes) -> bool:
        """Whether an entry written with ``early_ttl`` is past its early-refresh time."""
        if data[:2] != ENVELOPE:
            return False
        (refresh_at,) = _DEADLINE.unpack_from(data, 2)
        return bool(time.time() >= refresh_at)

    def refresh_in_background(
        self, full_key: str, factory: Callable[[], Awaitable[Any]], options: FillOptions
    ) -> None:
        """Recompute ``full_key`` while callers keep getting the current value.

        One refresh per key per process; across processes, only the one that takes the lock
        recomputes (the others skip instead of waiting).
        """
        if full_key in self._refreshing or full_key in self._inflight:
            return
        self._refreshing.add(full_key)

        async def refresh() -> None:
            token = os.urandom(16)
            lock_key = self.lock_key(full_key)
            try:
                locked = await self._lock(lock_key, token, options.labels, down=False)
                if not locked:
                    if locked is None:  # in case the SET landed: others need not wait for it
                        await self._unlock(lock_key, token, options.labels)
                    return
                try:
                    await self._compute(full_key, factory, options, lock=False)
                finally:
                    await self._unlock(lock_key, token, options.labels)
            except Exception:
                self._cache.logger.exception("cache: early refresh of %s failed", full_key)
            finally:
                self._refreshing.discard(full_key)

        task = asyncio.get_running_loop().create_task(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_for_refreshes(self) -> None:
        """Wait until every background refresh started so far has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel background refreshes."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
