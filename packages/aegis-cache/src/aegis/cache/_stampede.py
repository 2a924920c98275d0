"""Stampede control for missing and expiring entries.

One computation per key per process (single flight), one per key across processes (a short
Redis lock whose waiters read the result), and early recomputation before expiry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aegis.cache._codec import Codec, refresh_at, with_refresh_at
from aegis.cache._metrics import Labels
from aegis.cache._store import Store
from aegis.cache._ttl import TTL, TtlPolicy

T = TypeVar("T")
# A waiter polls soon (most computations are short), then half again as late each time.
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
    """Per-cache state of in-flight computations and background refreshes.

    Args:
        store: where values are read, written and locked (through its fail-open policy).
        codec: encodes computed values and decodes other processes' ones.
        ttls: the TTL of stored values.
        lock_timeout: seconds a cross-process lock lives if its holder dies.
        lock_wait: seconds a process waits for another one's value.
        logger: where a failed background refresh is logged.
    """

    def __init__(
        self,
        store: Store,
        codec: Codec,
        ttls: TtlPolicy,
        *,
        lock_timeout: float,
        lock_wait: float,
        logger: logging.Logger,
    ) -> None:
        self._store = store
        self._codec = codec
        self._ttls = ttls
        self._lock_ms = ttls.milliseconds(lock_timeout, jitter=False)
        self._lock_wait = lock_wait
        self._logger = logger
        self._inflight: dict[str, asyncio.Future[Filled]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def lock_key(self, full_key: str) -> str:
        """The key of the cross-process lock that guards computing ``full_key``."""
        prefix = self._store.prefix
        return f"{prefix}__lock__:{full_key[len(prefix) :]}"

    def is_computing(self, full_key: str) -> bool:
        """Whether this process is computing (or waiting for another's) value of ``full_key``."""
        return full_key in self._inflight

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
            decoded: T = self._codec.decode(filled.data, options.type_)
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
        backend, fail_open = self._store.backend, self._store.fail_open
        failed: bool | None = None
        taken = await fail_open.attempt(
            "lock",
            lambda: backend.set(lock_key, token, self._lock_ms, only_if_absent=True),
            failed,
            labels,
        )
        if taken is None and not fail_open.closed:
            return down
        return taken

    async def _unlock(self, lock_key: str, token: bytes, labels: Labels) -> None:
        backend = self._store.backend
        await self._store.fail_open.attempt(
            "unlock", lambda: backend.release_lock(lock_key, token), False, labels
        )

    async def _compute(
        self,
        full_key: str,
        factory: Callable[[], Awaitable[Any]],
        options: FillOptions,
        *,
        lock: bool | None = None,
    ) -> Filled:
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
                    return Filled(self._codec.decode(data, options.type_), data)
            value = await factory()
            data = None
            if options.store is None or options.store(value):
                ttl_ms = self._ttls.milliseconds(options.ttl)
                data = self._codec.encode(value)
                if options.early_ttl is not None:
                    deadline = time.time() + ttl_ms / 1000 - options.early_ttl
                    data = with_refresh_at(data, deadline)
                await self._store.write(full_key, data, ttl_ms, options.tags, labels)
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
        backend, fail_open = self._store.backend, self._store.fail_open

        async def poll() -> tuple[bytes | None, bytes | None]:
            # The lock, then the value: the holder stores the value before it releases the
            # lock, so after a free lock the value is there if it was stored. Not one MGET: on
            # a Cluster the two keys live in different slots, which one MGET cannot read.
            holder = await backend.get(lock_key)
            return await backend.get(full_key), holder

        deadline = time.monotonic() + self._lock_wait
        delay = _FIRST_POLL
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _LONGEST_POLL)
            failed: tuple[bytes | None, bytes | None] | None = None
            polled = await fail_open.attempt("lock_wait", poll, failed, labels)
            if polled is None:
                if fail_open.closed:
                    continue
                return None, False
            value, holder = polled
            if value is not None or holder is None or holder == token:
                return value, holder == token
        return None, False

    def needs_refresh(self, data: bytes) -> bool:
        """Whether an entry written with ``early_ttl`` is past its early-refresh time."""
        deadline = refresh_at(data)
        return deadline is not None and time.time() >= deadline

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
                self._logger.exception("cache: early refresh of %s failed", full_key)
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
        """Cancel background refreshes and return once they have finished.

        Cancelling the task that awaits this raises CancelledError in it at once; the
        refreshes, already cancelled, then finish on their own.
        """
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # wait() neither raises the refreshes' CancelledError nor swallows the caller's, as
            # awaiting each task under suppress(CancelledError) did.
            await asyncio.wait(tasks)
