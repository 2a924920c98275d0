"""The task that keeps a revocation replica complete: subscribe, resync, heartbeat, reconnect.

Order matters: the subscription is confirmed first, then the live revocations are scanned, so a
revocation made meanwhile is either found by the scan or arrives as a message. redis-py may
reconnect a subscription by itself; each confirmation of the subscription (the first one or
one after such a reconnection) triggers a full resync. A ``PING`` sent on the subscription is
answered after every message published before it, so its ``PONG`` proves the replica complete
as of when the ``PING`` was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from redis.asyncio.cluster import RedisCluster

from aegis.auth._redis import KEY_KINDS, RedisTokenStore, RevocationKind

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

    from aegis.auth._metrics import AuthMetrics
    from aegis.auth._replica import LocalRevocations

_LOGGER = logging.getLogger("aegis.auth")
_FIRST_RETRY: Final = 0.05
_SCAN_COUNT: Final = 1000
_NO_EXPIRY: Final = 2**62  # a revocation key someone wrote without a TTL: kept for good
_MAX_ID_LENGTH: Final = 1024
_T = TypeVar("_T")


class Throttle:
    """Lets one event through per ``interval`` seconds (for WARNING lines that would repeat)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0

    def ready(self) -> bool:
        """True at most once per interval."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True


class HeartbeatLostError(Exception):
    """Redis stopped answering (no confirmation, no ``PONG``, no reply) within the bound."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escaped(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RevocationListener:
    """Feeds one :class:`~aegis.auth._replica.LocalRevocations` from Redis, in the background."""

    def __init__(
        self,
        store: RedisTokenStore,
        replica: LocalRevocations,
        *,
        metrics: AuthMetrics,
        warning: Throttle,
    ) -> None:
        self._store = store
        self._replica = replica
        self._metrics = metrics
        self._warning = warning
        self._heartbeat = replica.max_staleness / 3
        self._task: asyncio.Task[None] | None = None
        self._delay = _FIRST_RETRY
        self._pings = 0
        self.synced = asyncio.Event()
        """Set once the replica is loaded; cleared while the channel is down."""

    def start(self) -> None:
        """Start the task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"aegis-auth revocations {self._store.channel}"
            )

    async def stop(self) -> None:
        """Stop the task and close its subscription."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.synced.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except Exception as exc:  # any failure: reconnect, the bound holds
                silent = isinstance(exc, HeartbeatLostError | TimeoutError)
                reason = "heartbeat" if silent else "connection"
                self._metrics.revocation_sync_errors.labels(reason).inc()
                if self._warning.ready():
                    _LOGGER.warning(
                        "revocations: channel %r lost (%r); reconnecting in %.2f s. The replica "
                        "answers until it is %g s stale, then checks go to Redis",
                        self._store.channel,
                        exc,
                        self._delay,
                        self._replica.max_staleness,
                    )
            self.synced.clear()
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, max(_FIRST_RETRY, self._heartbeat))
            await self._refresh_cluster_nodes()

    async def _refresh_cluster_nodes(self) -> None:
        """On a cluster, learn again which node serves the channel's slot (after a failover).

        The subscription picks its node from the client's slot map, which only commands that
        failed refresh; a replica's client may send no other command for a long time.
        """
        client = self._store.client
        if not isinstance(client, RedisCluster):
            return
        try:
            await self._bounded(client.nodes_manager.initialize())
        except Exception:  # no node answers yet: the next attempt asks again
            _LOGGER.debug("revocations: the cluster's nodes could not be read", exc_info=True)

    async def _listen(self) -> None:
        pubsub: PubSub = self._store.client.pubsub()
        try:
            await self._bounded(pubsub.subscribe(self._store.channel))
            waiting_since: float | None = time.monotonic()  # for the confirmation, then a PONG
            expected_pong: str | None = None
            last_ping = time.monotonic()
            while True:
                now = time.monotonic()
                if waiting_since is not None and now - waiting_since > self._replica.max_staleness:
                    raise HeartbeatLostError(
                        f"no answer on the subscription for {now - waiting_since:.1f} s"
                    )
                if waiting_since is None and now - last_ping >= self._heartbeat:
                    self._pings += 1
                    expected_pong = f"aegis-revocations-{self._pings}"
                    waiting_since = last_ping = now
                    await self._bounded(pubsub.ping(expected_pong))
                message = await pubsub.get_message(timeout=self._heartbeat / 2)
                self._replica.sweep()
                if message is None:
                    continue
                kind = message["type"]
                if kind == "message":
                    self._apply(message["data"])
                elif kind == "subscribe":
                    # The first confirmation, or redis-py resubscribed after a reconnection:
                    # what was published while it was away is only in the keys.
                    expected_pong = None
                    await self._resync()
                    waiting_since, last_ping = None, time.monotonic()
                elif (
                    kind == "pong"
                    and waiting_since is not None
                    and expected_pong is not None
                    and _text(message["data"]) == expected_pong
                ):
                    self._replica.mark_complete(waiting_since)
                    waiting_since = expected_pong = None
        finally:
            # PubSub.aclose() is typed from redis-py 8.2 on, not in older releases: through a
            # typed name, mypy is clean with both.
            close_pubsub: Callable[[], Awaitable[None]] = pubsub.aclose
            with contextlib.suppress(Exception):
                await close_pubsub()

    async def _resync(self) -> None:
        started = time.monotonic()
        for kind in KEY_KINDS:
            await self._load(kind)
        self._replica.mark_complete(started)
        self._delay = _FIRST_RETRY
        self.synced.set()

    async def _load(self, kind: RevocationKind) -> None:
        client = self._store.client
        head = self._store.key(kind, "")
        pattern = _glob_escaped(head) + "*"
        cursor: int = 0
        while True:
            cursor, names = await self._scan(cursor, pattern)
            if names:
                keys = [_text(name) for name in names]
                values = await self._bounded(client.mget(keys))
                unknown = []
                for key, value in zip(keys, values, strict=True):
                    expires_at = _expiry(value)
                    if expires_at is None and value is not None:
                        unknown.append(key)
                    elif expires_at is not None:
                        self._replica.add(kind, key[len(head) :], expires_at)
                await self._load_by_ttl(kind, head, unknown)
            if not cursor:
                return

    async def _scan(self, cursor: int, pattern: str) -> tuple[int, list[Any]]:
        """One ``SCAN`` page: of the server, or of the cluster node holding the prefix's slot."""
        client = self._store.client
        if not isinstance(client, RedisCluster):
            return await self._bounded(client.scan(cursor=cursor, match=pattern, count=_SCAN_COUNT))
        # The prefix is a hash tag: every key of the store lives on the node of its slot.
        node = client.get_node_from_key(self._store.channel)
        if node is None:
            raise ConnectionError(f"no cluster node serves the slot of {self._store.channel!r}")
        scan = client.scan(cursor=cursor, match=pattern, count=_SCAN_COUNT, target_nodes=node)
        # redis-py types a cluster's SCAN as a server's; it answers ({node name: cursor}, keys).
        cursors: Any
        cursors, names = await self._bounded(scan)
        return int(cursors[node.name]), names

    async def _load_by_ttl(self, kind: RevocationKind, head: str, keys: list[str]) -> None:
        """Keys written before the value carried the expiry (``b"1"``): the TTL tells it."""
        if not keys:
            return
        async with self._store.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(key)
            ttls = await self._bounded(pipe.execute())
        now = time.time()
        for key, ttl in zip(keys, ttls, strict=True):
            if ttl == -1:
                self._replica.add(kind, key[len(head) :], _NO_EXPIRY)
            elif ttl >= 0:
                self._replica.add(kind, key[len(head) :], int(now + ttl / 1000) + 1)

    async def _bounded(self, call: Awaitable[_T]) -> _T:
        # A client without a socket timeout would wait for ever on a server gone silent.
        async with asyncio.timeout(self._replica.max_staleness):
            return await call

    def _apply(self, data: Any) -> None:
        try:
            message = json.loads(data)
            kind, ident, expires_at = message["kind"], message["id"], message["expires_at"]
            if (
                kind not in KEY_KINDS
                or not isinstance(ident, str)
                or len(ident) > _MAX_ID_LENGTH
                or type(expires_at) is not int
            ):
                raise TypeError("kind, id or expires_at malformed")
        except (ValueError, TypeError, KeyError) as exc:
            self._metrics.revocation_sync_errors.labels("message").inc()
            if self._warning.ready():
                _LOGGER.warning(
                    "revocations: unreadable message on %r ignored (%s): %r",
                    self._store.channel,
                    exc,
                    data[:200],
                )
            return
        self._replica.add(kind, ident, expires_at)


def _expiry(value: Any) -> int | None:
    """The expiry a revocation key holds; ``None`` for a missing key or the old ``1``."""
    if value is None:
        return None
    try:
        expires_at = int(value)
    except (TypeError, ValueError):
        return None
    return None if expires_at == 1 else expires_at
